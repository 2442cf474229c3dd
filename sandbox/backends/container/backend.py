"""The container tier, parent side: prepare a box, hand its plan to a warm init, watch limits,
collect, tear down."""

from __future__ import annotations

import fcntl
import json
import os
import select
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

from sandbox import caps, cgroups, rlimits, rootfs, seccomp
from sandbox.backends.container.handoff import ChildPlan, Prep, await_ready, send_plan, send_prep
from sandbox.backends.container.reaper import Reaper
from sandbox.backends.container.templates import TemplateCache
from sandbox.backends.container.warm import WarmBox, WarmKey, WarmPool
from sandbox.backends.container.watch import Watch, kill
from sandbox.backends.container.zygote import Zygote
from sandbox.config import HostConfig
from sandbox.errors import SandboxError
from sandbox.images import Images
from sandbox.mounts import Op
from sandbox.network import GrantedNetwork, NetConfig, ensure_firewall
from sandbox.result import BoxResult, Observed, failed, judged
from sandbox.slots import Slot, SlotPool
from sandbox.spec import BoxSpec, Limits, box_path
from sandbox.stdio import Stdio, sealed_memfd

# Placeholder limits while a box waits warm: tight, so an idle init can hold nothing.
_IDLE = cgroups.CgroupLimits(memory_bytes=64 << 20, pids=1)
_LIVE_TRIES = 8
_PIPE_DEFAULT = 64 * 1024
_PIPE_SLACK = 4096  # one more atomic write (PIPE_BUF) than the cap
_PIPE_MAX = 4 * 1024 * 1024


@dataclass
class _Run:
    """What one box holds while it runs; released in one place whatever happens."""

    fds: list[int] = field(default_factory=list)
    warm: WarmBox | None = None
    network: GrantedNetwork | None = None
    finished: bool = False  # init sent its result: nothing of the box runs any more


class ContainerBackend:
    """Long-lived: compiled seccomp filters, templates, warm inits and the slot pool are
    prepared once or in the background, so the hot path only does per-box work. The spec
    arrives validated (sandbox.launcher)."""

    def __init__(
        self, config: HostConfig, cgroup_manager: cgroups.CgroupManager, images: Images | None
    ) -> None:
        self.config = config
        self.slots = SlotPool(
            os.path.join(self.config.run_dir, "slots"), self.config.first_uid, self.config.slots
        )
        self.cgroups = cgroup_manager
        self.templates = TemplateCache(self.config.run_dir, images)
        self.zygote = Zygote()
        self.reaper = Reaper()
        self.net_config = NetConfig()
        self._net_ready = False
        self._last_cap = caps.last_cap()
        self._proc_ops = tuple(rootfs.proc_plan_for_host())
        self._seq = 0
        self._seq_lock = threading.Lock()
        for name in ("run", "compile"):
            seccomp.filter_for(name, self.config.profiles_dir)
        d = Limits()
        # The default run box is kept warm from the start; any other kind (a judge's compile
        # boxes, boxes on an image) is learned on first use.
        self.warm = WarmPool(
            self._start_warm,
            self._finish_warm,
            self._discard_warm,
            {WarmKey("host", d.scratch_bytes, d.scratch_inodes, "run"): self.config.warm_inits},
        )

    def close(self) -> None:
        self.warm.close()
        self.reaper.close()
        self.zygote.close()
        self.templates.close()
        self.slots.close()

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every finished box's init and cgroup are gone."""
        return self.reaper.settle(timeout_s)

    def _start_warm(self, key: WarmKey) -> WarmBox:
        """Slot, template, cgroup, an init and its preparation under way (not awaited:
        several boxes prepare at once, and their cgroup joins share grace periods)."""
        slot = self.slots.acquire()
        cg: cgroups.BoxCgroup | None = None
        try:
            user = rootfs.BoxUser(slot.uid, slot.gid)
            template_fd = self.templates.get(key.rootfs, user)
            with self._seq_lock:
                self._seq += 1
                name = f"{os.getpid()}-{self._seq}"
            cg = self.cgroups.create(name, _IDLE)
            init = self.zygote.request()
            try:
                ops = _box_ops(key.scratch_bytes, key.scratch_inodes, user, self._proc_ops)
                flt = seccomp.filter_for(key.profile, self.config.profiles_dir)
                prep = Prep(user, rootfs.HOSTNAME, ops, self._last_cap, flt.bpf)
                send_prep(init.sock, prep, template_fd, cg.join_fds())
            except OSError as e:
                init.discard()
                raise SandboxError("warm box", "sendmsg(prep)", e.errno or 0) from e
            except BaseException:
                init.discard()
                raise
            return WarmBox(key, init, cg, slot)
        except BaseException:
            if cg is not None:
                cg.destroy()
            self.slots.release(slot)
            raise

    def _finish_warm(self, box: WarmBox) -> None:
        """Wait for the init to report itself prepared; on failure give everything back."""
        try:
            await_ready(box.init.sock)
        except BaseException:
            self._discard_warm(box)
            raise

    def _discard_warm(self, box: WarmBox) -> None:
        box.init.sock.close()  # EOF: the init exits without running anything
        self.reaper.submit(box.init.pidfd, box.cgroup)
        self.slots.release(box.slot)

    def run(self, spec: BoxSpec, stdio: Stdio) -> BoxResult:
        box = _Run()
        started = time.monotonic()
        try:
            return self._run(spec, box, started, stdio)
        except SandboxError as e:
            return _failed(e.describe(), started)
        finally:
            self._teardown(box)

    def _take_live(self, key: WarmKey) -> WarmBox:
        """A warm box whose init still lives: one that died waiting (its zygote was killed,
        say) is given back and another taken."""
        for _ in range(_LIVE_TRIES):
            warm = self.warm.take(key)
            if not select.select([warm.init.pidfd], [], [], 0)[0]:
                return warm
            self._discard_warm(warm)
        raise SandboxError("warm box", "pidfd poll", 0, f"{_LIVE_TRIES} warm inits in a row died")

    def _run(self, spec: BoxSpec, box: _Run, started: float, stdio: Stdio) -> BoxResult:
        lim = spec.limits
        key = WarmKey(spec.rootfs, lim.scratch_bytes, lim.scratch_inodes, spec.profile)
        box.warm = warm = self._take_live(key)
        cg = warm.cgroup
        cg.set_limits(cgroups.CgroupLimits(lim.memory_bytes, lim.pids))
        stdin_fd = sealed_memfd(spec.stdin) if stdio.stdin_fd < 0 else os.dup(stdio.stdin_fd)
        box.fds.append(stdin_fd)
        out_r, out_w = _pipe(box)
        _room_past(out_w, lim.output_bytes)
        if stdio.stdout_fd >= 0:
            os.dup2(stdio.stdout_fd, out_w)  # the program writes to the caller's pipe
            _close_owned(box, out_r)
            out_r = -1
        if stdio.owned:
            for fd in {stdio.stdin_fd, stdio.stdout_fd} - {-1}:
                os.close(fd)
        err_r, err_w = _pipe(box)
        _room_past(err_w, lim.output_bytes)
        rep_r, rep_w = _pipe(box)
        res_r, res_w = _pipe(box)
        sync_r, sync_w = _pipe(box) if spec.network else (-1, -1)
        plan = ChildPlan(
            sync_r=sync_r,
            files=tuple((box_path(f.path), f.content, f.mode) for f in spec.files),
            rlimits=tuple(rlimits.plan(lim)),
            argv=spec.argv,
            env=_box_env(spec, self.config.box_path),
            stdin_fd=stdin_fd,
            stdout_w=out_w,
            stderr_w=err_w,
            report_w=rep_w,
            result_w=res_w,
            # A trailing slash asks for a whole directory tree.
            collect=tuple(box_path(p) + ("/" if p.endswith("/") else "") for p in spec.collect),
            collect_max_bytes=spec.collect_max_bytes,
        )
        try:
            with warm.init.sock:
                send_plan(warm.init.sock, plan)
        except OSError as e:
            raise SandboxError("box", "sendmsg(plan)", e.errno or 0, "the box's init died") from e
        for fd in (out_w, err_w, rep_w, res_w, sync_r, stdin_fd):
            if fd >= 0:
                _close_owned(box, fd)
        if spec.network:
            self._attach_network(box, warm.slot, warm.init.pid, sync_w)
        watch = Watch(spec, cg, warm.init.pidfd, started, out_r, err_r, res_r)
        watch.echo = stdio.echo
        watch.loop()
        box.finished = True
        return self._result(spec, cg, watch, _read_report(rep_r), started)

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
        watch: Watch,
        report: dict[str, str],
        started: float,
    ) -> BoxResult:
        if report.get("kind") == "setup":
            return _failed(report["message"], started)
        header, files, refused = watch.decode_result()
        exec_error = report.get("message", "") if report.get("kind") == "exec" else ""
        if header is None and not watch.killed_for and not exec_error:
            if cg.oom_killed():
                header = {}  # the kernel's OOM killer chose init: the box used too much memory
            else:
                return _failed("init: ended before the program did", started)
        header = header or {}
        status_raw = header.get("status")
        wall = _number(header.get("wall"), time.monotonic() - started)
        init_cpu = _number(header.get("init_cpu"), 0.0)
        oom = cg.oom_killed()
        killed = oom or (isinstance(status_raw, int) and os.WIFSIGNALED(status_raw))
        obs = Observed(
            wait_status=status_raw if isinstance(status_raw, int) else None,
            cpu_time_s=max(cg.cpu_time_s() - init_cpu, 0.0),
            wall_time_s=wall,
            oom_killed=oom,
            # A program killed with its output already at the cap (a flood that a runtime
            # buffered in memory until the OOM killer came first, say) broke the output limit.
            output_exceeded=watch.killed_for == "output" or (killed and watch.output_full),
            wall_exceeded=watch.killed_for == "wall",
            cpu_limit_s=spec.limits.cpu_time_s,
            wall_limit_s=spec.limits.wall_time_s,
            exec_error=exec_error,
        )
        return judged(
            obs, cg.memory_peak_bytes(), bytes(watch.out), bytes(watch.err), files, refused
        )

    def _teardown(self, box: _Run) -> None:
        if box.warm is not None:
            init = box.warm.init
            init.sock.close()  # a box that failed before its plan went: init exits at EOF
            if not box.finished:
                kill(init.pidfd)  # left early (an exception, a signal): end the program now
            if box.network is not None:
                # Kill first: the veth must be gone before the slot is handed out again.
                kill(init.pidfd)
                select.select([init.pidfd], [], [], 5.0)
                box.network.detach()
            self.reaper.submit(init.pidfd, box.warm.cgroup)
            self.slots.release(box.warm.slot)
        for fd in box.fds:
            os.close(fd)
        box.fds.clear()


@lru_cache(maxsize=256)
def _box_ops(
    scratch_bytes: int, scratch_inodes: int, user: rootfs.BoxUser, proc_ops: tuple[Op, ...]
) -> tuple[Op, ...]:
    return tuple(rootfs.scratch_plan(scratch_bytes, scratch_inodes, user)) + proc_ops


def _pipe(box: _Run) -> tuple[int, int]:
    r, w = os.pipe()
    box.fds += [r, w]
    return r, w


def _room_past(fd: int, output_bytes: int) -> None:
    """A pipe that holds more than the output cap: a flood then always gets past the cap
    before its writer blocks, so OLE does not depend on how soon the watch reads. (A 64 KiB
    cap on the default 64 KiB pipe let a runtime that buffers blocked writes in memory, as
    Node does, stop just under the cap and reach the OOM killer first.) Best effort: the
    kernel caps the size; above that the race stays as it was."""
    want = min(output_bytes + _PIPE_SLACK, _PIPE_MAX)
    if want > _PIPE_DEFAULT:
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, want)
        except OSError:
            pass


def _close_owned(box: _Run, fd: int) -> None:
    os.close(fd)
    box.fds.remove(fd)


def _read_report(fd: int) -> dict[str, str]:
    raw = os.read(fd, 65536)
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


def _number(value: object, default: float) -> float:
    """A number from init's JSON header, or default where it is missing or not a number."""
    return float(value) if isinstance(value, int | float) else default


def _failed(message: str, started: float) -> BoxResult:
    return failed(message, time.monotonic() - started)
