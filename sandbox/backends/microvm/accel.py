"""KVM or TCG: KVM only where a guest really boots on it (here /dev/kvm is PVM-backed and a
stock kernel hangs), so it is probed once with a timeout and the answer is cached."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

PROBE_TIMEOUT_S = 20.0


def kvm_openable(path: str = "/dev/kvm") -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def cache_key(kernel_version: str) -> str:
    """The answer holds for one host kernel and one guest kernel."""
    return f"{os.uname().release}/{kernel_version}"


def choose(
    override: str,
    cache_path: str,
    kernel_version: str,
    boots_on_kvm: Callable[[float], bool],
) -> str:
    """'kvm' or 'tcg'. override ('kvm', 'tcg', or '' / 'auto') wins; otherwise KVM must
    be openable and a probe VM must reach its agent within PROBE_TIMEOUT_S."""
    if override in ("kvm", "tcg"):
        return override
    if not kvm_openable():
        return "tcg"
    key = cache_key(kernel_version)
    try:
        with open(cache_path) as f:
            cached = json.load(f)
        if isinstance(cached, dict) and cached.get(key) in ("kvm", "tcg"):
            return str(cached[key])
    except (OSError, ValueError):
        cached = {}
    answer = "kvm" if boots_on_kvm(PROBE_TIMEOUT_S) else "tcg"
    cached = cached if isinstance(cached, dict) else {}
    cached[key] = answer
    tmp = f"{cache_path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(cached, f)
    os.replace(tmp, cache_path)
    return answer
