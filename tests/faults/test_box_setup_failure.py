"""Fault 6: a box setup failure injected. The worker runs with STOCKADE_ROOTFS=image over a
private state directory whose python3 image needs a layer that is missing (the debian layer
is the real one). A Python job ends as Internal Error (13) with a message naming the missing
layer, the worker stays up, and the next job (Bash, on the intact debian image) succeeds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from tests.faults.conftest import FaultStack, Ledger, assert_settled

STATE = Path("/var/lib/stockade")
BASH = 46


def broken_state(tmp: Path) -> Path:
    state = tmp / "state"
    (state / "images").mkdir(parents=True)
    (state / "layers").mkdir()
    for name in ("debian", "python3"):
        (state / "images" / f"{name}.json").write_bytes(
            (STATE / "images" / f"{name}.json").read_bytes()
        )
    base = json.loads((STATE / "images" / "debian.json").read_text())["layers"]
    for digest in base:
        os.symlink(STATE / "layers" / digest, state / "layers" / digest)
        os.symlink(STATE / "layers" / f"{digest}.json", state / "layers" / f"{digest}.json")
    return state


def test_missing_layer_is_internal_error_naming_it(bare_stack: FaultStack) -> None:
    state = broken_state(bare_stack.tmp)
    bare_stack.worker = bare_stack.start_worker(
        STOCKADE_ROOTFS="image", STOCKADE_STATE_DIR=str(state)
    )
    bare_stack.start_api_on()
    with httpx.Client(base_url=bare_stack.url, timeout=10) as client:
        ledger = Ledger(client)
        bad = ledger.submit({"source_code": "print(1)", "language_id": 71})
        assert bad is not None, ledger.refused
        outcome = ledger.settle(timeout_s=30)
        body = client.get(f"/submissions/{bad}").json()
        print(f"\nbroken image: status {body['status']}, message {body.get('message')!r}")
        good = ledger.submit({"source_code": "echo ok", "language_id": BASH})
        assert good is not None, ledger.refused
        outcome = ledger.settle(timeout_s=30)
        after = client.get(f"/submissions/{good}").json()
    print(f"next job: status {after['status']}, stdout {after.get('stdout')!r}")
    assert_settled(outcome)
    assert body["status"]["id"] == 13, body
    assert "layer" in str(body.get("message")), body
    assert after["status"]["id"] == 3 and after["stdout"] == "ok\n", after
    assert bare_stack.worker.poll() is None
