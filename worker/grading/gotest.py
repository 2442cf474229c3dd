"""go tests: the package's test binary built once per submission (`go test -c`) with a reporter
test of the grader's, each test then run in a box of its own.

A Go package's init functions, the student's among them, run before any code of the
grader's, so nothing in the box can be hidden from them, and they can print `--- PASS` lines
and exit 0 before a test runs. The reporter closes that: its name is random per build (the
student's code cannot call it), it runs after the wanted test (-test.run selects both, and
its file sorts last), and it answers a challenge the host sends on stdin with an HMAC under a
key compiled into the binary. A pass needs exit status 0, the wanted test's PASS line and
the right answer, which only a binary that ran the test to the end can print. What remains is
code that reads the key out of its own executable: see docs/grading.md."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace

from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn, Limits
from worker.jobs.languages import Language

BINARY = "stockade-gotest.bin"
DEFAULT_MOD = b"module submission\n\ngo 1.19\n"
MARK = "STOCKADE-GRADER-REPORT "
_PACKAGE = re.compile(rb"^package\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)

_REPORTER = """package {package}

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Stockade's reporter: it runs after the test the host asked for, and proves it did.
func {name}(t *testing.T) {{
	challenge, _ := bufio.NewReader(os.Stdin).ReadString('\\n')
	mac := hmac.New(sha256.New, []byte("{key}"))
	mac.Write([]byte(strings.TrimSpace(challenge)))
	fmt.Printf("\\n{mark}%s\\n", hex.EncodeToString(mac.Sum(nil)))
}}
"""


@dataclass(frozen=True)
class Reporter:
    """One build's reporter test: its random name, key and file."""

    name: str
    key: str
    file: FileIn


def reporter(files: dict[str, bytes]) -> Reporter | str:
    """The reporter for the package these files make, or why there is none."""
    package = _package(files)
    if package is None:
        return "no Go package: no .go file with a package clause"
    name = f"TestZZStockade{secrets.token_hex(8)}"
    key = secrets.token_hex(32)
    text = _REPORTER.format(package=package, name=name, key=key, mark=MARK)
    # zz: its test comes after every other in the binary's list, so it runs last.
    path = f"zz_stockade_{secrets.token_hex(4)}_test.go"
    return Reporter(name, key, FileIn(path, text.encode()))


def _package(files: dict[str, bytes]) -> str | None:
    """The package of the directory's Go files (a test file's _test package never counts)."""
    for path in sorted(files):
        if "/" in path or not path.endswith(".go"):
            continue
        match = _PACKAGE.search(files[path])
        if match and not match.group(1).decode().endswith("_test"):
            return match.group(1).decode()
    return None


def compile_spec(lang: Language, files: dict[str, bytes], extra: FileIn, rootfs: str) -> BoxSpec:
    """`go test -c` over the submission, the instructor's files and the reporter (a go.mod is
    made when none comes); nothing is fetched: the box has no network."""
    tree = dict(files)
    tree.setdefault("go.mod", DEFAULT_MOD)
    return BoxSpec(
        argv=("go", "test", "-c", "-o", BINARY, "."),
        files=(*(FileIn(p, c) for p, c in sorted(tree.items())), extra),
        env=(*lang.env, ("GOFLAGS", "-mod=mod -buildvcs=false")),
        limits=lang.compile_limits,
        rootfs=rootfs,
        profile=lang.compile_profile,
        tier=lang.tier,
        collect=(BINARY,),
    )


def run_argv(target: str, reporter_name: str) -> tuple[str, ...]:
    """The wanted test and the reporter; -test.run takes one pattern per subtest level."""
    first, _, rest = target.partition("/")
    levels = [f"^({re.escape(first)}|{reporter_name})$"]
    levels += [f"^{re.escape(part)}$" for part in rest.split("/")] if rest else []
    return (
        f"./{BINARY}",
        "-test.run",
        "/".join(levels),
        "-test.v",
        "-test.count=1",
        "-test.paniconexit0",
    )


def challenge() -> str:
    return secrets.token_hex(16)


def judge(r: BoxResult, target: str, rep: Reporter, sent: str) -> tuple[bool, str, str]:
    """(passed, why not, output without the report line)."""
    text = r.stdout.decode("utf-8", "replace")
    lines = text.splitlines()
    answers = [line[len(MARK) :].strip() for line in lines if line.startswith(MARK)]
    # The reporter's own lines are the grader's business, not feedback.
    kept = [line for line in lines if not line.startswith(MARK) and rep.name not in line]
    output = "\n".join(kept).strip("\n")
    want = hmac.new(rep.key.encode(), sent.encode(), hashlib.sha256).hexdigest()
    if r.status is not Status.OK:
        return False, f"the test binary ended: {r.message}", output
    if answers != [want]:
        return False, "the tests did not run to the end (no report from the grader)", output
    passes = {line.strip().split(" (", 1)[0] for line in lines}
    if any(line.strip().startswith("--- FAIL") for line in lines):
        return False, "a test failed", output
    if f"--- PASS: {target}" not in passes:
        return False, f"no test named {target!r} passed", output
    return True, "", output


def limits_for(lang: Language, limits: Limits) -> Limits:
    """The Go runtime's threads count against pids: never fewer than the language's."""
    return replace(limits, pids=max(limits.pids, lang.limits.pids))
