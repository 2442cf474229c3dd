"""The HTTP service: native, Judge0-compatible and Piston-compatible APIs."""

from service.app import create_app

__all__ = ["create_app"]
