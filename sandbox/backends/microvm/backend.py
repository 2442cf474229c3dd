"""MicrovmBackend: a BoxSpec run in a fresh QEMU microvm, warm from the pool when it can be."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass

from sandbox import cgroups, rlimits, seccomp
from sandbox.backends.microvm import accel, protocol
from sandbox.backends.microvm.disks import FSTYPE, image_disks
from sandbox.backends.microvm.interactive import StdinPump, StdoutSink, take_fds
from sandbox.backends.microvm.jail import host_runtime, jail_plan
from sandbox.backends.microvm.kernel import tsc_khz
from sandbox.backends.microvm.pool import POOL, PoolKey, VmPool
from sandbox.backends.microvm.prepare import Artifacts, prepare, prepared
from sandbox.backends.microvm.qemu_plan import (
    MAX_DISKS,
    QEMU,
    TB_SIZE_MIB,
    VmPlan,
    vm_memory_mib,
)
from sandbox.backends.microvm.verdict import box_result
from sandbox.backends.microvm.vm import Owner, Vm
from sandbox.cgroups.manager import PARENT
from sandbox.config import HostConfig
from sandbox.errors import SandboxError
from sandbox.images import Images
from sandbox.result import BoxResult, failed
from sandbox.settings import setting
from sandbox.slots import Slot, SlotPool
from sandbox.spec import BoxSpec, box_path
from sandbox.stdio import Stdio

BOOT_TIMEOUT_S = 60.0
# The host's wall kill comes this long after the guest's own, which should always win.
HOST_MARGIN_S = 1.0
# The channel's throughput under TCG, with room: 16 MiB in and 32 MiB out took under 2 s.
CHANNEL_BYTES_PER_S = 8e6
TICK_MS = 10  # how often the agent checks the box's CPU time
# QEMU itself beside guest RAM: the translation cache (all of it may become resident), then
# devices and heap (an idle warmed-up VM is ~290 MiB resident in all).
QEMU_OVERHEAD_MIB = TB_SIZE_MIB + 128
VM_SLOTS = 16
QEMU_PIDS = 64  # QEMU's threads: vCPUs, I/O, RCU, the main loop
# QEMU cgroups are vm<launcher pid>-<n>: apart from the container boxes' <pid>-<n>, and
# swept like them once their launcher is gone.
CGROUP_PREFIX = "vm"
# The program's first translation is most of a short job under TCG; a pool VM runs this
# (as the box user, in a throwaway root) before it waits, so a job finds it translated.
WARMUPS = {
    "python3": ("python3", "-c", "pass"),
    # Measured under TCG: a warmed-up `java -version` 2.1 s against 3.4 s; node gains less
    # (4.8 -> 3.6 s), as V8 makes new code every run and each is translated afresh.
    "java": ("java", "-XX:+UseSerialGC", "-version"),
    "nodejs": ("node", "-e", "0"),
    "ruby": ("ruby", "-e", "0"),
    "perl": ("perl", "-e", "0"),
    "php": ("php", "-r", "0;"),
    "lua": ("lua", "-e", "x=0"),
}
DEFAULT_WARMUP = ("/bin/sh", "-c", ":")
# Numbers QEMU cgroups (vm<pid>-<n>) for every backend of this process: two backends alive
# at once (a judge's and a test's) each counting from 1 made the same name (EEXIST).
# itertools.count's next() is atomic under the GIL.
_VM_NUMBERS = itertools.count(1)


def host_wall_s(spec: BoxSpec) -> float:
    """When the host kills the VM: the guest's own wall kill, a margin, and time to stream
    the most output and collected files the box may send after its program ended."""
    most = spec.limits.output_bytes + (spec.collect_max_bytes if spec.collect else 0)
    return spec.limits.wall_time_s + HOST_MARGIN_S + most / CHANNEL_BYTES_PER_S


def sweep_stale() -> None:
    """Remove the QEMU cgroups of launchers that died (QEMU died with them: PDEATHSIG).
    rmdir refuses a cgroup that still holds a task, so nothing alive is lost."""
    pattern = re.compile(rf"{CGROUP_PREFIX}(\d+)-\d+")
    with open("/proc/self/mountinfo") as f:
        mounts = cgroups.parse_mountinfo(f.read())
    for mount in mounts:
        parent = os.path.join(mount.mount_point, PARENT)
        if not os.path.isdir(parent):
            continue
        for name in os.listdir(parent):
            m = pattern.fullmatch(name)
            if m is None or os.path.exists(f"/proc/{m.group(1)}"):
                continue
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                continue


@dataclass
class _Booted:
    vm: Vm
    owner: Owner
    disk_fds: tuple[int, ...]
    key: PoolKey


DEBUG = setting("STOCKADE_MICROVM_DEBUG", False, "copy each microVM's kernel console to stderr")
# Each vCPU is a host thread under TCG: one suits a 2-core host and a judge's single-threaded
# programs; a box's threads then share it, as CPU time counts them.
VCPUS = setting("STOCKADE_MICROVM_VCPUS", 1, "vCPUs of each microVM", minimum=1)
ACCEL = setting(
    "STOCKADE_MICROVM_ACCEL",
    "auto",
    "kvm, tcg, or auto: KVM when a test VM boots on it in time, else TCG",
    choices=("auto", "kvm", "tcg"),
)


def probe(config: HostConfig) -> str | None:
    """None when this host can run microVMs, else why not."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian package qemu-system-x86)"
    if prepared(config.state_dir):
        return None
    missing = [t for t in ("apt-get", "dpkg-deb", "gcc", "mkfs.erofs") if shutil.which(t) is None]
    if missing:
        return (
            f"the guest kernel is not prepared and {', '.join(missing)} is missing to "
            "prepare it (stockade microvm prepare)"
        )
    return None


class MicrovmBackend:
    def __init__(
        self,
        config: HostConfig,
        images: Images | None,
        cgroup_manager: cgroups.CgroupManager,
        pool: int | None = None,
    ) -> None:
        """cgroup_manager: the caller's, which it closes."""
        self.config = config
        self.images = images
        self.debug = DEBUG.as_bool()
        self.vcpus = VCPUS.as_int()
        self.artifacts: Artifacts = prepare(config.state_dir)
        self.cgroups = cgroup_manager
        # QEMU's uids: a range of their own past the box slots' (first_uid .. +slots).
        self.slots = SlotPool(
            os.path.join(config.run_dir, "microvm-slots"),
            config.first_uid + 2 * config.slots,
            VM_SLOTS,
        )
        # QEMU's jail: the empty directory its root tmpfs covers (in its own mounts only), and
        # what of the host's runtime it binds, looked up once.
        self.qemu = os.path.realpath(shutil.which(QEMU) or QEMU)
        self.jail_dir = os.path.join(config.run_dir, "microvm-root")
        os.makedirs(self.jail_dir, mode=0o700, exist_ok=True)
        self.runtime_links, self.runtime_dirs = host_runtime()
        self._seq_lock = threading.Lock()
        self._swept = False
        self._live: dict[int, str] = {}
        self._vms: dict[int, Vm] = {}
        self.tsc_khz = tsc_khz()
        self.accel = accel.choose(
            ACCEL.as_str(),
            os.path.join(self.artifacts.root, "accel.json"),
            self.artifacts.kernel_version,
            self._boots_on_kvm,
        )
        size = POOL.as_int() if pool is None else pool
        self.pool: VmPool[_Booted] = VmPool(self._start_warm, self._discard, size)

    @property
    def runtime(self) -> str:
        return f"microvm/{self.accel}"

    def _boots_on_kvm(self, timeout_s: float) -> bool:
        try:
            booted = self._boot(PoolKey("", 256), "kvm", timeout_s)
        except SandboxError:
            return False
        self._discard(booted)
        return True

    def _slot(self, evict: bool) -> Slot:
        """A VM slot; for a box (`evict`), one given up by a ready VM of the pool when every
        slot is taken: a box is never refused for the sake of one that may come."""
        while True:
            try:
                return self.slots.acquire()
            except RuntimeError as e:
                # Another ready VM, if the pool's own boot took the slot just given up.
                if not (evict and self.pool.give_up_one()):
                    raise SandboxError("microvm: slot", "flock(microvm-slots)", 0, str(e)) from e

    def _boot(
        self,
        key: PoolKey,
        accel_name: str,
        timeout_s: float = BOOT_TIMEOUT_S,
        evict: bool = False,
    ) -> _Booted:
        layers = self.images.image_layers(key.image) if key.image and self.images else []
        if len(layers) > MAX_DISKS:
            detail = (
                f"image {key.image!r} has {len(layers)} layers; a microVM attaches at most "
                f"{MAX_DISKS}, one disk each (flatten the image)"
            )
            raise SandboxError("microvm: rootfs", "attach layer disks", 0, detail)
        disks = image_disks(self.artifacts.disk_dir, layers)
        slot = self._slot(evict)
        try:
            fds = tuple(os.open(d, os.O_RDONLY | os.O_CLOEXEC) for d in disks)
        except OSError:
            self.slots.release(slot)
            raise
        cg: cgroups.BoxCgroup | None = None
        vm: Vm | None = None
        try:
            name = f"{CGROUP_PREFIX}{os.getpid()}-{next(_VM_NUMBERS)}"
            limit = (key.memory_mib + QEMU_OVERHEAD_MIB) << 20
            cg = self.cgroups.create(name, cgroups.CgroupLimits(limit, QEMU_PIDS))
            if not self._swept:
                self._swept = True
                sweep_stale()
            plan = VmPlan(
                vmlinux=self.artifacts.vmlinux,
                initramfs=self.artifacts.initramfs,
                disk_fds=fds,
                memory_mib=key.memory_mib,
                vcpus=self.vcpus,
                accel=accel_name,
                tsc_khz=self.tsc_khz,
                fstype=FSTYPE,
            )
            jail = jail_plan(
                self.jail_dir,
                self.qemu,
                self.artifacts.vmlinux,
                self.artifacts.initramfs,
                accel_name == "kvm",
                self.runtime_links,
                self.runtime_dirs,
            )
            owner = Owner(slot, cg)
            vm = Vm(plan, jail, owner, fds, key.image, debug=self.debug)
            with self._seq_lock:
                self._live[vm.pid] = cg.dir_name
                self._vms[vm.pid] = vm
            vm.wait_ready(time.monotonic() + timeout_s)
            return _Booted(vm, owner, fds, key)
        except BaseException:
            if vm is not None:
                vm.kill()
                with self._seq_lock:
                    self._live.pop(vm.pid, None)
                    self._vms.pop(vm.pid, None)
            if cg is not None:
                cg.destroy()
            self.slots.release(slot)
            for fd in fds:
                os.close(fd)
            raise

    def _start_warm(self, key: PoolKey) -> _Booted:
        booted = self._boot(key, self.accel)
        try:
            argv = WARMUPS.get(key.image, DEFAULT_WARMUP)
            warm = BoxSpec(argv=argv, rootfs=key.image)
            booted.vm.send(protocol.WARM, self._job(warm).encode())
            booted.vm.outcome(protocol.Outcome(), time.monotonic() + BOOT_TIMEOUT_S)
            booted.vm.wait_ready(time.monotonic() + BOOT_TIMEOUT_S)
        except BaseException:
            self._discard(booted)
            raise
        return booted

    def live(self) -> dict[int, str]:
        """QEMU pid -> its host cgroup's directory name, for every VM held now (ready in
        the pool, booting or running a box): anything else of ours is a leftover."""
        with self._seq_lock:
            return dict(self._live)

    def _discard(self, booted: _Booted) -> None:
        booted.vm.kill()
        with self._seq_lock:
            self._live.pop(booted.vm.pid, None)
            self._vms.pop(booted.vm.pid, None)
        booted.owner.cgroup.destroy()
        self.slots.release(booted.owner.slot)
        for fd in booted.disk_fds:
            os.close(fd)

    def _job(self, spec: BoxSpec, interactive: bool = False) -> protocol.Job:
        lim = spec.limits
        env = {"PATH": self.config.box_path, "HOME": "/box", "LANG": "C.UTF-8", **dict(spec.env)}
        return protocol.Job(
            argv=spec.argv,
            env=tuple(env.items()),
            files=tuple((box_path(f.path), f.content, f.mode) for f in spec.files),
            stdin=spec.stdin,
            limits={
                "cpu_ms": int(lim.cpu_time_s * 1000),
                "wall_ms": int(lim.wall_time_s * 1000),
                "memory": lim.memory_bytes,
                "pids": lim.pids,
                "output": lim.output_bytes,
                "scratch": lim.scratch_bytes,
                "inodes": lim.scratch_inodes,
                "uid": self.config.first_uid,
                "collect_max": spec.collect_max_bytes,
                "tick_ms": TICK_MS,
            },
            rlimits=tuple(rlimits.plan(lim)),
            seccomp_bpf=seccomp.filter_for(spec.profile, self.config.profiles_dir).bpf,
            collect=tuple(box_path(p) + ("/" if p.endswith("/") else "") for p in spec.collect),
            entropy=os.urandom(64),
            now_ns=time.time_ns(),
            interactive=interactive,
        )

    def refusal(self, spec: BoxSpec) -> str:
        """Why this tier cannot run `spec` at all, or '' when it can."""
        if spec.rootfs == "host":
            return (
                "rootfs: the microvm tier runs images only (the host's /usr is not served "
                "to a VM); name an image, e.g. --rootfs python3"
            )
        if spec.network:
            return "network: the microvm tier has no network device; run without --net"
        sent = len(spec.stdin) + sum(len(f.content) + len(f.path) for f in spec.files)
        if sent > protocol.MAX_FRAME - (1 << 20):
            return (
                f"files: the microvm tier takes at most {protocol.MAX_FRAME >> 20} MiB of files "
                "and stdin per box (one frame to the guest)"
            )
        return ""

    def run(self, spec: BoxSpec, stdio: Stdio) -> BoxResult:
        started = time.monotonic()
        refusal = self.refusal(spec)
        stdin_fd, stdout_fd = take_fds(stdio)
        if refusal:
            for fd in {stdin_fd, stdout_fd} - {-1}:
                os.close(fd)
            return failed(refusal, 0.0, self.runtime)
        key = PoolKey(spec.rootfs, vm_memory_mib(spec.limits.memory_bytes))
        booted = self.pool.take(key, BOOT_TIMEOUT_S)
        pump: StdinPump | None = None
        sink: StdoutSink | None = None
        try:
            if booted is None:
                booted = self._boot(key, self.accel, evict=True)
            job = self._job(spec, interactive=stdin_fd >= 0)
            booted.vm.send(protocol.JOB, job.encode())
            # From here the agent's own clock runs: the job is at most a socket buffer away.
            job_started = time.monotonic()
            deadline = job_started + host_wall_s(spec)
            if stdin_fd >= 0:
                pump, stdin_fd = StdinPump(stdin_fd, booted.vm.send), -1
            if stdout_fd >= 0:
                sink, stdout_fd = StdoutSink(stdout_fd, deadline), -1
            out = protocol.Outcome(
                output_cap=spec.limits.output_bytes,
                files_cap=spec.collect_max_bytes,
                on_stdout=sink.write if sink else None,
            )
            booted.vm.outcome(out, deadline)
        except SandboxError as e:
            return failed(e.describe(), time.monotonic() - started, self.runtime)
        finally:
            # The VM first: a pump blocked sending to it fails then, and can be joined.
            if booted is not None:
                self._discard(booted)
            for end in (pump, sink):
                if end is not None:
                    end.close()
            for fd in {stdin_fd, stdout_fd} - {-1}:
                os.close(fd)
        return box_result(spec, out, time.monotonic() - job_started, self.runtime)

    def close(self) -> None:
        # A pool VM still booting is killed rather than waited for (seconds under TCG).
        self.pool.stop()
        with self._seq_lock:
            vms = list(self._vms.values())
        for vm in vms:
            vm.terminate()
        self.pool.close()
        self.slots.close()
