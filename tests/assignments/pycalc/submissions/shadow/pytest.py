"""Stands in for pytest when run as python3 -m pytest from /box."""

import forge_all  # noqa: F401
