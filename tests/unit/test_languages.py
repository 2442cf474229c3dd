"""Language files: the shipped ones load, and every schema rule names its file and field."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from sandbox.spec import MIB
from tests.unit.test_judge_tiers import Recorder
from worker import selftest
from worker.jobs.languages import (
    COMPILE_DEFAULTS,
    DEFAULT_DIRECTORY,
    OPTIONS_WORD,
    LanguageError,
    expand,
    load_language,
    load_languages,
    renamed,
    with_options,
)
from worker.jobs.model import Submission
from worker.judge import KB, Judge

# Judge0 CE's ids (db/languages/active.rb) for the languages Stockade serves.
JUDGE0_IDS = {
    "plaintext": 43,
    "executable": 44,
    "bash": 46,
    "multi": 89,
    "c": 50,
    "cpp": 54,
    "fortran": 59,
    "go": 60,
    "java": 62,
    "javascript": 63,
    "lua": 64,
    "ocaml": 65,
    "pascal": 67,
    "php": 68,
    "python3": 71,
    "ruby": 72,
    "rust": 73,
    "perl": 85,
    "assembly": 45,
    "csharp": 51,
    "lisp": 55,
    "d": 56,
    "haskell": 61,
    "octave": 66,
    "prolog": 69,
    "typescript": 74,
    "c_clang": 75,
    "cpp_clang": 76,
    "cobol": 77,
    "kotlin": 78,
    "objectivec": 79,
    "r": 80,
    "scala": 81,
    "sql": 82,
    "clojure": 86,
    "groovy": 88,
    "elixir": 57,
    "erlang": 58,
}
IMAGES = {
    "gcc", "python3", "java", "nodejs", "rust", "go", "ruby", "perl", "php", "lua", "pascal",
    "fortran", "ocaml", "debian", "clang", "mono", "sbcl", "d", "haskell", "octave", "prolog",
    "typescript", "cobol", "r", "sqlite", "jvm", "elixir",
}  # fmt: skip

MINIMAL = """
id = 900
name = "Test (1.0)"
source_file = "main.t"
run = ["cat", "main.t"]
image = "debian"

[self_test]
source = "x"
expected_stdout = "x"
"""


def test_shipped_languages_load_with_judge0_ids() -> None:
    langs = load_languages()
    assert {lang.key: i for i, lang in langs.items()} == JUDGE0_IDS
    for lang in langs.values():
        assert lang.image in IMAGES, lang.key
        assert lang.packages, lang.key
        assert lang.self_test.expected_stdout, lang.key


def test_shipped_packages_are_in_the_deploy_list() -> None:
    listed = set(
        (DEFAULT_DIRECTORY.parent.parent / "deploy/languages-packages.txt").read_text().split()
    )
    for lang in load_languages().values():
        assert set(lang.packages) <= listed, lang.key


def test_executables_are_named_by_the_compile_argv() -> None:
    """Every executable the run box needs is named by the compile argv (-o main). The boxes
    themselves pass validation in tests/unit/test_selftest.py, as the judge makes them."""
    for lang in load_languages().values():
        for exe in lang.executables:
            assert any(arg.endswith(exe) for arg in lang.compile), (lang.key, exe)


def test_runtimes_with_many_threads_get_more_pids() -> None:
    langs = {lang.key: lang for lang in load_languages().values()}
    assert langs["java"].limits.pids >= 128
    assert langs["go"].limits.pids >= 128
    for key in ("csharp", "kotlin", "scala", "clojure", "groovy"):
        assert langs[key].limits.pids >= 128, key
    assert langs["go"].compile_limits.pids >= 128
    assert dict(langs["go"].env)["GOCACHE"].startswith("/tmp/")


def write(tmp_path: Path, stem: str, text: str) -> Path:
    path = tmp_path / f"{stem}.toml"
    path.write_text(text)
    return path


def test_minimal_file_takes_defaults(tmp_path: Path) -> None:
    lang = load_language(write(tmp_path, "t", MINIMAL))
    assert lang.key == "t"
    assert lang.compile == ()
    assert lang.compile_profile == "compile" and lang.run_profile == "run"
    assert lang.compile_limits == COMPILE_DEFAULTS
    assert lang.self_test.stdin == ""
    assert lang.tier == "container"


def test_a_language_can_default_to_a_stronger_tier(tmp_path: Path) -> None:
    lang = load_language(
        write(tmp_path, "t", MINIMAL.replace("[self_test]", 'tier = "gvisor"\n[self_test]'))
    )
    assert lang.tier == "gvisor"


def test_sizes_and_whole_seconds_are_converted(tmp_path: Path) -> None:
    text = MINIMAL + '[limits]\nmemory_bytes = "64M"\ncpu_time_s = 2\n'
    lang = load_language(write(tmp_path, "t", text))
    assert lang.limits.memory_bytes == 64 * MIB
    assert lang.limits.cpu_time_s == 2.0 and isinstance(lang.limits.cpu_time_s, float)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("id = 900", 'id = "x"'), "id"),
        (("id = 900", "id = 0"), "id"),
        (('name = "Test (1.0)"', ""), "name"),
        (('source_file = "main.t"', 'source_file = "../main.t"'), "source_file"),
        (('run = ["cat", "main.t"]', "run = []"), "run"),
        (('run = ["cat", "main.t"]', 'run = "cat main.t"'), "run"),
        (('run = ["cat", "main.t"]', 'run = ["cat", "{nope}"]'), "run"),
        (('image = "debian"', 'image = "Debian/x"'), "image"),
        (('image = "debian"', 'image = "debian"\nkey = "other"'), "key"),
        (('image = "debian"', 'image = "debian"\nrun_profile = "nope"'), "run_profile"),
        (('image = "debian"', 'image = "debian"\nexecutables = ["a"]'), "executables"),
        (('image = "debian"', 'image = "debian"\nenv = { "A-B" = "1" }'), "env.A-B"),
        (('image = "debian"', 'image = "debian"\ncolour = "red"'), "colour"),
        (('image = "debian"', 'image = "debian"\ntier = "vm"'), "tier"),
        (("[self_test]", "[limits]\npids = 0\n[self_test]"), "limits.pids"),
        (("[self_test]", '[limits]\nmemory_bytes = "lots"\n[self_test]'), "limits.memory_bytes"),
        (("[self_test]", "[compile_limits]\nspeed = 1\n[self_test]"), "compile_limits.speed"),
        (('source = "x"', 'source = ""'), "self_test.source"),
        (('run = ["cat", "main.t"]', 'run = ["cat", "{compiler_options}"]'), "run"),
        (('image = "debian"', 'image = "debian"\nexecutable_source = 1'), "executable_source"),
        (('source = "x"', 'source = "x"\nfiles = { "../run" = "x" }'), "self_test.files.../run"),
        (('source = "x"', 'source = "x"\nfiles = { run = 1 }'), "self_test.files.run"),
        (('expected_stdout = "x"', ""), "self_test.expected_stdout"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    old, new = change
    assert old in MINIMAL
    path = write(tmp_path, "t", MINIMAL.replace(old, new, 1))
    seccomp = tmp_path / "seccomp"
    seccomp.mkdir()
    for name in ("run", "compile"):
        (seccomp / f"{name}.json").write_text("{}")
    with pytest.raises(LanguageError) as err:
        load_language(path, seccomp)
    assert str(err.value).startswith(f"{path}: {field}: "), str(err.value)


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, "t", MINIMAL.replace('image = "debian"', ""))
    with pytest.raises(LanguageError, match=r"t\.toml: image: is required"):
        load_language(path)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "t", "id = = 1")
    with pytest.raises(LanguageError, match=r"t\.toml: "):
        load_language(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    (tmp_path / "languages").mkdir()
    shutil.copytree(DEFAULT_DIRECTORY.parent / "seccomp", tmp_path / "seccomp")
    write(tmp_path / "languages", "a", MINIMAL)
    write(tmp_path / "languages", "b", MINIMAL)
    with pytest.raises(LanguageError, match=r"b\.toml: id: 900 is already used by a\.toml"):
        load_languages(tmp_path / "languages")


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LanguageError, match="no language files"):
        load_languages(tmp_path)


def test_placeholders_follow_the_box_limits() -> None:
    """Each box's argv is filled from that box's own limits: the compile box's from
    [compile_limits], the run box's from the submission's memory limit."""
    java = load_languages()[62]
    rec = Recorder()
    judge = Judge(rec, {62: java})  # type: ignore[arg-type]
    judge.judge(Submission(source_code="class Main {}", language_id=62, memory_limit=200_000))
    compile_box, run_box = rec.specs
    assert f"-J-XX:MaxRAM={java.compile_limits.memory_bytes}" in compile_box.argv
    assert f"-XX:MaxRAM={200_000 * KB}" in run_box.argv
    bigger = java.limits.__class__(memory_bytes=1024 * MIB, pids=200)
    assert expand(("{memory_mib}", "{pids}", "x"), bigger) == ("1024", "200", "x")


def test_the_compile_box_collects_the_box() -> None:
    go = load_languages()[60]
    rec = Recorder()
    Judge(rec, {60: go}, rootfs="image").judge(  # type: ignore[arg-type]
        Submission(source_code="package main", language_id=60)
    )
    spec = rec.specs[0]
    assert spec.collect == ("/box/",)
    assert spec.rootfs == "go" and spec.profile == "compile"
    assert spec.files[0].path == "main.go"
    assert ("CGO_ENABLED", "0") in spec.env


@pytest.mark.parametrize(
    ("key", "name", "compile_words", "run_words"),
    [
        ("java", "Solution.java", ["Solution.java"], ["Solution"]),  # the public class's name
        ("c", "prog.c", ["-o", "main", "prog.c"], ["./main"]),  # executables keep their names
        ("typescript", "src/app.ts", ["src/app.ts"], ["src/app.js"]),  # tsc's output beside it
        ("kotlin", "util.kt", ["util.kt", "main.jar"], ["UtilKt"]),  # Kotlin's file class
        ("groovy", "Foo.groovy", ["Foo.groovy"], ["Foo"]),
        ("python3", "pkg/main.py", [], ["pkg/main.py"]),
        ("sql", "q.sql", [], [".read q.sql"]),  # inside a word, as a word of its own
    ],
)
def test_renamed_argvs_follow_the_programs_name(
    key: str, name: str, compile_words: list[str], run_words: list[str]
) -> None:
    lang = next(x for x in load_languages().values() if x.key == key)
    new = renamed(lang, name)
    assert new.source_file == name
    assert all(w in new.compile for w in compile_words) and lang.source_file not in new.compile
    assert all(w in new.run for w in run_words), new.run
    assert renamed(lang, "") is lang and renamed(lang, lang.source_file) is lang


def test_renamed_inside_shell_lines_only_where_a_word_names_the_file() -> None:
    asm = next(x for x in load_languages().values() if x.key == "assembly")
    line = renamed(asm, "boot.asm").compile[2]
    assert "boot.asm" in line and "main.asm" not in line and "-o main" in line
    erl = next(x for x in load_languages().values() if x.key == "erlang")
    assert "main.erl" not in renamed(erl, "m.erl").run[2]


def test_the_program_is_built_under_its_name_within_asked_compile_limits() -> None:
    langs = load_languages()
    rec = Recorder()
    judge = Judge(rec, langs, rootfs="host")  # type: ignore[arg-type]
    sub = Submission(
        source_code="int main(){}",
        language_id=50,
        source_name="src/prog.c",
        compile_cpu_time_limit=2.5,
        compile_wall_time_limit=99.0,  # above the language's own 20 s: the language's holds
        compile_memory_limit=64 * 1024,
    )
    result = judge.judge(sub)
    compile_box, run_box = rec.specs
    assert [f.path for f in compile_box.files] == [
        "src/prog.c"
    ] and "src/prog.c" in compile_box.argv
    lim = compile_box.limits
    assert (lim.cpu_time_s, lim.wall_time_s, lim.memory_bytes) == (2.5, 20.0, 64 * MIB)
    assert result.compile is not None and result.compile.wall_time == 0.02
    assert result.cases[0].wall_time == 0.02 and run_box.argv == ("./main",)


def test_compiler_options_reach_the_compiler_not_a_shell() -> None:
    """Assembly's compile argv is a `sh -c` line: the options take {compiler_options}'s
    place, sh's "$@" that NASM gets; elsewhere they follow the program name."""
    langs = load_languages()
    for lang_id, source in ((45, "section .text"), (50, "int main(void) {}")):
        rec = Recorder()
        Judge(rec, {lang_id: langs[lang_id]}).judge(  # type: ignore[arg-type]
            Submission(source_code=source, language_id=lang_id, compiler_options="-DX=1 -g")
        )
        argv = rec.specs[0].argv
        if lang_id == 45:
            assert argv[:2] == ("sh", "-c") and '"$@"' in argv[2]
            assert argv[3:] == ("sh", "-DX=1", "-g")
        else:
            assert argv[:3] == ("gcc", "-DX=1", "-g")
    assert with_options(("sh", "-c", "x", "sh", OPTIONS_WORD), []) == ("sh", "-c", "x", "sh")


def test_an_executable_source_is_written_executable_and_byte_for_byte() -> None:
    rec = Recorder()
    elf = b"\x7fELF\x02\x01\x01\x00\xff\xfe"
    sub = Submission(source_code=base64.b64encode(elf).decode(), language_id=44, source_base64=True)
    Judge(rec, {44: load_languages()[44]}).judge(sub)  # type: ignore[arg-type]
    (box,) = rec.specs
    assert box.argv == ("./a.out",)
    assert [(f.path, f.content, f.mode) for f in box.files] == [("a.out", elf, 0o755)]


def test_a_multi_file_program_is_its_zip() -> None:
    multi = load_languages()[89]
    zipped = selftest.zipped((("run", "./main\n"), ("compile", "gcc -o main m.c\n")))
    rec = Recorder()
    Judge(rec, {89: multi}).judge(  # type: ignore[arg-type]
        Submission(language_id=89, additional_files=zipped)
    )
    compile_box, run_box = rec.specs
    assert compile_box.argv == ("/bin/bash", "compile")
    assert sorted(f.path for f in compile_box.files) == ["compile", "run"]
    assert run_box.argv == ("/bin/bash", "run")
    only_run = selftest.zipped((("run", "echo hi\n"),))
    rec = Recorder()
    Judge(rec, {89: multi}).judge(  # type: ignore[arg-type]
        Submission(language_id=89, additional_files=only_run)
    )
    (box,) = rec.specs  # no compile script: no compile box
    assert box.argv == ("/bin/bash", "run")
