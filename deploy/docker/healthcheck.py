#!/usr/bin/env python3
"""Container health checks: `stockade-healthcheck api [URL]` and `stockade-healthcheck worker`."""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request

API_URL = "http://127.0.0.1:2358/api/v1/health"
PING_TIMEOUT_S = 2.0  # replies come in milliseconds; the whole check stays well under 15 s


def check_api(url: str = API_URL) -> str | None:
    """None when the API answers its health endpoint with 200 (it pings Redis), else why not."""
    try:
        with urllib.request.urlopen(url, timeout=PING_TIMEOUT_S) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as e:
        return f"{url}: HTTP {e.code}"
    except OSError as e:
        return f"{url}: {e}"


def replied(replies: list[dict[str, object]], hostname: str) -> bool:
    """Did a Celery node of this host answer? Node names are `stockade-<pid>@<hostname>`, and
    the pid is not known from outside the worker, so any node of this host will do."""
    return any(name.endswith("@" + hostname) for reply in replies for name in reply)


def check_worker() -> str | None:
    """None when this container's Celery worker answers a broadcast ping through Redis."""
    from worker.celery_app import make_app

    app = make_app()
    try:
        replies = app.control.ping(timeout=PING_TIMEOUT_S)
    except Exception as e:  # broker down or unreachable: the worker cannot take jobs either
        return f"ping: {e}"
    hostname = socket.gethostname()
    return None if replied(replies, hostname) else f"no worker on {hostname} answered a ping"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("api", "worker"):
        print("usage: stockade-healthcheck api [URL] | worker", file=sys.stderr)
        return 2
    problem = check_api(*argv[2:3]) if argv[1] == "api" else check_worker()
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
