"""Stands in for the harness plugin if imported from /box."""

import forge_all  # noqa: F401
