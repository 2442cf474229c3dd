"""A submission in each tier through the native API, judged by the real worker: the worker's
heartbeat offers the tiers this host serves, and each verdict comes from the tier asked for."""

from __future__ import annotations

import httpx
import pytest

SOURCE = "import os\nprint(int(input()) * 2, os.uname().release != '')\n"


def _served(api: httpx.Client) -> list[str]:
    tiers: list[str] = api.get("/api/v1/health").json()["tiers"]
    return tiers


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["container", "gvisor", "microvm"])
def test_a_python_submission_in_each_tier(api: httpx.Client, tier: str) -> None:
    (queue,) = api.get("/workers").json()
    (host,) = queue["workers"]
    if tier not in _served(api):
        pytest.skip(f"this host does not serve {tier}: {host['tiers_unavailable'].get(tier)}")
    body = {
        "language": "python3",
        "source_code": SOURCE,
        "test_cases": [{"input": "21\n", "expected_output": "42 True\n"}],
        "tier": tier,
    }
    r = api.post("/api/v1/submissions?wait=true", json=body, timeout=120)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["tier"] == tier and got["final"], got
    assert got["verdict"] == "AC", got
