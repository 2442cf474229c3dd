"""Fault 7: disks close to full. (a) Programs fill their box's scratch tmpfs, by bytes and by
inodes, while ordinary jobs run beside them: each filler sees ENOSPC inside its own box, and
nothing else notices. (b) Redis's AOF lives on a nearly full disk: once a write fails, Redis
refuses writes (MISCONF), the API answers 503 rather than accept what it cannot store, and
when space comes back everything recovers. Accounting as for every fault: lost 0, stuck 0."""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import PYTHON
from tests.faults.conftest import FaultStack, Ledger, assert_settled

MIB = 1 << 20
FILL_BYTES = """
import errno
n = 0
try:
    while True:
        with open(f"f{n}", "wb") as f:
            for _ in range(8):
                f.write(b"x" * 65536)
        n += 1
except OSError as e:
    print(errno.errorcode[e.errno])
"""
FILL_INODES = """
import errno
n = 0
try:
    while True:
        open(f"i{n}", "wb").close()
        n += 1
except OSError as e:
    print(errno.errorcode[e.errno])
"""
ORDINARY = "print(sum(range(10)))\n"


def _job(source: str, expected: str) -> dict[str, object]:
    # A memory limit above the 64 MiB scratch: tmpfs pages count against it.
    return {
        "source_code": source,
        "language_id": PYTHON,
        "expected_output": expected,
        "memory_limit": 256000,
    }


def test_full_scratch_stays_in_its_box(stack: FaultStack, ledger: Ledger) -> None:
    kinds: dict[str, str] = {}
    for _ in range(3):
        for source, expected, kind in (
            (FILL_BYTES, "ENOSPC", "bytes"),
            (ORDINARY, "45", "ordinary"),
            (FILL_INODES, "ENOSPC", "inodes"),
        ):
            token = ledger.submit(_job(source, expected))
            assert token is not None, ledger.refused
            kinds[token] = kind
    outcome = ledger.settle(timeout_s=90)
    assert_settled(outcome)
    for token, kind in kinds.items():
        body = ledger.client.get(f"/submissions/{token}").json()
        assert body["status"]["id"] == 3, (kind, body)  # Accepted: ENOSPC (or 45) as expected
    assert stack.worker is not None and stack.worker.poll() is None


# --- (b) the state disk ---------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(path: Path, size: int) -> None:
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, f"size={size}".encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount(tmpfs, {path}): {os.strerror(err)}")


def _umount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), 0) != 0:
        _libc.umount2(str(path).encode(), 2)  # MNT_DETACH: never leave the test's mount behind


def _fill(disk: Path, leave: int) -> Path:
    """A file that takes all but `leave` bytes of the disk."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    subprocess.run(
        ["fallocate", "-l", str(st.f_bavail * st.f_frsize - leave), str(filler)], check=True
    )
    return filler


def test_redis_disk_full_refuses_then_recovers(bare_stack: FaultStack) -> None:
    disk = bare_stack.tmp / "redis-disk"
    disk.mkdir()
    bare_stack.halt(bare_stack.redis)  # the fixture's Redis: this one gets a small disk
    _mount_tmpfs(disk, 16 * MIB)
    try:
        bare_stack.start_redis(disk)
        bare_stack.worker = bare_stack.start_worker()
        bare_stack.start_api_on()
        with httpx.Client(base_url=bare_stack.url, timeout=10) as client:
            ledger = Ledger(client)
            for _ in range(5):
                assert ledger.submit() is not None, ledger.refused
            filler = _fill(disk, 16 * 1024)
            # Fill the last bytes with accepted work until Redis's AOF write fails.
            tries = 0
            while "503" not in ledger.refused and tries < 2000:
                ledger.submit({"source_code": ORDINARY + "#" * 2000, "language_id": PYTHON})
                tries += 1
            full_at = len(ledger.accepted)
            print(f"\naccepted {full_at} before the disk filled; refused {ledger.refused}")
            assert "503" in ledger.refused, "the API never refused while the disk was full"
            assert ledger.submit() is None  # still full: still refused, never a 500
            filler.unlink()
            deadline = time.monotonic() + 30
            while ledger.submit() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert len(ledger.accepted) > full_at, f"no recovery: {ledger.refused}"
            outcome = ledger.settle(timeout_s=90)
        assert_settled(outcome)
        assert set(ledger.refused) == {"503"}, ledger.refused
        assert bare_stack.worker.poll() is None and bare_stack.api is not None
        assert bare_stack.api.poll() is None
    finally:
        bare_stack.close()  # Redis must be gone before its disk is unmounted
        _umount(disk)
