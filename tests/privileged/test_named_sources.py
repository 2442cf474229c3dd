"""A program under its own file name (Piston's files[].name: the submission's source_name) in
real boxes: each toolchain that names its output after the source follows the new name."""

from __future__ import annotations

import pytest

from sandbox.launcher import Launcher
from worker.jobs.languages import load_languages
from worker.jobs.model import Submission, Verdict
from worker.judge import Judge

pytestmark = pytest.mark.privileged

KEYS = {lang.key: lang.id for lang in load_languages().values()}
# (language key, the program's name, its source): every one prints "ok" and reads its args.
CASES = [
    ("java", "Solution.java", 'public class Solution { public static void main(String[] a) '
     '{ System.out.println("ok" + a.length); } }'),
    ("typescript", "src/app.ts", 'declare const process: any;\n'
     'console.log("ok" + (process.argv.length - 2));'),
    ("groovy", "Hello.groovy", 'println("ok" + args.length)'),
    ("kotlin", "util.kt", 'fun main(args: Array<String>) { println("ok" + args.size) }'),
    ("c", "src/prog.c", '#include <stdio.h>\nint main(int c, char **v){printf("ok%d\\n", c - 1);}'),
    ("python3", "pkg/run.py", 'import sys\nprint("ok%d" % (len(sys.argv) - 1))'),
    ("assembly", "hello.asm", "global _start\nsection .data\nm db 'ok1', 10\nsection .text\n"
     "_start: mov rax, 1\nmov rdi, 1\nmov rsi, m\nmov rdx, 4\nsyscall\n"
     "mov rax, 60\nxor rdi, rdi\nsyscall\n"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "name", "source"), CASES, ids=[c[0] for c in CASES])
def test_program_runs_under_its_own_name(
    launcher: Launcher, key: str, name: str, source: str
) -> None:
    judge = Judge(launcher, load_languages(), rootfs="host")
    sub = Submission(
        source_code=source,
        language_id=KEYS[key],
        source_name=name,
        command_line_arguments="x",
        expected_output="ok1\n",
    )
    result = judge.judge(sub)
    assert result.verdict is Verdict.AC, (result.compile_output, result.cases)
    assert result.cases[0].wall_time > 0
    if result.compile is not None:
        assert result.compile.time > 0 and result.compile.memory > 0


def test_a_tighter_compile_limit_holds(launcher: Launcher) -> None:
    """The compile box gets the CPU limit asked for: g++ on <iostream> needs far more than
    20 ms, and is stopped (a compilation error naming the limit), where its own limit builds it."""
    judge = Judge(launcher, load_languages(), rootfs="host")
    source = "#include <iostream>\nint main(){std::cout<<1;}\n"
    assert judge.judge(Submission(source_code=source, language_id=54)).verdict is Verdict.AC
    sub = Submission(source_code=source, language_id=54, compile_cpu_time_limit=0.02)
    result = judge.judge(sub)
    assert result.verdict is Verdict.CE and result.compile is not None
    assert result.compile.time < 0.5 and result.compile.status == "TO", result.compile
