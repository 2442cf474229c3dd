"""The package format's pure parts: problem.yaml of both versions, testdata.yaml, limits,
the default validator, the extension table, Java class names, the interactive rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandbox.result import BoxResult, Status
from sandbox.spec import MIB
from worker.jobs.languages import load_languages
from worker.jobs.model import CaseResult, JudgeResult, Verdict
from worker.jobs.packages.format import ProblemError, read_meta, read_tests
from worker.jobs.packages.limits import read_limits
from worker.jobs.packages.package import load_package
from worker.problems.programs import Builder, Sources, choose_language, plan
from worker.problems.run import Limits, PackageJudge, interactive_outcome, program_verdict
from worker.problems.validate import default_validate, parse_flags, read_feedback
from worker.problems.verify import _row, expected_verdicts


@pytest.fixture(scope="module")
def languages() -> Any:
    return load_languages()


def _package(tmp_path: Path, yaml: str) -> Path:
    (tmp_path / "problem.yaml").write_text(yaml)
    return tmp_path


def test_both_versions_and_both_type_spellings(tmp_path: Path) -> None:
    meta = read_meta(_package(tmp_path, "validation: custom interactive\n"))
    assert (meta.version, meta.interactive, meta.custom_output) == ("legacy", True, True)
    meta = read_meta(_package(tmp_path, "problem_format_version: 2023-07\ntype: interactive\n"))
    assert (meta.version, meta.interactive, meta.scoring) == ("2023-07", True, False)
    text = "problem_format_version: 2023-07\ntype: [scoring, interactive]\n"
    meta = read_meta(_package(tmp_path, text))
    assert meta.interactive and meta.scoring
    # A 2023-07 package ignores the legacy key: `validation` says nothing there.
    meta = read_meta(_package(tmp_path, "problem_format_version: 2023-07\nvalidation: custom\n"))
    assert not meta.custom_output
    with pytest.raises(ProblemError, match="problem_format_version"):
        read_meta(_package(tmp_path, "problem_format_version: 1999\n"))


def test_limits_stated_and_from_domjudge_files(tmp_path: Path) -> None:
    meta = read_meta(
        _package(tmp_path, "problem_format_version: 2023-07\nlimits:\n  time_limit: 2.5\n")
    )
    assert read_limits(tmp_path, meta, 2048).time_limit_s == 2.5
    (tmp_path / "problem.yaml").write_text("name: x\n")
    (tmp_path / "domjudge-problem.ini").write_text("name = 'x'\ntimelimit = '3'\n")
    lim = read_limits(tmp_path, read_meta(tmp_path), 2048)
    assert (lim.time_limit_s, lim.time_source) == (3.0, "domjudge-problem.ini")
    (tmp_path / ".timelimit").write_text("4\n")
    lim = read_limits(tmp_path, read_meta(tmp_path), 2048)
    assert (lim.time_limit_s, lim.time_source) == (4.0, ".timelimit")


def test_derived_limits_follow_the_declared_version(tmp_path: Path) -> None:
    legacy = read_limits(tmp_path, read_meta(_package(tmp_path, "name: x\n")), 2048)
    assert legacy.time_limit_s is None
    assert legacy.derive(0.3) == 2.0  # 0.3 x 5, rounded up to whole seconds
    assert legacy.tle_threshold(2.0) == 4.0  # time_safety_margin 2
    text = "problem_format_version: 2023-07\n"
    new = read_limits(tmp_path, read_meta(_package(tmp_path, text)), 2048)
    assert new.derive(0.3) == 0.6 and new.tle_threshold(0.6) == pytest.approx(0.9)
    text += "limits:\n  time_multipliers:\n    ac_to_time_limit: 3\n    time_limit_to_tle: 2\n"
    new = read_limits(tmp_path, read_meta(_package(tmp_path, text)), 2048)
    assert new.derive(0.3) == pytest.approx(0.9) and new.tle_threshold(1.0) == 2.0
    text = "limits:\n  time_multiplier: 2\n  time_safety_margin: 3\n"
    legacy = read_limits(tmp_path, read_meta(_package(tmp_path, text)), 2048)
    assert legacy.derive(0.3) == 1.0 and legacy.tle_threshold(1.0) == 3.0


def test_memory_as_asked_or_refused(tmp_path: Path) -> None:
    meta = read_meta(_package(tmp_path, "limits:\n  memory: 600\n"))
    assert read_limits(tmp_path, meta, 2048).memory_mib == 600  # above Judge0's 500 MiB
    with pytest.raises(ProblemError, match="STOCKADE_PACKAGE_MAX_MEMORY_MIB"):
        read_limits(tmp_path, meta, 512)
    meta = read_meta(_package(tmp_path, "problem_format_version: 2023-07\n"))
    assert read_limits(tmp_path, meta, 1000).memory_mib == 1000  # a default is lowered


def test_testdata_yaml_is_inherited_per_directory(tmp_path: Path) -> None:
    tree = {
        "testdata.yaml": "output_validator_flags: float_tolerance 1e-6\n",
        "sample/1.in": "1",
        "sample/1.ans": "1",
        "secret/testdata.yaml": "on_reject: continue\ngrading: sum\n",
        "secret/g1/testdata.yaml": "grading: min\naccept_score: 30\n",
        "secret/g1/a.in": "1",
        "secret/g1/a.ans": "1",
    }
    for name, text in tree.items():
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root = read_tests(tmp_path / "data")
    assert [c.name for c in root.cases()] == ["sample/1", "secret/g1/a"]
    case = root.cases()[1]
    assert case.testdata.output_validator_flags == ("float_tolerance", "1e-6")
    assert (case.testdata.on_reject, case.testdata.aggregation(), case.testdata.accept_score) == (
        "continue",
        "min",
        30.0,
    )
    assert root.cases()[0].testdata.accept_score == 0.0  # samples never score


def test_default_validator_flags() -> None:
    assert default_validate(parse_flags([]), b"YES\n", b"yes")[0]
    assert not default_validate(parse_flags(["case_sensitive"]), b"YES\n", b"yes")[0]
    assert default_validate(parse_flags([]), b"1  2\n", b"1 2\n")[0]
    assert not default_validate(parse_flags(["space_change_sensitive"]), b"1  2\n", b"1 2\n")[0]
    flags = parse_flags(["float_absolute_tolerance", "1e-3"])
    assert default_validate(flags, b"0.3334", b"0.333333")[0]
    assert not default_validate(flags, b"0.34", b"0.333")[0]
    rel = parse_flags(["float_relative_tolerance", "0.01"])
    assert default_validate(rel, b"1005", b"1000")[0]
    assert not default_validate(rel, b"1011", b"1000")[0]
    for got, want in ((b"inf", b"Inf"), (b"-INFINITY", b"-inf"), (b"-nan", b"NaN")):
        assert default_validate(flags, got, want)[0], (got, want)
    assert not default_validate(flags, b"inf", b"-inf")[0]
    assert not default_validate(flags, b"nan", b"1")[0]
    with pytest.raises(ProblemError):
        parse_flags(["float_tolerance"])


def test_extension_table_and_the_ambiguous_pl(languages: Any) -> None:
    assert choose_language(languages, ["validate.cc", "validate.h"])[0].key == "cpp"
    assert choose_language(languages, ["a.cxx", "b.hpp", "c.c"])[0].key == "cpp"
    lang, note = choose_language(languages, ["sol.pl"])  # the contest systems' meaning
    assert lang.key == "prolog" and "also perl" in note and "--language decides" in note
    lang, note = choose_language(languages, ["sol.pl"], package_languages=("perl",))
    assert lang.key == "perl" and ".pl is ambiguous" in note
    assert choose_language(languages, ["sol.pl"], "perl")[0].key == "perl"
    assert choose_language(languages, ["Main.kt"])[0].key == "kotlin"
    with pytest.raises(ProblemError, match="swift"):
        choose_language(languages, ["main.swift"])


def test_java_class_from_the_file_and_its_package(languages: Any) -> None:
    java = next(lang for lang in languages.values() if lang.key == "java")
    src = b"package a.b;\npublic class Different { public static void main(String[] x) {} }"
    variant, main, extra = plan(Sources((("Different.java", src),), java))
    assert variant.source_file == "Different.java" and main == src and not extra
    assert variant.run[-1] == "a.b.Different"
    assert variant.compile[-3:] == ("-d", ".", "Different.java")


def test_multi_file_and_syntax_checked_programs(languages: Any) -> None:
    cpp = next(lang for lang in languages.values() if lang.key == "cpp")
    files = (("add.cpp", b""), ("add.h", b""), ("main.cpp", b"int main(){}"))
    variant, _, extra = plan(Sources(files, cpp))
    assert {"add.cpp", "main.cpp"} <= set(variant.compile) and "add.h" in extra
    py = next(lang for lang in languages.values() if lang.key == "python3")
    files = (("game.py", b"X = 1"), ("interactor.py", b"from game import X"))
    variant, main, _ = plan(Sources(files, py))
    assert variant.run[-1] == "interactor.py" and main == b"from game import X"
    assert variant.compile == ("python3", "-m", "py_compile", "interactor.py")


def _box(status: Status, code: int | None, time: float = 0.0) -> BoxResult:
    return BoxResult(status, code, None, time, time, 0, b"", b"", "")


def test_the_validator_that_ended_first_decides() -> None:
    tle, wa, crash = _box(Status.TO, None, 2.0), _box(Status.RE, 43), _box(Status.RE, 1)
    assert interactive_outcome(tle, wa, True, 1.0).verdict is Verdict.WA
    assert interactive_outcome(tle, wa, False, 1.0).verdict is Verdict.TLE
    broken = _box(Status.SG, None)  # SIGPIPE after the program crashed
    assert interactive_outcome(crash, broken, False, 1.0).verdict is Verdict.RE
    assert interactive_outcome(_box(Status.OK, 0), broken, True, 1.0).verdict is Verdict.IE
    assert interactive_outcome(crash, _box(Status.RE, 42), True, 1.0).verdict is Verdict.RE


def test_feedback_and_expected_results(tmp_path: Path) -> None:
    fb = read_feedback({"/box/judge/feedback/score.txt": b"12.5\n", "/x/judgemessage.txt": b"ok"})
    assert (fb.score, fb.judge_message) == (12.5, "ok")
    assert read_feedback({"f/score.txt": b"lots"}).error
    sub = tmp_path / "s.py"
    sub.write_text("# @EXPECTED_RESULTS@: CORRECT, TIMELIMIT\n")
    assert expected_verdicts(sub, "whatever") == {Verdict.AC, Verdict.TLE}
    sub.write_text("print(1)\n")
    assert expected_verdicts(sub, "run_time_error") == {Verdict.RE, Verdict.MLE}
    assert expected_verdicts(sub, "misc") is None


def test_input_validator_args_by_name_and_other_keys_left_alone(tmp_path: Path) -> None:
    text = "input_validator_args:\n  bounds: [--max, '9']\nfull_feedback: true\n"
    for name, content in {"testdata.yaml": text, "secret/1.in": "1", "secret/1.ans": "1"}.items():
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    case = read_tests(tmp_path / "data").cases()[0]
    assert case.testdata.input_flags("bounds") == ("--max", "9")
    assert case.testdata.input_flags("other") == ()


class _FakeLauncher:
    """Records every box; compile boxes hand back their files, the rest accept."""

    def __init__(self) -> None:
        self.specs: list[Any] = []

    def run(self, spec: Any, stdio: Any = None) -> BoxResult:
        self.specs.append(spec)
        if spec.collect == ("/box/",):
            files = {f"/box/{f.path}": f.content for f in spec.files}
            return BoxResult(Status.OK, 0, None, 0.1, 0.1, 0, b"", b"", "", files=files)
        if "judge/input" in spec.argv:
            return BoxResult(Status.RE, 42, None, 0.1, 0.1, 0, b"", b"", "")
        return BoxResult(Status.OK, 0, None, 0.1, 0.1, 0, b"1\n", b"", "")


def test_compile_validation_and_run_limits_reach_their_boxes(
    languages: Any, tmp_path: Path
) -> None:
    (tmp_path / "problem.yaml").write_text(
        "validation: custom\nlimits:\n  memory: 600\n  compilation_time: 7\n"
        "  validation_time: 9\n  validation_memory: 300\n"
    )
    (tmp_path / "output_validators").mkdir()
    (tmp_path / "output_validators" / "v.py").write_text("import sys; sys.exit(42)\n")
    (tmp_path / "data" / "secret").mkdir(parents=True)
    (tmp_path / "data" / "secret" / "1.in").write_text("1\n")
    (tmp_path / "data" / "secret" / "1.ans").write_text("1\n")
    package = load_package(tmp_path, 2048)
    fake = _FakeLauncher()
    lim = package.limits
    builder = Builder(fake, languages, "host", lim.compile_time_s, lim.compile_memory_mib)
    pj = PackageJudge(fake, package, builder, languages)
    py = next(lang for lang in languages.values() if lang.key == "python3")
    result = pj.judge(Sources((("a.py", b"print(1)\n"),), py), Limits(1.0, 2.0))
    assert result.verdict is Verdict.AC, result.message
    compiles = [s for s in fake.specs if s.collect == ("/box/",)]
    assert len(compiles) == 2 and all(s.limits.cpu_time_s == 7.0 for s in compiles)
    program = next(s for s in fake.specs if s.argv[-1] == "a.py" and not s.collect)
    assert program.limits.memory_bytes == 600 * MIB and program.limits.cpu_time_s == 2.0
    validator = next(s for s in fake.specs if "judge/input" in s.argv)
    assert validator.limits.memory_bytes == 300 * MIB and validator.limits.cpu_time_s == 9.0
    assert validator.collect == ("/box/judge/feedback/",)


def test_kotlin_class_from_the_file(languages: Any) -> None:
    """No Kotlin language file ships, but one that names Main.kt and MainKt is adapted as
    Java's is: different.kt runs DifferentKt, in its package."""
    java = next(lang for lang in languages.values() if lang.key == "java")
    kotlin = replace(
        java,
        key="kotlin",
        source_file="Main.kt",
        compile=("kotlinc", "-d", ".", "Main.kt"),
        run=("kotlin", "MainKt"),
    )
    src = b"package x.y\n\nfun main() {\n    println(1)\n}\n"
    variant, main, _ = plan(Sources((("different.kt", src), ("util.kt", b"fun f() = 1")), kotlin))
    assert variant.compile == ("kotlinc", "-d", ".", "different.kt", "util.kt")
    assert variant.run == ("kotlin", "x.y.DifferentKt") and main == src


def test_a_time_limit_exceeded_submission_must_be_safely_too_slow(tmp_path: Path) -> None:
    """Over the limit but under the limit times the margin: the folder's TLE is not met."""
    tle = frozenset({Verdict.TLE})
    limits = Limits(1.0, 2.0)
    _, slow = program_verdict(_box(Status.OK, 0, 1.5), 1.0)
    _, killed = program_verdict(_box(Status.TO, None, 2.0), 1.0)
    for message, ok in ((slow, False), (killed, True)):
        case = CaseResult("secret/1", Verdict.TLE, 1.5, 0, message=message)
        result = JudgeResult(Verdict.TLE, 0.0, 1.0, (case,))
        row = _row(tmp_path, tmp_path / "s.py", "time_limit_exceeded", tle, result, "", limits)
        assert row.ok is ok, message


def test_a_malformed_testdata_yaml_is_named(tmp_path: Path) -> None:
    for name, text in {"secret/testdata.yaml": "range: 1\n", "secret/1.in": "1"}.items():
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(ProblemError, match=r"secret/testdata.yaml: ValueError"):
        read_tests(tmp_path / "data")
