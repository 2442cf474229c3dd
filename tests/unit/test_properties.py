"""Property tests of the parsers: sizes, box specs, base64 fields, zip archives, problem
packages and seccomp profiles. On any input each one answers or raises its own documented
error; nothing else escapes. Examples and deadlines are bounded: the file runs in seconds."""

from __future__ import annotations

import base64
import io
import json
import math
import posixpath
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.seccomp import ProfileError, load_profile, parse_profile
from sandbox.sizes import parse_size
from sandbox.spec import BoxSpec, validate
from service.errors import ApiError
from service.submissions import b64decode
from worker.jobs.archives import ArchiveError, ArchiveLimits, decode_base64, extract_zip
from worker.jobs.languages import load_languages
from worker.problems import ProblemError, load_package, parse_simple_yaml

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name")

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(
    max_examples=40,
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# JSON-ish values: what json.loads can hand a parser.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


# --- sandbox.sizes ------------------------------------------------------------------------


@FAST
@given(st.text(max_size=30))
def test_parse_size_answers_or_raises_value_error(text: str) -> None:
    try:
        n = parse_size(text)
    except ValueError as e:
        assert repr(text) in str(e)
    else:
        assert isinstance(n, int) and n >= 0


@FAST
@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "k", "K", "M", "m", "G", "KB", "MiB", "gib", " M "]),
)
def test_parse_size_units(number: int, unit: str) -> None:
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit.strip()[:1].upper()]
    assert parse_size(f"{number}{unit}") == number * scale


# --- sandbox.spec -------------------------------------------------------------------------

_SPEC_KEYS = ["argv", "files", "stdin", "env", "limits", "rootfs", "profile", "network", "collect"]
limit_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
limits_dicts = st.dictionaries(
    st.sampled_from(["cpu_time_s", "wall_time_s", "memory_bytes", "pids", "output_bytes",
                     "fsize_bytes", "scratch_bytes", "scratch_inodes", "nofile", "stack_bytes"]),
    limit_values,
)  # fmt: skip
spec_dicts = st.fixed_dictionaries(
    {"argv": st.lists(st.text(max_size=8), max_size=3)},
    optional={
        "files": st.lists(
            st.fixed_dictionaries(
                {
                    "path": st.text(max_size=12),
                    "content": st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()),
                },
                optional={"mode": st.integers(0, 0o7777)},
            ),
            max_size=3,
        ),
        "stdin": st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()),
        "env": st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=3),
        "limits": limits_dicts,
        "rootfs": st.text(max_size=10),
        "profile": st.text(max_size=10),
        "network": st.booleans(),
        "collect": st.lists(st.text(max_size=10), max_size=3),
    },
)


@FAST
@given(spec_dicts)
def test_validate_never_raises_on_a_well_typed_spec(data: dict[str, Any]) -> None:
    """Any spec from_dict builds from well-shaped JSON: validate() lists the problems."""
    spec = BoxSpec.from_dict(data)
    errors = validate(spec)
    assert all(isinstance(e, str) and ": " in e for e in errors)
    for f in spec.files:
        if not errors:
            full = posixpath.normpath(posixpath.join("/box", f.path))
            assert full.startswith(("/box/", "/tmp/"))


@FAST
@given(st.dictionaries(st.sampled_from(_SPEC_KEYS), json_values) | json_values)
def test_from_dict_on_junk_raises_only_type_or_value_errors(data: Any) -> None:
    """from_dict does not judge values: junk shapes are TypeError/ValueError/KeyError (a
    missing argv); validate() of what it builds raises no other kind either."""
    try:
        validate(BoxSpec.from_dict(data))
    except (TypeError, ValueError, KeyError):
        pass


@FAST
@given(st.text(max_size=40))
def test_from_json_on_junk_text(text: str) -> None:
    try:
        BoxSpec.from_json(text)
    except (TypeError, ValueError, KeyError):
        pass


# --- Base64 fields of the Judge0 API -------------------------------------------------------


@FAST
@given(st.text(max_size=200).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_b64decode_round_trips_utf8_text(text: str) -> None:
    encoded = base64.b64encode(text.encode()).decode()
    assert b64decode("stdin", encoded) == text
    # Judge0 clients wrap base64 at 60/76 columns: whitespace is ignored.
    wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
    assert b64decode("stdin", wrapped) == text


@FAST
@given(st.text(max_size=60) | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()))
def test_b64decode_answers_text_or_a_422(value: str) -> None:
    try:
        out = b64decode("source_code", value)
    except ApiError as e:
        assert e.status == 422 and list(e.body) == ["source_code"]
    else:
        assert isinstance(out, str)
        out.encode()  # valid UTF-8 text, never a lone surrogate


@FAST
@given(scalars | st.lists(st.integers(), max_size=3))
def test_b64decode_leaves_non_strings_for_the_type_checks(value: Any) -> None:
    if not isinstance(value, str):
        assert b64decode("stdin", value) is value


# --- worker.jobs.archives ----------------------------------------------------------------------

entry_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=20
) | st.sampled_from(["../x", "/abs", "a/../../b", "./a", "a//b", "d/", "C:/x", "a\\b", "."])
entry_modes = st.none() | st.sampled_from(
    [stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777, stat.S_IFIFO | 0o644,
     stat.S_IFCHR | 0o600, 0o755]
)  # fmt: skip
entries = st.lists(
    st.tuples(entry_names, st.binary(max_size=64), entry_modes, st.booleans()), max_size=6
)


def build_zip(items: list[tuple[str, bytes, int | None, bool]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode, deflate in items:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def check_extracted(files: dict[str, bytes]) -> None:
    """What extract_zip hands back can only be placed inside the box's directory."""
    for path in files:
        assert path and not path.startswith("/") and "\\" not in path and "\0" not in path
        assert posixpath.normpath(path) == path
        assert ".." not in path.split("/")
        assert posixpath.normpath(posixpath.join("/box", path)).startswith("/box/")


@FAST
@given(entries)
def test_extract_zip_of_generated_entries(items: list[tuple[str, bytes, int | None, bool]]) -> None:
    data = build_zip(items)
    try:
        files = extract_zip(data)
    except ArchiveError:
        return
    check_extracted(files)
    assert sum(len(v) for v in files.values()) <= ArchiveLimits().max_total_bytes


@settings(max_examples=300, deadline=2000)
@given(entries, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_extract_zip_of_corrupted_zips_raises_only_archive_error(
    items: list[tuple[str, bytes, int | None, bool]], flips: list[tuple[int, int]]
) -> None:
    data = bytearray(build_zip(items))
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    try:
        files = extract_zip(bytes(data))
    except ArchiveError:
        return
    check_extracted(files)


@FAST
@given(st.binary(max_size=300))
def test_extract_zip_of_junk_bytes(data: bytes) -> None:
    with pytest.raises(ArchiveError):
        extract_zip(data)


@FAST
@given(st.text(max_size=80))
def test_decode_base64_of_junk(text: str) -> None:
    try:
        out = decode_base64(text)
    except ArchiveError:
        return
    assert isinstance(out, bytes)


# --- worker.problems ----------------------------------------------------------------------

yaml_texts = (
    st.text(max_size=80)
    | st.sampled_from(
        [
            "name: x\nlimits:\n  time_limit: abc\n",
            "limits: 3\n",
            "limits:\n  memory: lots\n",
            "validation: custom\n",
            "validation: custom interactive\n",
            "- a\n- b\n",
            "[\n",
            "name: x\nvalidator_flags: float_tolerance abc\n",
            "name: [unclosed\n",
            ":\n",
            "a: b: c\n",
            "limits:\n  time_limit: [1, 2]\n",
            "limits:\n  memory: {a: 1}\n",
            "validation: 3\n",
            "validator_flags: case_sensitive\n",
            "name: ok\n",
        ]
    )
    | st.dictionaries(
        st.sampled_from(["name", "limits", "validation", "validator_flags"]), json_values
    ).map(json.dumps)
)
testdata_texts = st.sampled_from(
    [b"range: a b\n", b"range: 1\n", b"accept_score: [1]\n", b"on_reject: maybe\n",
     b"grader_flags: {x: 1}\n", b"input_validator_args: {a: {b: 1}}\n", b"grading: min\n",
     b"output_validator_args: [float_tolerance, 1e-6]\n", b"- 1\n", b"{\n"]
)  # fmt: skip
data_files = st.dictionaries(
    st.sampled_from(["sample/1.in", "sample/1.ans", "secret/a.in", "secret/a.ans", "secret/b.in",
                     "secret/g/c.in", "secret/g/c.ans", "sample", "secret/x.ans"]),
    st.binary(max_size=20),
) | st.fixed_dictionaries(
    {"secret/a.in": st.just(b"1"), "secret/a.ans": st.just(b"1")},
    optional={"testdata.yaml": testdata_texts, "secret/testdata.yaml": testdata_texts},
)  # fmt: skip
package_trees = st.fixed_dictionaries(
    {"data": data_files},
    optional={
        "problem.yaml": yaml_texts.map(str.encode) | st.binary(max_size=40),
        ".timelimit": st.sampled_from([b"2", b"1.5\n", b"abc", b"", b"\xff", b"x=y", b"t='3'"]),
        "domjudge-problem.ini": st.sampled_from([b"timelimit='2'\n", b"timelimit=\n", b"junk"]),
        "output_validators": st.dictionaries(
            st.sampled_from(["v/check.cpp", "v/check.py", "v/check.xyz", "w/a.py", "loose.py"]),
            st.binary(max_size=10),
        ),
    },
)


def write_tree(root: Path, tree: dict[str, Any]) -> None:
    for name, value in tree.items():
        if isinstance(value, dict):
            (root / name).mkdir(exist_ok=True)
            for sub, content in value.items():
                path = root / name / sub
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                except (IsADirectoryError, FileExistsError, NotADirectoryError):
                    pass  # 'sample' as a file and as a directory: one of them wins
        else:
            (root / name).write_bytes(value)


@pytest.fixture(scope="module")
def languages() -> Any:
    return load_languages()


@SLOW
@given(package_trees)
def test_load_problem_raises_only_problem_error(languages: Any, tree: dict[str, Any]) -> None:
    """What `stockade judge` can report (ProblemError, OSError) and nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), tree)
        try:
            package = load_package(Path(tmp), 2048)
        except (ProblemError, OSError):
            return
    tl = package.limits.time_limit_s
    assert package.cases and (tl is None or (tl > 0 and math.isfinite(tl)))


@FAST
@given(st.text(max_size=100))
def test_simple_yaml_raises_only_problem_error(text: str) -> None:
    try:
        assert isinstance(parse_simple_yaml(text), dict)
    except ProblemError:
        pass


# --- sandbox.seccomp ----------------------------------------------------------------------

actions = st.sampled_from(
    ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRACE", "NOPE"]
)
arg_objects = st.dictionaries(
    st.sampled_from(["index", "value", "valueTwo", "op", "extra"]),
    st.integers(-2, 1 << 65) | st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ", "X"])
    | json_values,
)  # fmt: skip
rule_objects = st.dictionaries(
    st.sampled_from(["names", "action", "args", "errnoRet", "comment", "bogus"]),
    st.lists(st.sampled_from(["read", "write", "", "nosuchcall"]), max_size=3)
    | actions | st.lists(arg_objects, max_size=2) | json_values,
)  # fmt: skip
profiles = st.dictionaries(
    st.sampled_from(["defaultAction", "defaultErrnoRet", "architectures", "syscalls", "x"]),
    actions | st.just(["SCMP_ARCH_X86_64"]) | st.lists(rule_objects, max_size=3) | json_values,
)  # fmt: skip


@settings(max_examples=300, deadline=2000)
@given(profiles | json_values)
def test_parse_profile_raises_only_profile_error(profile: Any) -> None:
    try:
        default, entries_ = parse_profile(profile, "fuzz")
    except ProfileError as e:
        assert str(e).startswith("fuzz")
        return
    assert isinstance(default, int) and isinstance(entries_, list)


@SLOW
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_load_profile_on_junk_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.json"
    path.write_bytes(content)
    try:
        load_profile(str(path))
    except ProfileError as e:
        assert str(path) in str(e)


def test_the_shipped_profiles_parse() -> None:
    root = Path(__file__).resolve().parents[2] / "profiles" / "seccomp"
    shipped = sorted(root.glob("*.json"))
    assert shipped
    for path in shipped:
        load_profile(str(path))
