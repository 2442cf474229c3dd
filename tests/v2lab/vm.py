"""One lab VM: the QEMU command line (pure) and a run that prints the job's output and returns
its exit status."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sandbox.backends.microvm.kernel import tsc_khz
from sandbox.backends.microvm.qemu_plan import QEMU, TB_SIZE_MIB

HERE = Path(__file__).parent
CHECKOUT = HERE.parent.parent.resolve()
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRATCH_BYTES = 8 << 30  # sparse: only what the guest writes takes host disk
TIMED_OUT, NO_STATUS = 124, 125


@dataclass(frozen=True)
class LabPlan:
    vmlinux: str
    initramfs: str
    layer_disks: tuple[str, ...]  # top-most first
    scratch: str
    shares: tuple[str, ...]  # host directories, shared read-only at the same path
    systemd: bool
    memory_mib: int = 3072
    vcpus: int = 2
    console_log: str = ""
    output: str = ""  # the host file the job's output goes to (QEMU appends to it)


def kernel_cmdline(plan: LabPlan) -> str:
    khz = tsc_khz()
    args = [
        "console=ttyS0",
        "quiet",
        "loglevel=4",
        *([f"tsc_early_khz={khz}"] if khz else []),
        *("tsc=reliable", "no_timer_check", "pci=off", "i8042.noaux", "i8042.nokbd"),
        *("8250.nr_uarts=1", "cryptomgr.notests", "random.trust_cpu=on"),
        *("panic=-1", "reboot=t", "rdinit=/init"),
        # A pure cgroup2 host, as systemd 252 sets up by default and production hosts run.
        "cgroup_no_v1=all",
        "systemd.unified_cgroup_hierarchy=1",
        "systemd.show_status=false",
        f"v2lab.layers={len(plan.layer_disks)}",
        f"v2lab.mode={'systemd' if plan.systemd else 'plain'}",
    ]
    return " ".join(args)


def qemu_argv(plan: LabPlan) -> list[str]:
    """QEMU under TCG (MACHINE.md: the PVM-backed /dev/kvm hangs stock kernels)."""
    argv = [
        QEMU,
        *("-M", "microvm,x-option-roms=off"),
        *("-accel", f"tcg,tb-size={TB_SIZE_MIB}"),
        # Every CPU feature TCG emulates: wheels in the .venv may want more than qemu64.
        *("-cpu", "max"),
        *("-m", str(plan.memory_mib)),
        *("-smp", str(plan.vcpus)),
        *("-nodefaults", "-no-user-config", "-no-reboot"),
        *("-display", "none"),
        *("-kernel", plan.vmlinux, "-initrd", plan.initramfs),
        *("-append", kernel_cmdline(plan)),
        *("-serial", f"file:{plan.console_log}" if plan.console_log else "null"),
        # Port 1 (the guest's /dev/vport0p1) carries the job's output to a host file. Not
        # QEMU's stdio: with stdin at EOF the port counts as closed and guest writes block.
        *("-chardev", f"file,id=out,path={plan.output}"),
        *("-device", "virtio-serial-device,max_ports=2"),
        *("-device", "virtserialport,nr=1,chardev=out,name=out"),
    ]
    for i, disk in enumerate(plan.layer_disks):
        argv += ["-drive", f"if=none,id=L{i},file={disk},format=raw,readonly=on"]
        argv += ["-device", f"virtio-blk-device,drive=L{i},serial=L{i}"]
    argv += ["-drive", f"if=none,id=scratch,file={plan.scratch},format=raw"]
    argv += ["-device", "virtio-blk-device,drive=scratch,serial=scratch"]
    for i, path in enumerate(plan.shares):
        argv += ["-fsdev", f"local,id=s{i},path={path},security_model=none,readonly=on"]
        argv += ["-device", f"virtio-9p-device,fsdev=s{i},mount_tag=s{i}"]
    return argv


def job_script(cmd: list[str], cwd: str, env: dict[str, str]) -> str:
    """What the guest runs: CMD as root in the checkout (pure)."""
    lines = ["#!/bin/sh", f"cd {shlex.quote(cwd)} || exit 126"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append(f"exec {shlex.join(cmd)}")
    return "\n".join(lines) + "\n"


def guest_env() -> dict[str, str]:
    return {
        "PATH": GUEST_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TMPDIR": "/scratch/tmp",
        # The checkout is read-only in the guest: no bytecode, no pytest cache.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",  # the output streams as the suite runs
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
        "STOCKADE_IN_V2LAB": "1",
    }


def shares_for(checkout: Path) -> tuple[str, ...]:
    """The checkout, and its .venv's real place when that lies outside it."""
    shares = [str(checkout)]
    venv = (checkout / ".venv").resolve()
    if not venv.is_relative_to(checkout):
        shares.append(str(venv))
    return tuple(shares)


def make_scratch(path: str, job: dict[str, str]) -> None:
    """A fresh ext4 scratch disk holding job/<name> for each file of the job."""
    with tempfile.TemporaryDirectory(prefix="v2lab-job-") as root:
        os.mkdir(os.path.join(root, "job"))
        for name, text in job.items():
            Path(root, "job", name).write_text(text)
        with open(path, "wb") as f:
            f.truncate(SCRATCH_BYTES)
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", root, path],
            check=True,
        )


def read_status(scratch: str) -> int | None:
    """The exit status the guest left on the scratch disk, read without mounting it."""
    done = subprocess.run(
        ["debugfs", "-R", "cat /job/rc", scratch], capture_output=True, text=True, check=False
    )
    text = done.stdout.strip()
    return int(text) if text.isdigit() else None


def run(plan: LabPlan, timeout_s: float) -> int:
    """Boot, stream the job's output to stdout, return its exit status (124 on timeout,
    125 when the guest left none, with the console's tail on stderr)."""
    start = time.monotonic()
    sys.stdout.flush()
    Path(plan.output).touch()
    qemu = subprocess.Popen(qemu_argv(plan), stdin=subprocess.DEVNULL)
    # A SIGTERM to this runner (`timeout`, CI) must not orphan QEMU: end it by its pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(TIMED_OUT))
    try:
        with open(plan.output, "rb") as out:
            while qemu.poll() is None:
                if time.monotonic() - start > timeout_s:
                    raise subprocess.TimeoutExpired(QEMU, timeout_s)
                _copy(out)
                time.sleep(0.2)
            _copy(out)
    except subprocess.TimeoutExpired:
        print(f"v2lab: timed out after {timeout_s:.0f} s; QEMU {qemu.pid} killed", file=sys.stderr)
        _console_tail(plan)
        return TIMED_OUT
    finally:
        if qemu.poll() is None:
            qemu.kill()
        qemu.wait()
    status = read_status(plan.scratch)
    took = time.monotonic() - start
    if status is None:
        why = f"v2lab: the guest left no exit status (QEMU exit {qemu.returncode})"
        print(why, file=sys.stderr)
        _console_tail(plan)
        return NO_STATUS
    print(f"v2lab: exit status {status} after {took:.1f} s (boot included)", file=sys.stderr)
    return status


def _copy(out: BinaryIO) -> None:
    data = out.read()
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _console_tail(plan: LabPlan, lines: int = 40) -> None:
    if plan.console_log and os.path.exists(plan.console_log):
        tail = Path(plan.console_log).read_text(errors="replace").splitlines()[-lines:]
        print("v2lab: the guest console's last lines:", *tail, sep="\n", file=sys.stderr)


def which_qemu() -> str | None:
    return shutil.which(QEMU)
