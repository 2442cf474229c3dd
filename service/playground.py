"""The playground page at `/`: plain HTML, CSS and JS from service/static/playground that call
the native API (languages, health's tiers, submissions with test cases). Judge0 has no GET /."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

bp = Blueprint(
    "playground",
    __name__,
    static_folder="static/playground",
    static_url_path="/playground",
)

# The page only talks to its own origin and never evaluates text it is shown: program output
# goes into the page as text nodes, and no inline script or style is allowed to run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@bp.get("/")
def index() -> Response:
    assert bp.static_folder is not None
    return send_from_directory(bp.static_folder, "index.html")


@bp.after_request
def headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
