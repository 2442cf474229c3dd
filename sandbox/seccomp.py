"""Seccomp: OCI/Docker JSON profile -> rule plan -> libseccomp -> BPF (once); load (per box)."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from sandbox.bpf import Program
from sandbox.errors import SandboxError

log = logging.getLogger(__name__)

# Filter return values, <linux/seccomp.h>; libseccomp's actions are the same numbers.
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
EPERM = 1
MAX_ERRNO = 4095  # the kernel only turns -1..-4095 into errno (include/linux/err.h)
# OCI's SCMP_ACT_KILL kills one *thread* and leaves the rest of a judged program running
# half-dead; a sandbox wants the whole process gone, so here it means KILL_PROCESS.
_ACTIONS = {
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_KILL": RET_KILL_PROCESS,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_LOG": 0x7FFC0000,
}
_UNSUPPORTED_ACTIONS = ("SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY")  # need a tracer or listener
# enum scmp_compare in <seccomp.h>: NE=1 .. MASKED_EQ=7
_OPS = {
    f"SCMP_CMP_{op}": n
    for n, op in enumerate(("NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"), start=1)
}
MASKED_EQ = _OPS["SCMP_CMP_MASKED_EQ"]
NATIVE_ARCH = "SCMP_ARCH_X86_64"  # the filter kills every other ABI (i386, x32)
_TOP_KEYS = {"comment", "defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
_RULE_KEYS = {"comment", "names", "action", "errnoRet", "args"}
_U64 = (1 << 64) - 1


class ProfileError(ValueError):
    """A seccomp profile is malformed; the message names the file and the field."""


# ---- pure part: parse and validate, translate, plan --------------------------------------


@dataclass(frozen=True)
class ArgCmp:
    index: int
    op: int  # enum scmp_compare
    value: int  # the mask for MASKED_EQ
    value_two: int = 0  # the expected value for MASKED_EQ


@dataclass(frozen=True)
class Rule:
    syscall: str
    nr: int
    action: int
    args: tuple[ArgCmp, ...]
    entry: int  # index in the profile's "syscalls", for messages


@dataclass(frozen=True)
class Plan:
    default_action: int
    rules: tuple[Rule, ...]
    warnings: tuple[str, ...]


Entry = tuple[list[str], int, list[ArgCmp]]  # names, action, argument comparisons


def _fail(source: str, field: str, problem: str) -> ProfileError:
    return ProfileError(f"{source}: {field}: {problem}")


def _int(src: str, field: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _fail(src, field, f"expected an integer in [{lo}, {hi}], got {v!r}")
    return v


def _obj(
    src: str, field: str, obj: object, allowed: set[str], required: set[str]
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(src, field, f"expected an object, got {type(obj).__name__}")
    problems = [(k, "unknown field") for k in sorted(set(obj) - allowed)]
    problems += [(k, "missing") for k in sorted(required - set(obj))]
    if problems:
        key, problem = problems[0]
        raise _fail(src, f"{field}.{key}".lstrip("."), problem)
    return obj


def _action(src: str, field: str, name: object, errno_ret: object) -> int:
    if name in _UNSUPPORTED_ACTIONS:
        raise _fail(src, field, f"{name} is not supported (it needs a tracer or listener)")
    if not isinstance(name, str) or name not in _ACTIONS:
        raise _fail(src, field, f"unknown action {name!r} (expected one of {sorted(_ACTIONS)})")
    if name != "SCMP_ACT_ERRNO":
        if errno_ret is not None:
            raise _fail(src, field, "errnoRet is only meaningful with SCMP_ACT_ERRNO")
        return _ACTIONS[name]
    # OCI: SCMP_ACT_ERRNO without errnoRet returns EPERM.
    code = EPERM if errno_ret is None else _int(src, field + ".errnoRet", errno_ret, 0, MAX_ERRNO)
    return RET_ERRNO | code


def _arg(src: str, field: str, raw: object) -> ArgCmp:
    obj = _obj(src, field, raw, {"index", "value", "valueTwo", "op"}, {"index", "value", "op"})
    if obj["op"] not in _OPS:
        raise _fail(src, field + ".op", f"unknown operator {obj['op']!r} (one of {sorted(_OPS)})")
    arg = ArgCmp(
        _int(src, field + ".index", obj["index"], 0, 5),
        _OPS[obj["op"]],
        _int(src, field + ".value", obj["value"], 0, _U64),
        _int(src, field + ".valueTwo", obj.get("valueTwo", 0), 0, _U64),
    )
    if arg.op == MASKED_EQ and arg.value_two & ~arg.value:
        raise _fail(src, field + ".valueTwo", "has bits outside the mask: can never match")
    return arg


def _entry(src: str, i: int, raw: object) -> Entry:
    field = f"syscalls[{i}]"
    obj = _obj(src, field, raw, _RULE_KEYS, {"names", "action"})
    names = obj["names"]
    if not isinstance(names, list) or not names:
        raise _fail(src, field + ".names", "expected a non-empty list of syscall names")
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise _fail(src, f"{field}.names[{j}]", f"expected a syscall name, got {name!r}")
    action = _action(src, field + ".action", obj["action"], obj.get("errnoRet"))
    args = obj.get("args", [])
    if not isinstance(args, list):
        raise _fail(src, field + ".args", "expected a list")
    return names, action, [_arg(src, f"{field}.args[{j}]", a) for j, a in enumerate(args)]


def parse_profile(profile: object, source: str = "<profile>") -> tuple[int, list[Entry]]:
    """The default action and the translated entries; ProfileError names the first bad field."""
    obj = _obj(source, "", profile, _TOP_KEYS, {"defaultAction", "architectures", "syscalls"})
    errno_ret = obj.get("defaultErrnoRet")
    if errno_ret is not None:
        _int(source, "defaultErrnoRet", errno_ret, 0, MAX_ERRNO)
        if obj["defaultAction"] != "SCMP_ACT_ERRNO":
            raise _fail(source, "defaultErrnoRet", "only meaningful with SCMP_ACT_ERRNO")
    default = _action(source, "defaultAction", obj["defaultAction"], errno_ret)
    if obj["architectures"] != [NATIVE_ARCH]:
        raise _fail(source, "architectures", f"must be [{NATIVE_ARCH!r}]: other ABIs are killed")
    if not isinstance(obj["syscalls"], list):
        raise _fail(source, "syscalls", "expected a list")
    return default, [_entry(source, i, raw) for i, raw in enumerate(obj["syscalls"])]


def _arg_sets(args: list[ArgCmp]) -> list[tuple[ArgCmp, ...]]:
    # runc's rule: comparisons on distinct arguments are ANDed in one rule, but if an
    # index repeats (libseccomp refuses that with EINVAL) each comparison becomes its own
    # rule, so they are ORed. The profiles use it for personality and ioctl.
    indices = [a.index for a in args]
    return [tuple(args)] if len(set(indices)) == len(indices) else [(a,) for a in args]


def plan_rules(profile: dict[str, Any], resolve: Callable[[str], int]) -> Plan:
    """Rules for libseccomp in profile order. resolve(name) is the native syscall number,
    -1 for an unknown name, below -1 for a syscall of another architecture only."""
    default, entries = parse_profile(profile)
    rules: list[Rule] = []
    warnings: list[str] = []
    for i, (names, action, args) in enumerate(entries):
        for name in names:
            nr = resolve(name)
            if nr < 0:  # skipped as Docker does, so one profile serves older kernels too
                what = "unknown syscall" if nr == -1 else "not a syscall on x86_64"
                warnings.append(f"syscalls[{i}]: {what} {name!r} skipped")
                continue
            rules += [Rule(name, nr, action, s, i) for s in _arg_sets(args)]
    # libseccomp refuses rules with the default action (EACCES); in the profiles they
    # document intent (the closed classes) and change nothing in the filter.
    kept = tuple(r for r in _merge(rules) if r.action != default)
    return Plan(default, kept, tuple(warnings))


def _merge(rules: list[Rule]) -> list[Rule]:
    # An unconditional rule makes libseccomp silently drop every other rule on the same
    # syscall: an allow-all plus a conditional deny would quietly allow everything.
    plain = {r.nr: r for r in rules if not r.args}
    for r in rules:
        if r.nr in plain and r.action != plain[r.nr].action:
            raise ProfileError(
                f"syscall {r.syscall!r}: syscalls[{plain[r.nr].entry}] is unconditional and "
                f"syscalls[{r.entry}] has another action; libseccomp would keep only the first"
            )
    out: dict[tuple[int, int, tuple[ArgCmp, ...]], Rule] = {}
    for r in rules:
        if not (r.args and r.nr in plain):  # else covered by the unconditional rule
            out.setdefault((r.nr, r.action, r.args), r)
    return list(out.values())


def profile_path(name_or_path: str, profiles_dir: Path | str | None = None) -> Path:
    """A bare name is <profiles_dir>/seccomp/<name>.json (profiles_dir defaults to the
    repository's profiles/); anything with a slash or a .json suffix is a path."""
    if "/" in name_or_path or name_or_path.endswith(".json"):
        return Path(name_or_path)
    root = Path(profiles_dir) if profiles_dir else Path(__file__).resolve().parents[1] / "profiles"
    return root / "seccomp" / f"{name_or_path}.json"


def load_profile(name_or_path: str, profiles_dir: Path | str | None = None) -> dict[str, Any]:
    """Read and validate a profile; ProfileError names the file and the field."""
    path = profile_path(name_or_path, profiles_dir)
    try:
        profile = json.loads(path.read_text())
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise ProfileError(f"{path}: not JSON: line {e.lineno} column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: not UTF-8 text: {e.reason} at byte {e.start}") from e
    except RecursionError as e:
        raise ProfileError(f"{path}: JSON nested too deeply") from e
    parse_profile(profile, str(path))
    return dict(profile)


# ---- thin part: libseccomp builds the BPF, prctl loads it ----------------------------------


class CompiledFilter(Program):
    """A profile's BPF, built once in the parent; install() in the child is one prctl."""

    def __init__(self, name: str, bpf: bytes, warnings: tuple[str, ...] = ()) -> None:
        super().__init__(name, bpf)
        self.warnings = warnings


def install(bpf: bytes | CompiledFilter) -> None:
    """Load a filter into the calling thread (see sandbox.bpf.Program)."""
    (bpf if isinstance(bpf, CompiledFilter) else CompiledFilter("<bytes>", bpf)).install()


def _resolve(name: str) -> int:
    import pyseccomp

    return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))


def compile_filter(profile: dict[str, Any], name: str = "<profile>") -> CompiledFilter:
    """Build the filter with libseccomp, natively for x86_64 only."""
    import pyseccomp as scmp

    if scmp.system_arch() != scmp.Arch.X86_64:
        raise SandboxError("seccomp", "seccomp_arch_native()", detail="only x86_64 is supported")
    plan = plan_rules(profile, _resolve)
    for warning in plan.warnings:
        log.warning("seccomp profile %s: %s", name, warning)
    call = "seccomp_init()"
    try:
        flt = scmp.SyscallFilter(plan.default_action)
        # Another ABI (i386 through int 0x80) or an x32 number (nr | 0x40000000) on the
        # native one: libseccomp sends both to the bad-arch action. Kill, never EPERM:
        # a program that switches ABI is attacking, not probing.
        flt.set_attr(scmp.Attr.ACT_BADARCH, RET_KILL_PROCESS)
        # A binary search on the syscall number: also halves the kernel's work at load,
        # where it runs the filter once per syscall to build its allow cache.
        flt.set_attr(scmp.Attr.CTL_OPTIMIZE, 2)
        for r in plan.rules:
            call = f"seccomp_rule_add({r.syscall}) for syscalls[{r.entry}]"
            flt.add_rule(r.action, r.nr, *(scmp.Arg(*astuple(a)) for a in r.args))
        call = "seccomp_export_bpf()"
        with tempfile.TemporaryFile() as out:
            flt.export_bpf(out)
            out.seek(0)
            bpf = out.read()
    except OSError as e:
        raise SandboxError("seccomp", call, e.errno or 0, name) from e
    return CompiledFilter(name, bpf, plan.warnings)


def compile_profile(profile: dict[str, Any]) -> bytes:
    """The profile's BPF program (native x86_64 only), as export_bpf writes it."""
    return compile_filter(profile).bpf


_cache: dict[tuple[str, str], CompiledFilter] = {}
_cache_lock = threading.Lock()


def filter_for(name: str, profiles_dir: Path | str | None = None) -> CompiledFilter:
    """The compiled filter for a profile, built once per process: compiling takes a few
    milliseconds, installing a fraction of one."""
    key = (name, str(profiles_dir))
    flt = _cache.get(key)
    if flt is not None:
        return flt
    with _cache_lock:
        flt = _cache.get(key)
        if flt is None:
            path = profile_path(name, profiles_dir)
            flt = _cache[key] = compile_filter(load_profile(str(path)), name)
        return flt
