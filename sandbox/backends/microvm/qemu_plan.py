"""QEMU's command line and the guest kernel's, as pure functions of a VmPlan."""

from __future__ import annotations

from dataclasses import dataclass

QEMU = "qemu-system-x86_64"
# QEMU's own seccomp filter (-sandbox): no obsolete syscalls, no setuid, no fork/exec, no
# scheduler or affinity changes. QEMU needs none of them to run a VM it was fully given.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
# The translation cache under TCG: QEMU 7.2 reserves 1 GiB by default. With 64 MiB the
# kernel's and an interpreter's code evicted each other (a warmed-up Python hello took as
# long as a cold one); 256 MiB keeps both translated.
TB_SIZE_MIB = 256
# Layer disks per VM. microvm has 24 virtio-mmio transports (with its second IOAPIC, on by
# default), the channel's virtio-serial takes one; QEMU 7.2 refuses a 24th disk ("No
# 'virtio-bus' bus found"), and with a 23rd the guest's channel never came up (measured under
# TCG: 22 layers boot in 4 s, 23 time out).
MAX_DISKS = 22


@dataclass(frozen=True)
class VmPlan:
    vmlinux: str
    initramfs: str
    disk_fds: tuple[int, ...]  # read-only fds on the layer disks, top-most layer first
    memory_mib: int
    vcpus: int = 1
    accel: str = "tcg"  # "tcg" or "kvm"
    tsc_khz: int | None = None
    fstype: str = "erofs"
    console_fd: int = -1  # a socket for the guest kernel's console (debugging), or none


def kernel_cmdline(plan: VmPlan) -> str:
    args = [
        # No console unless debugging: printing to an emulated UART costs boot time.
        "console=ttyS0" if plan.console_fd >= 0 else "console=",
        "quiet",
        "loglevel=7" if plan.console_fd >= 0 else "loglevel=0",
        # microvm has no PIT to calibrate the TSC against (MACHINE.md: it can hang there).
        *([f"tsc_early_khz={plan.tsc_khz}"] if plan.tsc_khz else []),
        "tsc=reliable",
        "no_timer_check",
        "pci=off",
        "i8042.noaux",
        "i8042.nokbd",
        "8250.nr_uarts=1",
        "cryptomgr.notests",
        # The guest runs one untrusted job and holds nothing another could want; the VM
        # boundary protects the host. Mitigations (page-table isolation above all) cost
        # every guest syscall a TLB flush, dear under emulation.
        "mitigations=off",
        "panic=-1",
        "reboot=t",
        "rdinit=/init",
        f"stockade.layers={len(plan.disk_fds)}",
        f"stockade.fs={plan.fstype}",
        "stockade.chan=vport0p1",
    ]
    return " ".join(args)


def qemu_argv(plan: VmPlan) -> list[str]:
    """The command line. The channel is QEMU's stdin/stdout (one socket), every disk an
    inherited fd (-add-fd), so QEMU opens nothing of the host's by name but the kernel and
    initramfs it reads at start-up."""
    accel = "kvm" if plan.accel == "kvm" else f"tcg,tb-size={TB_SIZE_MIB}"
    argv = [
        QEMU,
        *("-M", "microvm,x-option-roms=off"),
        *("-accel", accel),
        *("-cpu", "host" if plan.accel == "kvm" else "qemu64"),
        *("-m", str(plan.memory_mib)),
        *("-smp", str(plan.vcpus)),
        "-nodefaults",
        "-no-user-config",
        *("-display", "none"),
        "-no-reboot",
        *("-sandbox", SANDBOX),
        *("-kernel", plan.vmlinux),
        *("-initrd", plan.initramfs),
        *("-append", kernel_cmdline(plan)),
        # The agent's channel: a virtio-serial port (the guest's /dev/vport0p1), fed from
        # QEMU's stdin/stdout. A 16550 UART would do without a module, but moves about
        # 100 KB/s under TCG: a 1 MB program took ten seconds to arrive.
        *("-chardev", "stdio,id=chan,signal=off"),
        # Port 0 is reserved for a virtconsole; ours is port 1, the guest's vport0p1.
        *("-device", "virtio-serial-device,max_ports=2"),
        *("-device", "virtserialport,chardev=chan,name=stockade"),
    ]
    if plan.console_fd >= 0:
        argv += ["-chardev", f"socket,id=log,fd={plan.console_fd}", "-serial", "chardev:log"]
    for i, fd in enumerate(plan.disk_fds):
        argv += ["-add-fd", f"fd={fd},set={i + 1},opaque=L{i}"]
        argv += [
            "-drive",
            f"if=none,id=L{i},file=/dev/fdset/{i + 1},format=raw,readonly=on",
            "-device",
            f"virtio-blk-device,drive=L{i},serial=L{i}",
        ]
    return argv


def vm_memory_mib(box_memory_bytes: int, floor_mib: int = 512) -> int:
    """Guest RAM for a box: its memory limit plus room for the guest kernel, the agent and
    the scratch tmpfs's page cache, rounded up to 256 MiB so boxes share pool sizes."""
    need = box_memory_bytes // (1 << 20) + 192
    return max(floor_mib, -(-need // 256) * 256)
