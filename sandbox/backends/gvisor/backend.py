"""The gVisor tier: a BoxSpec run by runsc (a user-space kernel, the Sentry) under a host
cgroup made by us, with the container tier's limits, verdicts, files and collect.

What the host cgroup counts: the Sentry (the program's syscalls, emulated), the gofer (its
file operations) and, on the ptrace platform, the stub processes in which the program's
own instructions run. runsc boots the Sentry and the gofer before the program starts
(about 0.12 s of CPU here), so the box's CPU time is the cgroup's cpuacct.usage at the end
minus its value when runsc wrote the pid file (create finished, start next): the program
plus the Sentry's and the gofer's work on its behalf, without the boot. Memory is the
program's own, the cgroup's shmem (the Sentry's memory file: gvisor_watch.py), held to the
spec's limit by the watcher; the cgroup's limit is that plus the Sentry's allowance, a
backstop whose breach is MLE too."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox import cgroups
from sandbox.backends.gvisor import bundle, sweep
from sandbox.backends.gvisor import rootfs as fs
from sandbox.backends.gvisor.logs import quiet_sandbox_logs, runsc_error, sentry_panic, wait_status
from sandbox.backends.gvisor.watch import RunscWatch
from sandbox.config import HostConfig
from sandbox.errors import SandboxError
from sandbox.images import Images
from sandbox.result import BoxResult, Observed, failed, judged
from sandbox.rootfs import BoxUser
from sandbox.settings import setting
from sandbox.spec import BoxSpec
from sandbox.stdio import Stdio, sealed_memfd

RUNSC = "/usr/bin/runsc"
DEFAULT_PLATFORM = "ptrace"
PROBE_TIMEOUT_S = 10.0
_RUNSC_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
# Container ids and box dirs, unique in this process across backends (itertools.count's
# next() is atomic under the GIL).
_SEQ = itertools.count(1)
_EXEC_FAILED = "creating process: failed to load"


# systrap or kvm are faster where they work; Debian 12's runsc knows no systrap and its kvm
# hangs on a PVM host, so ptrace is the default.
PLATFORM = setting(
    "STOCKADE_GVISOR_PLATFORM", DEFAULT_PLATFORM, "runsc's platform for the gvisor tier"
)


def platform_from_env(env: Mapping[str, str] | None = None) -> str:
    return PLATFORM.as_str(env)


def probe(config: HostConfig) -> str | None:
    """None when runsc runs /bin/true here on the configured platform within a timeout."""
    runsc = shutil.which("runsc") or RUNSC
    platform = platform_from_env()
    try:
        done = subprocess.run(
            [runsc, "--version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`{runsc} --version` failed: {e}"
    if done.returncode != 0:
        return f"`{runsc} --version` exited with {done.returncode}: {done.stderr.strip()}"
    if platform not in bundle.PLATFORMS:
        return f"STOCKADE_GVISOR_PLATFORM={platform!r} is not one of {bundle.PLATFORMS}"
    manager = cgroups.probe()
    try:
        backend = GvisorBackend(config, None, manager)
    except (SandboxError, OSError) as e:
        manager.close()
        return f"gvisor: setting up the backend failed: {e}"
    try:
        r = backend.run(BoxSpec(argv=("/bin/true",), tier="gvisor"), Stdio())
    finally:
        backend.close()
        manager.close()
    if r.status.value != "OK":
        return f"runsc --platform={platform} could not run /bin/true: {r.status}: {r.message}"
    return None


@dataclass
class _Box:
    """What one box holds while it runs; released in one place whatever happens."""

    cid: str = ""
    box_dir: str = ""
    cgroup: cgroups.BoxCgroup | None = None
    mounts: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    caller_fds: list[int] = field(default_factory=list)  # the caller's, closed once copied


class GvisorBackend:
    """Boxes through `runsc run`; the host side (cgroup, scratch, image overlay, state) is
    made before runsc starts and removed after it ends, whatever happened."""

    def __init__(
        self, config: HostConfig, images: Images | None, cgroup_manager: cgroups.CgroupManager
    ) -> None:
        """cgroup_manager: the caller's, which it closes."""
        self.config = config
        self.images = images
        self.runsc = shutil.which("runsc") or RUNSC
        self.platform = platform_from_env()
        self.runtime = f"gvisor/{self.platform}"
        base = os.path.join(config.run_dir, "gvisor")
        self.state_dir = os.path.join(base, "state")
        # <pid>.<n>: a probe's backend and the served one may live in one process at once.
        self.own_dir = os.path.join(base, f"{os.getpid()}.{next(_SEQ)}")
        for d in (base, self.state_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        sweep.sweep_stale(self.runsc, base, self.state_dir)
        os.makedirs(self.own_dir, mode=0o700)
        self.cgroups = cgroup_manager
        self.roots = sweep.v1_roots()
        # One uid past the container tier's slots: no container box ever has it.
        uid = config.first_uid + config.slots
        self.user = BoxUser(uid, uid)
        self.binds, links = fs.host_binds()
        self.host_root = os.path.join(self.own_dir, "host-root")
        self.image_init = os.path.join(self.own_dir, "image-init")
        self.binds = fs.build_skeleton(self.host_root, self.user, self.binds, links)
        fs.build_skeleton(self.image_init, self.user, [], {})

    def close(self) -> None:
        sweep.remove_tree(self.own_dir)

    def run(self, spec: BoxSpec, stdio: Stdio) -> BoxResult:
        started = time.monotonic()
        box = _Box()
        if stdio.owned:
            box.caller_fds = sorted({stdio.stdin_fd, stdio.stdout_fd} - {-1})
        try:
            return self._run(spec, stdio, box, started)
        except SandboxError as e:
            return failed(e.describe(), time.monotonic() - started, self.runtime)
        except OSError as e:
            message = f"gvisor: {e.strerror} ({e.filename or 'no path'})"
            return failed(message, time.monotonic() - started, self.runtime)
        finally:
            self._teardown(box)

    def _next_cid(self) -> str:
        return f"gvisor-{os.getpid()}-{next(_SEQ)}"

    def _prepare(self, spec: BoxSpec, box: _Box) -> bundle.BundleInputs:
        box.cid = self._next_cid()
        box.box_dir = os.path.join(self.own_dir, box.cid)
        os.mkdir(box.box_dir, 0o700)
        quiet_sandbox_logs(box.box_dir)
        memory, pids = bundle.host_cgroup_limits(spec.limits)
        box.cgroup = self.cgroups.create(box.cid, cgroups.CgroupLimits(memory, pids))
        scratch = os.path.join(box.box_dir, "scratch")
        box.mounts.append(scratch)
        fs.mount_scratch(scratch, spec, self.user)
        fs.place_files(scratch, spec.files, self.user)
        root = os.path.join(box.box_dir, "rootfs")
        if spec.rootfs == "host":
            box.mounts += fs.assemble_root(root, self.host_root, self.binds, scratch)
        else:
            if self.images is None:
                raise SandboxError("gvisor: image", f"image_layers({spec.rootfs})", 0, "no store")
            layers = self.images.image_layers(spec.rootfs)
            box.mounts.append(root)
            fs.mount_image(root, [self.image_init, *layers])
            box.mounts += fs.assemble_root(root, None, [], scratch)
        inputs = bundle.BundleInputs(
            root_path=root,
            scratch_dir=scratch,
            uid=self.user.uid,
            gid=self.user.gid,
            cgroups_path=f"{self.cgroups.relative_parent}/{box.cgroup.dir_name}",
        )
        config = bundle.oci_config(spec, inputs, self.config.box_path)
        with open(os.path.join(box.box_dir, "config.json"), "w") as f:
            json.dump(config, f)
        return inputs

    def _run(self, spec: BoxSpec, stdio: Stdio, box: _Box, started: float) -> BoxResult:
        inputs = self._prepare(spec, box)
        assert box.cgroup is not None
        stdin_fd = sealed_memfd(spec.stdin) if stdio.stdin_fd < 0 else os.dup(stdio.stdin_fd)
        box.fds.append(stdin_fd)
        out_r, out_w = _pipe(box)
        if stdio.stdout_fd >= 0:
            os.dup2(stdio.stdout_fd, out_w)  # the program writes to the caller's pipe
            _close_owned(box, out_r)
            out_r = -1
        err_r, err_w = _pipe(box)
        argv = bundle.run_argv(self.runsc, self.state_dir, self.platform, box.box_dir, box.cid)
        try:
            box.proc = subprocess.Popen(
                argv, stdin=stdin_fd, stdout=out_w, stderr=err_w, env=_RUNSC_ENV,
                close_fds=True, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise SandboxError("gvisor: start", f"execve({argv[0]})", e.errno or 0) from e
        for fd in (stdin_fd, out_w, err_w):
            _close_owned(box, fd)
        for fd in box.caller_fds:
            _close(fd)  # runsc holds copies: the caller's end sees EOF when the box is done
        box.caller_fds.clear()
        pidfd = os.pidfd_open(box.proc.pid)
        box.fds.append(pidfd)
        pid_file = os.path.join(box.box_dir, "pid")
        watch = RunscWatch(spec, box.cgroup, pidfd, pid_file, out_r, err_r, started)
        watch.echo = stdio.echo
        watch.loop()
        code = box.proc.wait()
        return self._result(spec, box, watch, code, inputs.scratch_dir, started)

    def _result(
        self, spec: BoxSpec, box: _Box, watch: RunscWatch, code: int, scratch: str, started: float
    ) -> BoxResult:
        assert box.cgroup is not None
        cg = box.cgroup
        if watch.killed_for == "setup":
            detail = f"runsc did not start the program within {PROBE_TIMEOUT_S:g} s"
            raise SandboxError("gvisor: create", f"runsc --platform={self.platform} run", 0, detail)
        stderr = bytes(watch.err)
        error = runsc_error(box.box_dir)
        host_oom = cg.oom_killed()  # the backstop: the cgroup's cap, the Sentry's allowance on
        oom = host_oom or watch.killed_for == "memory"
        exec_error = ""
        if error and not watch.killed_for and not oom:
            if _EXEC_FAILED not in error or not watch.app_started:
                raise SandboxError("gvisor: runsc", "runsc run", 0, error)
            exec_error = error[error.find("failed to load") :]
        if error and stderr.endswith(error.encode() + b"\n"):
            stderr = stderr[: -len(error) - 1]  # runsc's own message, not the program's
        panic = sentry_panic(box.box_dir)
        if panic and not watch.killed_for and not oom:
            raise SandboxError("gvisor: sentry", "runsc boot", 0, panic)
        # A program that never ran has no wait status (classify() then says 127, as the
        # container tier does).
        status = None
        if not exec_error:
            status = wait_status(box.box_dir)
            if status is None:
                status = bundle.wait_status_from_exit(code)
        end = watch.app_ended or time.monotonic()
        wall = end - watch.app_started if watch.app_started else end - started
        obs = Observed(
            wait_status=status,
            cpu_time_s=watch.cpu_time_s(),
            wall_time_s=wall,
            oom_killed=oom,
            output_exceeded=watch.killed_for == "output" or (bool(oom) and watch.output_full),
            wall_exceeded=watch.killed_for == "wall",
            cpu_limit_s=spec.limits.cpu_time_s,
            wall_limit_s=spec.limits.wall_time_s,
            exec_error=exec_error,
        )
        files, refused = fs.collect(scratch, spec)
        # The backstop's breach is the Sentry's growth too: its figure is the whole cgroup's.
        memory = cg.memory_peak_bytes() if host_oom else watch.memory_peak
        return judged(obs, memory, bytes(watch.out), stderr, files, refused, self.runtime)

    def _teardown(self, box: _Box) -> None:
        """Nothing of the box outlives it: runsc, the sandbox, its state, cgroups, mounts."""
        if box.proc is not None and box.proc.poll() is None:
            if box.cgroup is not None:
                box.cgroup.kill_all()
            box.proc.kill()  # we started it: killed by its own pid
            box.proc.wait()
        for fd in box.fds + box.caller_fds:
            _close(fd)
        box.fds.clear()
        box.caller_fds.clear()
        if box.cid:
            sweep.delete_state(self.runsc, self.state_dir, box.cid)
        if box.cgroup is not None:
            box.cgroup.destroy()
            sweep.remove_box_cgroups(box.cgroup.dir_name, self.roots)
        for target in reversed(box.mounts):
            fs.unmount(target)
        if box.box_dir:
            sweep.remove_tree(box.box_dir)


def _pipe(box: _Box) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    box.fds += [r, w]
    return r, w


def _close_owned(box: _Box, fd: int) -> None:
    box.fds.remove(fd)
    os.close(fd)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
