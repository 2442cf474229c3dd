"""The zygote: a small single-threaded root process that clones every box's init ahead of time.

Forking a big, multi-threaded Python process (a Celery worker) costs milliseconds: page tables
are copied and CPython runs its after-fork hooks. This process stays small and never starts a
thread, so it can clone with a raw syscall (no hooks, nothing locked by another thread). Each
clone is a box's future init in fresh pid, uts, ipc and net namespaces; it prepares what it can
and waits for its plan. The launcher keeps a few of them warm. The zygote exits when the
launcher's end of the socket closes."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass

from sandbox import syscalls as sc
from sandbox.backends.container.child import retitle, run_warm
from sandbox.errors import SandboxError
from sandbox.fdpass import recv_fds, send_fds

CLONE_PIDFD = 0x00001000
SYS_clone = 56
BOX_NAMESPACES = sc.CLONE_NEWPID | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET

# PyDLL keeps the GIL across the call: the child must come back holding it.
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


def _clone(flags: int) -> tuple[int, int]:
    """clone(2) with fork semantics (no new stack) into new namespaces; returns (pid, pidfd)."""
    pidfd = ctypes.c_int(-1)
    pid = _pylibc.syscall(
        ctypes.c_long(SYS_clone),
        ctypes.c_ulong(flags | CLONE_PIDFD | signal.SIGCHLD),
        ctypes.c_void_p(0),
        ctypes.byref(pidfd),
        ctypes.c_void_p(0),
        ctypes.c_ulong(0),
    )
    if pid < 0:
        raise SandboxError("clone", f"clone({flags:#x})", ctypes.get_errno())
    return int(pid), pidfd.value


def serve(sock: socket.socket) -> None:
    # Boxes are reaped by the kernel: the launcher learns of their end through the pidfd.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        req = sock.recv(4)
        if len(req) < 4:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid, pidfd = _clone(BOX_NAMESPACES)
        except SandboxError as e:
            reply = e.describe().encode()[:4000]
            sock.sendall(struct.pack("<iI", -1, len(reply)) + reply)
        else:
            if pid == 0:
                sock.close()
                ours.close()
                run_warm(theirs)
            send_fds(sock, struct.pack("<iI", pid, 0), [pidfd, ours.fileno()])
            os.close(pidfd)
        ours.close()
        theirs.close()


@dataclass
class WarmInit:
    """A box's init waiting for its plan: its pid (host pid namespace), pidfd and socket."""

    pid: int
    pidfd: int
    sock: socket.socket

    def discard(self) -> None:
        self.sock.close()  # EOF: the init exits without building anything
        os.close(self.pidfd)


class Zygote:
    """Launcher side: starts the zygote process and asks it for inits. A zygote that died
    (killed by an operator or the OOM killer) is started again on the next request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        import subprocess  # here, not at the top: the zygote itself never needs it

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        # -S: no site module, no .pth files: a smaller zygote, and so cheaper clones.
        # The folder that holds sandbox/: this file is sandbox/backends/container/zygote.py.
        root = os.path.abspath(__file__)
        for _ in range(4):
            root = os.path.dirname(root)
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-m", "sandbox.backends.container.zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": root},
        )
        theirs.close()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def request(self) -> WarmInit:
        with self._lock:
            if self._proc.poll() is not None:
                self._sock.close()
                self._start()
            try:
                self._sock.sendall(struct.pack("<I", 0))
                msg, fds = recv_fds(self._sock, 8, 2)
            except OSError as e:
                raise SandboxError("zygote", "sendmsg/recvmsg", e.errno or 0) from e
            if len(msg) < 8:
                raise SandboxError("zygote", "recvmsg", 0, "the zygote process is gone")
            pid, extra = struct.unpack("<iI", msg)
            if pid < 0:
                raise SandboxError("zygote", "clone", 0, self._sock.recv(extra).decode())
        return WarmInit(pid, fds[0], socket.socket(fileno=fds[1]))

    def close(self) -> None:
        self._sock.close()
        try:
            self._proc.wait(timeout=5)
        except Exception:  # subprocess.TimeoutExpired
            self._proc.kill()
            self._proc.wait()


def main() -> None:
    retitle(b"stockade-zygote")
    sock = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(sock.fileno(), False)
    # No PDEATHSIG: it fires when the launcher's *thread* ends. EOF on the socket is the signal.
    # Every init is a copy of this process, and a page it writes is a page copied. The
    # collector writes to every object it visits: freeze what exists now (the modules) and
    # keep the collector off, here and so in every init (short-lived, no cycles to free).
    gc.disable()
    gc.freeze()
    serve(sock)


if __name__ == "__main__":
    main()
