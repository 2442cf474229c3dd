"""What the launcher tells a box's init, and how: the Prep and ChildPlan records and the
socket protocol that carries them with their file descriptors (SCM_RIGHTS)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import socket
import struct
from dataclasses import dataclass

from sandbox import mounts
from sandbox.errors import SandboxError
from sandbox.fdpass import recv_fds, send_fds
from sandbox.rootfs import BoxUser

# Not typing.TYPE_CHECKING: this module is loaded in the zygote, and typing is a megabyte
# more in every box's init (see sandbox/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MAX_FDS = 32
_PLAN_FDS = ("sync_r", "stdin_fd", "stdout_w", "stderr_w", "report_w", "result_w")


@dataclass(frozen=True)
class Prep:
    """What a warm init needs before any request: its slot's identity and mounts."""

    user: BoxUser
    hostname: str
    box_ops: tuple[mounts.Op, ...]
    last_cap: int
    seccomp_bpf: bytes


@dataclass(frozen=True)
class ChildPlan:
    """One request, pickled to its warm init; init's copies of the file descriptors replace
    the launcher's numbers (with_fds)."""

    sync_r: int  # -1 unless the launcher must attach a veth before the program starts
    files: tuple[tuple[str, bytes, int], ...]
    rlimits: tuple[tuple[int, int, int], ...]
    argv: tuple[str, ...]
    env: dict[str, str]
    stdin_fd: int
    stdout_w: int
    stderr_w: int
    report_w: int  # setup or exec errors, as JSON
    result_w: int  # the program's wait status, wall time and collected files
    collect: tuple[str, ...]
    collect_max_bytes: int

    def fd_list(self) -> list[int]:
        return [getattr(self, f) for f in _PLAN_FDS if getattr(self, f) >= 0]

    def with_fds(self, fds: list[int]) -> ChildPlan:
        it = iter(fds)
        changes: dict[str, Any] = {f: next(it) for f in _PLAN_FDS if getattr(self, f) >= 0}
        return dataclasses.replace(self, **changes)


# --- the launcher's side of the conversation ---


def send_prep(sock: socket.socket, prep: Prep, template_fd: int, cgroup_fds: list[int]) -> None:
    _send(sock, prep, [template_fd, *cgroup_fds])


def await_ready(sock: socket.socket) -> None:
    """Block until the warm init is prepared; its failure comes back as a SandboxError."""
    raw = sock.recv(65536)
    if raw != b"R":
        detail = json.loads(raw).get("message", "") if raw else "warm init died while preparing"
        raise SandboxError("warm box", "prepare", 0, detail)


def send_plan(sock: socket.socket, plan: ChildPlan) -> None:
    _send(sock, plan, plan.fd_list())


def _send(sock: socket.socket, obj: object, fds: list[int]) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    send_fds(sock, struct.pack("<I", len(payload)), fds)
    sock.sendall(payload)


def receive(sock: socket.socket) -> tuple[object, list[int]]:
    head, fds = recv_fds(sock, 4, _MAX_FDS)
    if not head:
        raise EOFError
    head += recv_exact(sock, 4 - len(head))
    (size,) = struct.unpack("<I", head)
    return pickle.loads(recv_exact(sock, size)), fds


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)
