"""Parent side of clone: prepare a box, fork its init, watch limits, collect, tear down."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import struct
import threading
import time
from dataclasses import dataclass, field

from sandbox import caps, cgroups, rlimits, rootfs, seccomp
from sandbox import syscalls as sc
from sandbox.child import ChildPlan, run_init
from sandbox.config import HostConfig
from sandbox.errors import SandboxError, SpecError
from sandbox.network import GrantedNetwork, NetConfig, NetnsPool, ensure_firewall
from sandbox.result import BoxResult, Observed, Status, classify
from sandbox.slots import Slot, SlotPool
from sandbox.spec import BoxSpec, box_path, validate
from sandbox.templates import TemplateCache

_READ_CHUNK = 1 << 16
_CPUS = os.cpu_count() or 1


@dataclass
class _Run:
    """What one box holds while it runs; closed in one place whatever happens."""

    fds: list[int] = field(default_factory=list)
    cgroup: cgroups.BoxCgroup | None = None
    slot: Slot | None = None
    network: GrantedNetwork | None = None
    pid: int = 0


class Launcher:
    """Long-lived: compiled seccomp filters, cgroup roots, templates, a netns pool and the
    slot pool are prepared once, so the warm path only does per-box work."""

    def __init__(self, config: HostConfig | None = None) -> None:
        self.config = config or HostConfig.from_env()
        run_dir = self.config.run_dir
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        self.slots = SlotPool(os.path.join(run_dir, "slots"), self.config.first_uid, self.config.slots)
        self.cgroups = cgroups.probe()
        self.templates = TemplateCache(os.path.join(run_dir, "stage"))
        self.netns = NetnsPool(self.config.netns_pool)
        self.net_config = NetConfig()
        self._net_ready = False
        self._last_cap = caps.last_cap()
        self._proc_ops = tuple(rootfs.proc_plan_for_host())
        self._self_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self._seq = 0
        self._lock = threading.Lock()
        for name in ("run", "compile"):
            seccomp.filter_for(name, self.config.profiles_dir)

    def close(self) -> None:
        self.netns.close()
        self.templates.close()
        self.cgroups.close()
        self.slots.close()
        os.close(self._self_pidns)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, spec: BoxSpec) -> BoxResult:
        problems = validate(spec)
        if problems:
            raise SpecError(problems)
        box = _Run()
        started = time.monotonic()
        try:
            return self._run(spec, box, started)
        except SandboxError as e:
            return _failed(e.describe(), started)
        finally:
            self._teardown(box)

    def _run(self, spec: BoxSpec, box: _Run, started: float) -> BoxResult:
        lim = spec.limits
        box.slot = slot = self.slots.acquire()
        user = rootfs.BoxUser(slot.uid, slot.gid)
        template_fd = self.templates.get(spec.rootfs, user)
        with self._lock:
            self._seq += 1
            name = f"{os.getpid()}-{slot.index}-{self._seq}"
        box.cgroup = cg = self.cgroups.create(name, cgroups.CgroupLimits(lim.memory_bytes, lim.pids))
        flt = seccomp.filter_for(spec.profile, self.config.profiles_dir)
        netns_fd = -1 if spec.network else self.netns.take()
        if netns_fd >= 0:
            box.fds.append(netns_fd)
        stdin_fd = _sealed_memfd(spec.stdin)
        box.fds.append(stdin_fd)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rep_r, rep_w = os.pipe()
        res_r, res_w = os.pipe()
        box.fds += [out_r, out_w, err_r, err_w, rep_r, rep_w, res_r, res_w]
        sync_r = sync_w = -1
        if spec.network:
            sync_r, sync_w = os.pipe()
            box.fds += [sync_r, sync_w]
        plan = ChildPlan(
            template_fd=template_fd,
            netns_fd=netns_fd,
            net_granted=spec.network,
            sync_r=sync_r,
            hostname=rootfs.HOSTNAME,
            user=user,
            box_ops=tuple(rootfs.scratch_plan(lim.scratch_bytes, lim.scratch_inodes, user))
            + self._proc_ops,
            files=tuple((box_path(f.path), f.content, f.mode) for f in spec.files),
            rlimits=tuple(rlimits.plan(lim)),
            cgroup_fds=tuple(cg.join_fds()),
            seccomp_install=flt.install,
            last_cap=self._last_cap,
            argv=spec.argv,
            env=_box_env(spec, self.config.box_path),
            stdin_fd=stdin_fd,
            stdout_w=out_w,
            stderr_w=err_w,
            report_w=rep_w,
            result_w=res_w,
            collect=tuple(box_path(p) for p in spec.collect),
            collect_max_bytes=spec.collect_max_bytes,
        )
        box.pid = pid = _fork_into_new_pidns(self._self_pidns)
        if pid == 0:
            run_init(plan)
        for fd in (out_w, err_w, rep_w, res_w, sync_r):
            if fd >= 0:
                _close_owned(box, fd)
        if spec.network:
            self._attach_network(box, slot, pid, sync_w)
        watch = _Watch(spec, cg, pid, started, out_r, err_r, res_r)
        watch.loop()
        _, wait_status = os.waitpid(pid, 0)
        box.pid = 0
        return self._result(spec, cg, watch, wait_status, _read_report(rep_r), started)

    def _attach_network(self, box: _Run, slot: Slot, pid: int, sync_w: int) -> None:
        if not self._net_ready:
            ensure_firewall(self.net_config)
            self._net_ready = True
        box.network = GrantedNetwork.attach(slot.index, pid, self.net_config)
        os.write(sync_w, b"1")

    def _result(
        self,
        spec: BoxSpec,
        cg: cgroups.BoxCgroup,
        watch: _Watch,
        init_status: int,
        report: dict[str, str],
        started: float,
    ) -> BoxResult:
        if report.get("kind") == "setup":
            return _failed(report["message"], started)
        header, files = watch.decode_result()
        program_status = header.get("status") if header else None
        wall = float(header["wall"]) if header else time.monotonic() - started
        if program_status is None and not (watch.killed_for or report):
            return _failed(f"init: exited with status {init_status} before the program ended", started)
        obs = Observed(
            wait_status=program_status,
            cpu_time_s=cg.cpu_time_s(),
            wall_time_s=wall,
            oom_killed=cg.oom_killed(),
            output_exceeded=watch.killed_for == "output",
            wall_exceeded=watch.killed_for == "wall",
            cpu_limit_s=spec.limits.cpu_time_s,
            wall_limit_s=spec.limits.wall_time_s,
            exec_error=report.get("message", "") if report.get("kind") == "exec" else "",
        )
        status, code, sig, message = classify(obs)
        return BoxResult(
            status=status,
            exit_code=code,
            signal=sig,
            time=obs.cpu_time_s,
            wall_time=wall if header else time.monotonic() - started,
            memory=cg.memory_peak_bytes(),
            stdout=bytes(watch.out),
            stderr=bytes(watch.err),
            message=message,
            files=files,
        )

    def _teardown(self, box: _Run) -> None:
        if box.pid:
            # Killing a pid namespace's init kills every process in it (pid_namespaces(7)).
            _kill(box.pid)
            os.waitpid(box.pid, 0)
        if box.cgroup is not None:
            box.cgroup.destroy()
        if box.network is not None:
            box.network.detach()
        for fd in box.fds:
            os.close(fd)
        box.fds.clear()
        if box.slot is not None:
            self.slots.release(box.slot)


class _Watch:
    """The launcher's wait: pipes drained, output capped, CPU and wall limits enforced."""

    def __init__(
        self,
        spec: BoxSpec,
        cg: cgroups.BoxCgroup,
        pid: int,
        started: float,
        out_r: int,
        err_r: int,
        res_r: int,
    ) -> None:
        self.spec, self.cg, self.pid = spec, cg, pid
        self.deadline = started + spec.limits.wall_time_s
        self.out = bytearray()
        self.err = bytearray()
        self.res = bytearray()
        self.killed_for = ""
        self._fds = {out_r: self.out, err_r: self.err, res_r: self.res}

    def loop(self) -> None:
        lim = self.spec.limits
        pidfd = os.pidfd_open(self.pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        for fd in self._fds:
            poller.register(fd, select.POLLIN)
        open_fds = set(self._fds)
        init_done = False
        try:
            while open_fds or not init_done:
                now = time.monotonic()
                if now >= self.deadline and not init_done:
                    self._kill("wall")
                    self.deadline = now + 1.0  # reaped within it; then stop waiting on pipes
                elif now >= self.deadline:
                    break
                timeout = self.deadline - now
                if not init_done and not self.killed_for:
                    used = self.cg.cpu_time_s()
                    if used >= lim.cpu_time_s:
                        self._kill("cpu")
                        continue
                    # The soonest the CPU limit can be reached with every core busy.
                    timeout = min(timeout, max((lim.cpu_time_s - used) / _CPUS, 0.005))
                for fd, _ in poller.poll(timeout * 1000):
                    if fd == pidfd:
                        init_done = True
                        poller.unregister(pidfd)
                        continue
                    if not self._drain(fd):
                        poller.unregister(fd)
                        open_fds.discard(fd)
        finally:
            os.close(pidfd)

    def _drain(self, fd: int) -> bool:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        buf = self._fds[fd]
        if buf is self.res:
            buf += chunk
            return True
        room = self.spec.limits.output_bytes - len(self.out) - len(self.err)
        buf += chunk[: max(room, 0)]
        if len(chunk) > room and not self.killed_for:
            self._kill("output")
        return True

    def _kill(self, why: str) -> None:
        if not self.killed_for:
            self.killed_for = why
        _kill(self.pid)
        self.cg.kill_all()

    def decode_result(self) -> tuple[dict[str, object] | None, dict[str, bytes]]:
        raw = bytes(self.res)
        if len(raw) < 4:
            return None, {}
        (n,) = struct.unpack("<I", raw[:4])
        header = json.loads(raw[4 : 4 + n])
        files: dict[str, bytes] = {}
        pos = 4 + n
        for path, size in header.get("files", {}).items():
            if isinstance(size, int):
                files[path] = raw[pos : pos + size]
                pos += size
        return header, files


def _fork_into_new_pidns(self_pidns: int) -> int:
    """fork() with the child as pid 1 of a new pid namespace. unshare(CLONE_NEWPID) only
    changes this thread's pid_for_children, which setns restores right after the fork."""
    sc.unshare(sc.CLONE_NEWPID, step="pid namespace")
    try:
        pid = os.fork()
    except OSError as e:
        sc.setns(self_pidns, sc.CLONE_NEWPID, step="pid namespace")
        raise SandboxError("fork", "fork()", e.errno or 0) from e
    if pid != 0:
        sc.setns(self_pidns, sc.CLONE_NEWPID, step="pid namespace")
    return pid


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _close_owned(box: _Run, fd: int) -> None:
    os.close(fd)
    box.fds.remove(fd)


def _sealed_memfd(data: bytes) -> int:
    """stdin as a sealed memfd: the program can seek it and can never change it."""
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    fcntl.fcntl(
        fd,
        fcntl.F_ADD_SEALS,
        fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL,
    )
    return fd


def _read_report(fd: int) -> dict[str, str]:
    try:
        raw = os.read(fd, 65536)
    except OSError as e:
        if e.errno == errno.EAGAIN:
            return {}
        raise
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"kind": "setup", "message": raw.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {}


def _box_env(spec: BoxSpec, path: str) -> dict[str, str]:
    """Only what the spec names, plus a minimal PATH, HOME and LANG: the host's environment
    never reaches the box."""
    env = {"PATH": path, "HOME": "/box", "LANG": "C.UTF-8"}
    env.update(dict(spec.env))
    return env


def _failed(message: str, started: float) -> BoxResult:
    return BoxResult(
        status=Status.XX,
        exit_code=None,
        signal=None,
        time=0.0,
        wall_time=time.monotonic() - started,
        memory=0,
        stdout=b"",
        stderr=b"",
        message=message,
    )
