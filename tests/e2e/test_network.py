"""enable_network through the real stack: granted to the run box when the operator allows it,
refused by the API (422) and by the worker when the operator does not."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from sandbox.errors import SandboxError
from sandbox.netplan import BOX_IFNAME, TABLE
from sandbox.network import remove_firewall
from tests.e2e.conftest import PYTHON, Stack, stop

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
# Only looks: the box's own view of its netns (netlink is closed by the seccomp profile). No
# packet leaves the box, so nothing outside this machine is ever contacted.
PROBE = """
names = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
print(" ".join(names))
print("non-loopback" if set(names) - {"lo"} else "loopback only")
"""


def _has_table() -> bool:
    probe = ["nft", "list", "table", "inet", TABLE]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def allowing(stack: Stack) -> Iterator[httpx.Client]:
    """An API and a worker whose operator allows the network, on a queue of their own. A
    networked box makes the worker apply the nftables table and turn IPv4 forwarding on, as
    any worker does; both are undone after, unless they were there before (another launcher's)."""
    had_table, forward = _has_table(), _read(IP_FORWARD)
    env = {
        "STOCKADE_QUEUE": "net",
        "STOCKADE_REDIS_PREFIX": "net:",
        "STOCKADE_ALLOW_NETWORK": "true",
    }
    # The session's worker already self-tested every language; this one needs only Python.
    worker = stack.start_worker("worker-net", STOCKADE_SELF_TEST="0", **env)
    try:
        url = stack.start_api("api-net", **env)
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        stop(worker)
        if not had_table and _has_table():
            try:
                remove_firewall()  # refuses while any box's veth is still on this host
            except SandboxError:
                pass  # another launcher's box is networked right now: its table stays
            else:
                with open(IP_FORWARD, "w") as f:
                    f.write(forward)


def _run(client: httpx.Client, **fields: object) -> dict[str, object]:
    body = {"source_code": PROBE, "language_id": PYTHON, **fields}
    r = client.post("/submissions", params={"wait": "true"}, json=body)
    assert r.status_code == 201, r.text
    got: dict[str, object] = r.json()
    return got


def test_allowed_the_run_box_has_a_network_only_when_asked(allowing: httpx.Client) -> None:
    got = _run(allowing, enable_network=True)
    assert got["status"] == {"id": 3, "description": "Accepted"}, got
    assert got["stdout"] == " ".join(sorted([BOX_IFNAME, "lo"])) + "\nnon-loopback\n", got
    # The same program, not asking, on the same worker.
    for fields in ({}, {"enable_network": False}):
        got = _run(allowing, **fields)
        assert got["status"] == {"id": 3, "description": "Accepted"}, got
        assert got["stdout"] == "lo\nloopback only\n", (fields, got)


def test_refused_when_the_operator_does_not_allow_it(stack: Stack) -> None:
    """The API answers 422 naming the field; and a job that reaches a refusing worker anyway
    (its API set up to allow it: a mismatch between the two) ends as an Internal Error naming
    enable_network, its program never run, rather than quietly run without a network."""
    env = {
        "STOCKADE_QUEUE": "no-net",
        "STOCKADE_REDIS_PREFIX": "no-net:",
        "STOCKADE_ALLOW_NETWORK": "false",
    }
    refusing = stack.start_api("api-no-net", **env)
    with httpx.Client(base_url=refusing, timeout=60) as client:
        body = {"source_code": PROBE, "language_id": PYTHON, "enable_network": True}
        r = client.post("/submissions", json=body)
        assert r.status_code == 422, r.text
        assert r.json() == {"enable_network": ["not allowed on this server"]}
    worker = stack.start_worker("worker-no-net", STOCKADE_SELF_TEST="0", **env)
    try:
        lax = stack.start_api("api-no-net-lax", **{**env, "STOCKADE_ALLOW_NETWORK": "true"})
        with httpx.Client(base_url=lax, timeout=60) as client:
            got = _run(client, enable_network=True)
            assert got["status"] == {"id": 13, "description": "Internal Error"}, got
            assert str(got["message"]).startswith("enable_network: not allowed on this worker")
            assert not got["stdout"], got
            # Not asking is unaffected on that worker.
            got = _run(client)
            assert got["stdout"] == "lo\nloopback only\n", got
    finally:
        stop(worker)
