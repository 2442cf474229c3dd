"""The HTTP service: native, Judge0-compatible and Piston-compatible APIs."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from service.app import create_app as create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Lazily: `stockade run` registers the serve/worker/up commands from service.commands
    # and must not pay for importing Flask, Celery and redis on every box.
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
