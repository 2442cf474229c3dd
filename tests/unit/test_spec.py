"""BoxSpec as data: frozen, JSON round trip with bytes as base64, and validate()'s messages."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from sandbox.spec import MIB, BoxSpec, FileIn, Limits, box_path, validate


def full_spec() -> BoxSpec:
    return BoxSpec(
        argv=("/usr/bin/python3", "-c", "print('hé')"),
        files=(FileIn("main.py", b"\x00\xff binary\n", 0o755), FileIn("/tmp/in.txt", b"")),
        stdin=bytes(range(256)),
        env=(("K", "V"), ("EMPTY", "")),
        limits=Limits(cpu_time_s=1.5, memory_bytes=64 * MIB, pids=8, stack_bytes=8 * MIB),
        rootfs="host",
        profile="compile",
        network=True,
        collect=("out.bin",),
        collect_max_bytes=1000,
    )


def test_json_round_trip_is_identity() -> None:
    spec = full_spec()
    assert BoxSpec.from_json(spec.to_json()) == spec


def test_json_carries_bytes_as_base64() -> None:
    spec = full_spec()
    data = json.loads(spec.to_json())
    assert data["stdin"] == base64.b64encode(bytes(range(256))).decode()
    assert data["files"][0] == {
        "path": "main.py",
        "content": base64.b64encode(b"\x00\xff binary\n").decode(),
        "mode": 0o755,
    }
    assert data["limits"]["cpu_time_s"] == 1.5
    assert data["limits"]["stack_bytes"] == 8 * MIB
    assert data["env"] == [["K", "V"], ["EMPTY", ""]]


def test_json_is_plain_ascii_json() -> None:
    text = full_spec().to_json()
    text.encode("ascii")  # non-ASCII argv is escaped, bytes are base64
    assert isinstance(json.loads(text), dict)


def test_from_dict_fills_defaults() -> None:
    spec = BoxSpec.from_dict({"argv": ["/bin/true"]})
    assert spec == BoxSpec(argv=("/bin/true",))
    assert spec.limits == Limits()


def test_defaults_suit_a_judge() -> None:
    d = Limits()
    assert (d.cpu_time_s, d.wall_time_s) == (5.0, 10.0)
    assert (d.memory_bytes, d.pids, d.output_bytes, d.scratch_bytes) == (
        256 * MIB,
        64,
        1 * MIB,
        64 * MIB,
    )
    assert BoxSpec(argv=("x",)).network is False


@pytest.mark.parametrize("obj", [full_spec(), Limits(), FileIn("a", b"")])
def test_spec_parts_are_frozen(obj: object) -> None:
    field = dataclasses.fields(obj)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.c", "/box/a.c"),
        ("sub/dir/x", "/box/sub/dir/x"),
        ("./a/../b", "/box/b"),
        ("/tmp/x", "/tmp/x"),
        ("../etc/passwd", "/etc/passwd"),
    ],
)
def test_box_path_is_relative_to_box(path: str, expected: str) -> None:
    assert box_path(path) == expected


def test_valid_spec_has_no_problems() -> None:
    assert validate(full_spec()) == []
    assert validate(BoxSpec(argv=("/bin/true",))) == []


def _problems(**changes: object) -> list[str]:
    limits = {k: v for k, v in changes.items() if k in {f.name for f in dataclasses.fields(Limits)}}
    rest = {k: v for k, v in changes.items() if k not in limits}
    spec = BoxSpec(**{"argv": ("/bin/true",), **rest})  # type: ignore[arg-type]
    return validate(dataclasses.replace(spec, limits=Limits(**limits)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"argv": ()}, "argv", "program"),
        ({"argv": ("",)}, "argv", "program"),
        ({"argv": ("/bin/echo", "a\0b")}, "argv", "NUL"),
        ({"cpu_time_s": 0}, "limits.cpu_time_s", "at least"),
        ({"cpu_time_s": -1.0}, "limits.cpu_time_s", "at least"),
        ({"wall_time_s": 0}, "limits.wall_time_s", "at least"),
        ({"memory_bytes": 1024}, "limits.memory_bytes", "at least"),
        ({"pids": 0}, "limits.pids", "at least"),
        ({"output_bytes": -1}, "limits.output_bytes", "at least"),
        ({"fsize_bytes": -1}, "limits.fsize_bytes", "at least"),
        ({"scratch_bytes": 1024}, "limits.scratch_bytes", "at least"),
        ({"scratch_inodes": 1}, "limits.scratch_inodes", "at least"),
        ({"nofile": 2}, "limits.nofile", "at least"),
        ({"stack_bytes": 1024}, "limits.stack_bytes", "at least"),
        ({"files": (FileIn("../etc/passwd", b""),)}, "files", "inside /box or /tmp"),
        ({"files": (FileIn("/proc/x", b""),)}, "files", "inside /box or /tmp"),
        ({"env": (("A=B", "x"),)}, "env", "not a valid variable name"),
        ({"env": (("", "x"),)}, "env", "not a valid variable name"),
        ({"collect": ("/etc/passwd",)}, "collect", "inside /box"),
        ({"collect": ("../tmp/x",)}, "collect", "inside /box"),
        ({"profile": "../../etc/x"}, "profile", "plain name"),
        ({"rootfs": "/"}, "rootfs", "plain name"),
        ({"tier": "vm"}, "tier", "one of container, gvisor, microvm"),
        ({"tier": "gvisor", "network": True}, "network", "only the container tier"),
    ],
)
def test_each_problem_names_the_field_and_the_rule(
    changes: dict[str, object], field: str, rule: str
) -> None:
    problems = _problems(**changes)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{field}: "), problems
    assert rule in problems[0]


def test_limit_problems_name_the_bound_and_the_value() -> None:
    [problem] = _problems(memory_bytes=1024)
    assert problem == f"limits.memory_bytes: must be at least {4 * MIB}, got 1024"


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(argv=(), pids=0, memory_bytes=1, env=(("=", ""),))
    assert [p.split(":")[0] for p in problems] == [
        "argv",
        "limits.memory_bytes",
        "limits.pids",
        "env",
    ]


@pytest.mark.parametrize("field", ["cpu_time_s", "wall_time_s"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_times_are_refused(field: str, value: float) -> None:
    """JSON from outside can carry NaN and Infinity (json.loads accepts both), and a NaN
    compares false with every bound."""
    problems = _problems(**{field: value})
    assert any(p.startswith(f"limits.{field}: ") for p in problems), problems


def test_non_finite_time_from_json_is_refused() -> None:
    text = BoxSpec(argv=("/bin/true",)).to_json().replace('"cpu_time_s": 5.0', '"cpu_time_s": NaN')
    spec = BoxSpec.from_json(text)
    assert validate(spec), "a NaN CPU limit passed validation"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cpu_time_s", 1e300),
        ("memory_bytes", 1 << 64),
        ("fsize_bytes", 1 << 64),
        ("stack_bytes", 1 << 64),
        ("pids", 10**20),
    ],
)
def test_limits_beyond_the_kernels_range_are_refused(field: str, value: float) -> None:
    """setrlimit(2) and cgroup files take at most a 64-bit value; past that the box can only
    fail (XX) in the middle of its setup instead of answering with the field and the rule."""
    problems = _problems(**{field: value})
    assert any(p.startswith(f"limits.{field}: ") for p in problems), problems
