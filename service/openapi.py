"""/openapi.json (OpenAPI 3.0 of the native API) and a /docs page that renders it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)


def _op(summary: str, body: str | None = None, params: list[dict[str, Any]] | None = None,
        ok: str = "200") -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "4XX": {"$ref": "#/components/responses/FieldError"},
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if params:
        op["parameters"] = params
    return op


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
_WAIT = {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": False}}
_PROGRAM = {
    "type": "object",
    "required": ["source_code", "language_id"],
    "properties": {
        "source_code": {"type": "string"},
        "language_id": {"type": "integer"},
        "convention": {"type": "string", "enum": ["testlib", "icpc"]},
        "args": {"type": "array", "items": {"type": "string"}},
    },
}
_NUM = {"type": "number"}
SUBMISSION = {
    "type": "object",
    "required": ["source_code"],
    "properties": {
        "source_code": {"type": "string"},
        "language_id": {"type": "integer", "description": "Judge0 id (see /api/v1/languages)"},
        "language": {"type": "string", "description": "or the language's key, e.g. python3"},
        "stdin": {"type": "string"},
        "expected_output": {"type": "string", "nullable": True},
        "test_cases": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "input": {"type": "string"},
                    "expected_output": {"type": "string", "nullable": True},
                    "points": _NUM,
                    "name": {"type": "string"},
                },
            },
        },
        "checker": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["exact", "judge0", "token", "float", "custom"]},
                "abs_tolerance": _NUM,
                "rel_tolerance": _NUM,
                "case_sensitive": {"type": "boolean"},
                "program": _PROGRAM,
            },
        },
        "interactor": _PROGRAM,
        "cpu_time_limit": {**_NUM, "description": "seconds"},
        "cpu_extra_time": {**_NUM, "description": "seconds"},
        "wall_time_limit": {**_NUM, "description": "seconds"},
        "memory_limit": {"type": "integer", "description": "KB"},
        "stack_limit": {"type": "integer", "description": "KB"},
        "max_processes_and_or_threads": {"type": "integer"},
        "max_file_size": {"type": "integer", "description": "KB"},
        "number_of_runs": {"type": "integer"},
        "enable_network": {"type": "boolean"},
        "command_line_arguments": {"type": "string"},
        "compiler_options": {"type": "string"},
        "additional_files": {"type": "string", "description": "base64 of a zip"},
        "redirect_stderr_to_stdout": {"type": "boolean"},
        "source_name": {
            "type": "string",
            "description": "the program's path in /box (letters, digits, _.+- per part); "
            "empty: the language's own file name",
        },
        "compile_cpu_time_limit": {**_NUM, "description": "seconds; 0: the language's own"},
        "compile_wall_time_limit": {**_NUM, "description": "seconds; 0: the language's own"},
        "compile_memory_limit": {"type": "integer", "description": "KB; 0: the language's own"},
        "tier": {
            "type": "string",
            "enum": ["container", "gvisor", "microvm"],
            "description": "isolation; raised to the language's default and the operator's"
            " minimum, never lowered; 422 when no live worker serves it",
        },
        "isolation": {"type": "string", "enum": ["container", "gvisor", "microvm"]},
        "callback_url": {"type": "string", "description": "PUT with the result when final"},
        "problem": {
            "type": "string",
            "description": "an uploaded problem package's id (POST /api/v1/problems): judged "
            "against its cases, validator and limits instead of test_cases",
        },
    },
}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Stockade native API", "version": "1"},
    "paths": {
        "/api/v1/submissions": {
            "post": _op("Create a submission", "Submission", [_WAIT], ok="201")
        },
        "/api/v1/submissions/{id}": {
            "get": _op("A submission and its result", params=[_ID, _WAIT]),
            "delete": _op("Delete a submission", params=[_ID]),
        },
        "/api/v1/submissions/batch": {
            "post": _op("Create several submissions", "Batch", ok="201"),
            "get": _op(
                "Several submissions",
                params=[
                    {"name": "ids", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
            ),
        },
        "/api/v1/problems": {
            "post": _op("Upload a problem package (201 new, 200 known)", "Problem", ok="201")
        },
        "/api/v1/problems/{id}": {
            "get": _op("A problem package's name, limits, cases and groups", params=[_ID])
        },
        "/api/v1/assignments": {
            "post": _op(
                "Upload an assignment.toml assignment or a Gradescope bundle (201 new, 200 known)",
                "Assignment",
                ok="201",
            )
        },
        "/api/v1/assignments/{id}": {
            "get": _op(
                "An assignment's tests (names, points, visibility) as the caller may see them",
                params=[_ID],
            )
        },
        "/api/v1/assignments/{id}/publish": {
            "post": _op("Publish grades: after_published tests become visible", params=[_ID])
        },
        "/api/v1/assignments/{id}/submissions": {
            "post": _op("Grade a submission's files", "GradedSubmission", [_ID, _WAIT], ok="201")
        },
        "/api/v1/assignments/{id}/submissions/{token}": {
            "get": _op(
                "A graded submission: status and its results.json as the caller may see it",
                params=[_ID, _TOKEN, _WAIT],
            )
        },
        "/api/v1/languages": {"get": _op("Languages and whether each is enabled")},
        "/api/v1/health": {"get": _op("Redis reachable, queue depth, live workers, tiers")},
    },
    "components": {
        "schemas": {
            "Submission": SUBMISSION,
            "Problem": {
                "type": "object",
                "required": ["package"],
                "properties": {
                    "package": {
                        "type": "string",
                        "description": "base64 of a zip of an ICPC/Kattis problem package",
                    }
                },
            },
            "Assignment": {
                "type": "object",
                "required": ["assignment"],
                "properties": {
                    "assignment": {
                        "type": "string",
                        "description": "base64 of a zip with assignment.toml (native) or "
                        "run_autograder (a Gradescope bundle), at its top or in one folder",
                    },
                    "due_date": {
                        "type": "string",
                        "description": "ISO 8601 with an offset; overrides assignment.toml's "
                        "(after_due_date tests show to students from then on)",
                    },
                    "image": {
                        "type": "string",
                        "default": "python3",
                        "description": "a Gradescope bundle's base image (one of "
                        "profiles/images.toml's); setup.sh runs on it once, on the worker",
                    },
                },
            },
            "GradedSubmission": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "content"],
                            "properties": {
                                "name": {"type": "string", "description": "a relative path"},
                                "content": {"type": "string"},
                                "encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                            },
                        },
                    },
                    "zip": {"type": "string", "description": "or base64 of a zip of the files"},
                    "callback_url": {
                        "type": "string",
                        "description": "PUT with the token and status when graded",
                    },
                },
            },
            "Batch": {
                "type": "object",
                "properties": {
                    "submissions": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Submission"},
                    }
                },
            },
        },
        "responses": {
            "FieldError": {
                "description": "{field: [rule, ...]} or {error: text}",
                "content": {"application/json": {}},
            }
        },
    },
}
_DOCS = """<!doctype html><meta charset="utf-8"><title>Stockade API</title>
<h1>Stockade native API</h1><p>The OpenAPI 3 document: <a href="/openapi.json">/openapi.json</a>.
The Judge0 CE 1.13 API is at the root path; the Piston API under /api/v2.</p><ul id="p"></ul>
<script>fetch('/openapi.json').then(r => r.json()).then(d => {
for (const [path, ops] of Object.entries(d.paths)) for (const [m, op] of Object.entries(ops)) {
const li = document.createElement('li'); li.textContent = m.toUpperCase() + ' ' + path + ' \u2014 '
+ op.summary; document.getElementById('p').appendChild(li); } });</script>
"""


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(DOCUMENT)


@bp.get("/docs")
def docs() -> Response:
    return Response(_DOCS, mimetype="text/html")
