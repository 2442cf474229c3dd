"""A submission's custom checker and interactor run in the submission's tier, on the real
runsc: each reports the kernel it sees, and gVisor's is not the host's."""

from __future__ import annotations

import os

import pytest

from sandbox import tiers
from sandbox.launcher import Launcher
from worker.jobs.languages import load_languages
from worker.jobs.model import CheckerSpec, Program, Submission, Verdict
from worker.judge import Judge

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
PYTHON = 71
# Both report what the kernel they run on calls itself: uname(2) and /proc/version.
REPORT = "import os\nKERNEL = os.uname().release + ' | ' + open('/proc/version').read().strip()\n"
CHECKER = REPORT + "import sys\nprint(KERNEL, file=sys.stderr)\nsys.exit(0)\n"  # testlib: AC
# The interactor says "go", then answers WA (testlib's exit 1) with the kernel as its message.
INTERACTOR = (
    REPORT + "import sys\nprint('go', flush=True)\nprint(KERNEL, file=sys.stderr)\nsys.exit(1)\n"
)


@pytest.fixture(scope="module")
def judge(launcher: Launcher) -> Judge:
    reason = tiers.probe("gvisor", launcher.config)
    if reason is not None:
        pytest.skip(f"the gVisor tier cannot run here: {reason}")
    return Judge(launcher, load_languages(), rootfs="host")


def host_kernel() -> str:
    with open("/proc/version") as f:
        return f"{os.uname().release} | {f.read().strip()}"


def test_custom_checker_of_a_gvisor_submission_runs_in_gvisor(judge: Judge) -> None:
    sub = Submission(
        source_code="print(1)",
        language_id=PYTHON,
        tier="gvisor",
        expected_output="1\n",
        checker=CheckerSpec(kind="custom", program=Program(CHECKER, PYTHON)),
    )
    result = judge.judge(sub)
    assert result.verdict is Verdict.AC, result
    seen = result.cases[0].message
    print(f"\nhost: {host_kernel()}\nchecker: {seen}")
    assert " | Linux version " in seen, seen
    assert seen != host_kernel() and not seen.startswith(os.uname().release + " "), seen


def test_interactor_of_a_gvisor_submission_runs_in_gvisor(judge: Judge) -> None:
    sub = Submission(
        source_code="input()\n",
        language_id=PYTHON,
        tier="gvisor",
        interactor=Program(INTERACTOR, PYTHON),
    )
    result = judge.judge(sub)
    assert result.verdict is Verdict.WA, result
    seen = result.cases[0].message
    print(f"\nhost: {host_kernel()}\ninteractor: {seen}")
    assert " | Linux version " in seen, seen
    assert seen != host_kernel() and not seen.startswith(os.uname().release + " "), seen


def test_the_same_checker_in_a_container_sees_the_host_kernel(judge: Judge) -> None:
    """The control: the report is the kernel's own, so the tests above tell tiers apart."""
    sub = Submission(
        source_code="print(1)",
        language_id=PYTHON,
        expected_output="1\n",
        checker=CheckerSpec(kind="custom", program=Program(CHECKER, PYTHON)),
    )
    result = judge.judge(sub)
    assert result.verdict is Verdict.AC, result
    assert result.cases[0].message == host_kernel()
