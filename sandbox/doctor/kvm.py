"""`stockade doctor`'s judgement of KVM: whether a Linux guest really runs, from the device,
its modules, a toy guest and a kernel boot (pure; sandbox.doctor.host does the probing)."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.doctor.checks import Finding, Level, ProbeOutcome, ok


@dataclass(frozen=True)
class KvmReadings:
    """/dev/kvm as found: the device, the modules behind it, and what the guests did.
    tiny_guest: a few instructions in a bare VM; kernel_boot: a Linux kernel under QEMU
    (None when no kernel was found to try)."""

    device: bool
    open_error: str = ""
    api_version: int | None = None
    modules: frozenset[str] = frozenset()
    tiny_guest: ProbeOutcome | None = None
    kernel_boot: ProbeOutcome | None = None


def check_kvm(r: KvmReadings) -> Finding:
    """Whether a Linux guest really runs under KVM. Opening /dev/kvm and reading
    KVM_GET_API_VERSION proves little: PVM-backed KVM answers both, runs a real-mode or
    long-mode toy guest, and then hangs a stock kernel right after decompression."""
    name = "KVM"
    tcg = "the microvm tier falls back to QEMU's emulation (TCG), about 15 times slower"
    if not r.device:
        fix = "enable virtualization in the firmware and load kvm_intel or kvm_amd"
        return Finding(name, Level.WARN, f"no /dev/kvm: {tcg}", fix)
    if r.open_error:
        fix = "run as root or add the service user to the kvm group"
        return Finding(name, Level.WARN, f"/dev/kvm cannot be opened ({r.open_error})", fix)
    api = f"KVM_GET_API_VERSION={r.api_version}"
    if r.tiny_guest is not None and not r.tiny_guest.ok:
        detail = f"/dev/kvm answers {api} but a toy guest failed: {r.tiny_guest.detail}; {tcg}"
        return Finding(name, Level.WARN, detail, "check dmesg for the KVM module's errors")
    if r.kernel_boot is not None:
        if r.kernel_boot.ok:
            return ok(name, f"{api}; a Linux kernel boots: {r.kernel_boot.detail}")
        pvm = " (/dev/kvm is PVM-backed)" if "kvm_pvm" in r.modules else ""
        detail = f"{api}, but a Linux kernel does not boot{pvm}: {r.kernel_boot.detail}; {tcg}"
        return Finding(name, Level.WARN, detail, _kvm_fix(r.modules))
    if "kvm_pvm" in r.modules and not r.modules & {"kvm_intel", "kvm_amd"}:
        detail = (
            f"/dev/kvm is PVM-backed (kvm_pvm): it answers {api} and runs a toy guest, but "
            f"stock guest kernels hang on it; {tcg}"
        )
        return Finding(name, Level.WARN, detail, _kvm_fix(r.modules))
    detail = (
        f"/dev/kvm answers {api} and runs a toy guest; no guest kernel was found to boot, "
        "and that alone does not prove a Linux guest runs (pass --kernel to try one)"
    )
    return Finding(name, Level.WARN, detail, "stockade doctor --kernel /boot/vmlinuz-...")


def _kvm_fix(modules: frozenset[str]) -> str:
    if "kvm_pvm" in modules:
        return (
            "use a host with hardware virtualization (kvm_intel or kvm_amd), or a PVM guest kernel"
        )
    return "check dmesg; on a VM, enable nested virtualization"


KERNEL_MARKER = b"Linux version"


def kernel_boot_outcome(output: bytes, seconds: float, finished: bool) -> ProbeOutcome:
    """QEMU's serial output from booting a kernel under KVM with no root file system: a
    kernel that gets to start_kernel prints its banner, then panics and QEMU exits."""
    if KERNEL_MARKER in output:
        return ProbeOutcome(True, f"its banner printed within {seconds:.1f} s")
    lines = output.decode(errors="replace").strip().splitlines()
    said = f"last said: {lines[-1][:120]}" if lines else "no output at all"
    if finished:
        return ProbeOutcome(False, f"QEMU exited without the kernel's banner ({said})")
    return ProbeOutcome(False, f"no kernel banner in {seconds:.1f} s ({said})")
