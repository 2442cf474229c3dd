"""Template mount namespaces: each slot's read-only root is built once, then cloned per box.

Copying a small, finished mount tree with unshare(CLONE_NEWNS) costs less than copying the
host's tree and rebuilding the root for every box, and needs no pivot_root per box."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import threading

from sandbox import mounts as m
from sandbox import syscalls as sc
from sandbox.cgroups.base import pid_alive
from sandbox.errors import SandboxError
from sandbox.images import Images
from sandbox.rootfs import BoxUser, image_template_plan, init_dir_plan, template_plan

_SEQ = itertools.count(1)  # several caches in one process (tests, a probe) stay apart


def build_template(stage_dir: str, ops: list[m.Op]) -> int:
    """Build a mount namespace whose root is `ops` applied to a fresh tmpfs; return an fd
    that keeps it alive (a namespace lives while an fd to it is open: namespaces(7))."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            os.umask(0)
            sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL, step="template")
            sc.unshare(sc.CLONE_NEWNS, step="template: namespace")
            # Private first: nothing mounted here may propagate back to the host.
            sc.mount(
                None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None, step="template: make private"
            )
            m.apply(ops, stage_dir, step="template")
            m.enter_root(stage_dir, step="template: pivot_root")
            os.write(ready_w, b"{}")
        except SandboxError as e:
            os.write(ready_w, json.dumps({"error": e.describe()}).encode())
        except BaseException as e:
            os.write(ready_w, json.dumps({"error": f"template: {type(e).__name__}: {e}"}).encode())
        os.read(go_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        reply = json.loads(os.read(ready_r, 65536) or b'{"error": "template: builder died"}')
        if "error" in reply:
            raise SandboxError("template", "build", 0, reply["error"])
        return sc.ns_fd(pid, "mnt")
    finally:
        os.write(go_w, b"1")
        os.close(go_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


class TemplateCache:
    """One template per (rootfs, slot): the slot's uid is baked into its /etc/passwd.
    `host` binds the host's /usr; any other name is an image of the layer store, mounted
    as a read-only overlay under a per-slot init layer directory."""

    def __init__(self, run_dir: str, images: Images | None = None) -> None:
        self.stage_dir = os.path.join(run_dir, "stage")
        inits = os.path.join(run_dir, "init")
        for path in (self.stage_dir, inits):
            os.makedirs(path, mode=0o700, exist_ok=True)
        _sweep_dead(inits)
        # This cache's own: every Celery child and CLI run on a host has a launcher, and
        # the same slot's uid is used by each in turn, so a shared directory would be
        # rebuilt or removed under another launcher's templates.
        self.init_root = os.path.join(inits, f"{os.getpid()}.{next(_SEQ)}")
        os.mkdir(self.init_root, 0o700)
        self._images = images
        self._fds: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return ["host", *(self._images.images() if self._images else [])]

    def knows(self, rootfs: str) -> bool:
        return rootfs == "host" or rootfs in self.names()

    def get(self, rootfs: str, user: BoxUser) -> int:
        key = (rootfs, user.uid)
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        with self._lock:
            fd = self._fds.get(key)
            if fd is None:
                fd = self._fds[key] = build_template(self.stage_dir, self._plan(rootfs, user))
            return fd

    def _plan(self, rootfs: str, user: BoxUser) -> list[m.Op]:
        if rootfs == "host":
            return template_plan(user)
        if self._images is None or rootfs not in self._images.images():
            raise SandboxError("rootfs", "lookup", 0, f"no image named {rootfs!r}")
        layers = self._images.image_layers(rootfs)
        init_dir = os.path.join(self.init_root, f"{rootfs}-{user.uid}")
        # Rebuilt from nothing: it is small, and an old one may hold another uid's files.
        shutil.rmtree(init_dir, ignore_errors=True)
        os.mkdir(init_dir, 0o755)
        old = os.umask(0)
        try:
            m.apply(init_dir_plan(user), init_dir, step="init layer")
        finally:
            os.umask(old)
        return image_template_plan(init_dir, layers)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
        shutil.rmtree(self.init_root, ignore_errors=True)


def _sweep_dead(inits: str) -> None:
    """Remove the init layers of launchers that died without closing (named <pid>.<n>)."""
    for name in os.listdir(inits):
        pid, dot, seq = name.partition(".")
        if dot and pid.isdigit() and seq.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(os.path.join(inits, name), ignore_errors=True)
