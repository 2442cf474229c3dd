"""CPU accounting of the gVisor tier, against the container tier for the same work.

The Sentry's own clocks (CLOCK_PROCESS_CPUTIME_ID inside the box) count time a task waits
for a host CPU, so under host load a burner that stops at "1.0 s by its own clock" has done
less work than it thinks. The work here is fixed instead: an iteration count calibrated in
a container box to about 0.4 s of CPU, then run on both tiers. Each tier's figure is the
host kernel's (cpuacct of the box cgroup), which counts only time spent on a CPU.

The issue's "1 s burner within 10%" is the last test: the box's figure against the
host's own for the program's instructions alone (the ptrace stubs), in the same run. What
the comparisons with a container box catch: ptrace stubs (where the program's
instructions run) outside the cgroup would put gVisor's figure near 0, under the
comparison's lower bound; the Sentry's boot counted (0.06 s here) would make a near-empty
program read 0.09 s instead of 0.03 s. The comparison's upper bound is loose because the
Sentry's own work for the program varies with host load (measured: 1.0-1.2 times the
container's figure on this 2-core VM), and so does the container's own figure."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandbox.backends.gvisor.backend import platform_from_env
from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import BoxSpec, FileIn, Limits
from tests.privileged import hostile_util as hu
from tests.privileged.test_tier_gvisor import gvisor_usable, nothing_left

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
__all__ = ["gvisor_usable", "nothing_left"]

# xorshift64, a chain of dependent operations with no syscall or memory traffic: its cost
# per iteration is the same in a container and in a ptrace stub. `threads` splits the
# work across pthreads (each does n / threads iterations); a third argument makes it sleep
# that many milliseconds after the work.
WORK_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static unsigned long per_thread;
static void *work(void *out) {
    unsigned long x = 88172645463325252UL;
    for (unsigned long i = 0; i < per_thread; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    }
    *(unsigned long *)out = x;
    return NULL;
}
int main(int argc, char **argv) {
    unsigned long n = strtoul(argv[1], NULL, 10), sum = 0;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t t[16];
    unsigned long out[16];
    per_thread = n / threads;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, work, &out[i]);
    for (int i = 0; i < threads; i++) { pthread_join(t[i], NULL); sum ^= out[i]; }
    printf("%lu\n", sum);
    fflush(stdout);
    if (argc > 3) {  /* then idle, so that the host can read the stubs' final CPU time */
        long ms = atol(argv[3]);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}
"""
CALIBRATION_ITERATIONS = 100_000_000
TARGET_S = 0.4
PAIRS = 5
LIMITS = Limits(cpu_time_s=5.0, wall_time_s=20.0)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the CPU burner cannot be built")
    d = tmp_path_factory.mktemp("gvisor-cpu")
    (d / "work.c").write_text(WORK_C)
    cmd = [gcc, "-O2", "-pthread", "-o", str(d / "work"), str(d / "work.c")]
    subprocess.run(cmd, check=True, capture_output=True)
    return (d / "work").read_bytes()


def run_work(
    launcher: Launcher, work: bytes, tier: str, n: int, threads: int = 1, sleep_ms: int = 0
) -> BoxResult:
    argv = ("/box/work", str(n), str(threads)) + ((str(sleep_ms),) if sleep_ms else ())
    spec = BoxSpec(
        argv=argv,
        files=(FileIn("work", work, 0o755),),
        limits=LIMITS,
        tier=tier,
    )
    r = launcher.run(spec)
    assert r.status is Status.OK and r.stdout.strip().isdigit(), hu.describe(r)
    return r


@pytest.fixture(scope="module")
def iterations(launcher: Launcher, work: bytes) -> int:
    """How many iterations take about TARGET_S of CPU here, measured in a container box."""
    r = run_work(launcher, work, "container", CALIBRATION_ITERATIONS)
    assert r.time > 0.02, hu.describe(r)
    return int(CALIBRATION_ITERATIONS * TARGET_S / r.time)


@pytest.mark.parametrize("threads", [1, 2])
def test_fixed_work_costs_the_same_cpu_on_both_tiers(
    launcher: Launcher, work: bytes, iterations: int, threads: int
) -> None:
    """Container and gVisor boxes alternate, PAIRS of each, and their medians are compared:
    the same work costs a single box 10-15% more or less from one run to the next on this
    shared VM, in either tier. gVisor may cost up to 30% more: the Sentry's work for the
    program (the ptrace platform stops the stub on every timer tick and signal, and the
    Sentry's Go runtime spins for work when the host is busy) is the box's by design. Under
    10% less would mean CPU of the program that the cgroup did not see."""
    container: list[float] = []
    gvisor: list[float] = []
    for _ in range(PAIRS):
        container.append(run_work(launcher, work, "container", iterations, threads).time)
        gvisor.append(run_work(launcher, work, "gvisor", iterations, threads).time)
    c, g = statistics.median(container), statistics.median(gvisor)
    figures = f"container {container}, gVisor {gvisor}: medians {c:.3f} and {g:.3f} s"
    assert 0.7 * TARGET_S <= c <= 1.4 * TARGET_S, figures
    # Two threads on this 2-core host leave the Sentry no idle core: its own work for the
    # box then grows (measured 1.30x in a make test run), and it is the box's CPU by design.
    # The container's own two-thread figures spread 0.38-0.57 s in one make test run (its
    # median 0.49 against gVisor's 0.44): the lower bound there only catches stubs outside
    # the cgroup, which would read near 0.
    low, high = (0.90, 1.30) if threads == 1 else (0.60, 1.50)
    assert low * c <= g <= high * c, figures


def test_the_sentrys_boot_is_not_counted(launcher: Launcher, work: bytes) -> None:
    """A program with almost no work costs about 0.03 s here (runsc starting it). Booting
    the Sentry and the gofer before that (0.06 s) is not the program's: counted, this box
    read 0.089 s in a trial with the baseline taken away."""
    r = run_work(launcher, work, "gvisor", 1000)
    assert r.time < 0.06, hu.describe(r)


def _stub_cpu_s(cgroup_dirs: list[str]) -> dict[int, float]:
    """Seconds on a CPU (schedstat, ns) of each ptrace stub in the box cgroup: the processes
    the Sentry traces (TracerPid), in which the program's own instructions run."""
    found: dict[int, float] = {}
    for d in cgroup_dirs:
        try:
            pids = [int(p) for p in Path(d, "cgroup.procs").read_text().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                tracer = int(status.split("TracerPid:", 1)[1].split()[0])
                if not tracer:
                    continue
                tasks = os.listdir(f"/proc/{pid}/task")
                ns = sum(
                    int(Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()[0])
                    for t in tasks
                )
            except (OSError, IndexError, ValueError):
                continue
            found[pid] = ns / 1e9
    return found


def test_a_1s_burner_is_reported_within_10_percent_of_its_own_cpu(
    launcher: Launcher, work: bytes, iterations: int
) -> None:
    """The issue's bound, in one run, so no run-to-run noise of this shared VM: a burner of
    about 1 s (fixed work, calibrated in a container box), which then sleeps 0.5 s. While
    it sleeps, the host's own figure for the program's instructions (the ptrace stubs'
    time on a CPU, read from schedstat) is final; the box's reported CPU time (the whole
    cgroup: stubs, Sentry, gofer, from the program's start) must be within 10% of it. Five
    runs read 1.03-1.05 (the Sentry's own work for a program that makes no syscall, and
    its start of the program), while the same work's absolute figure spread 0.87-1.17 s."""
    if platform_from_env() != "ptrace":
        pytest.skip("the program's stubs are found by TracerPid: ptrace platform only")
    pattern = re.compile(rf"^gvisor-{os.getpid()}-\d+$")
    n = int(iterations / TARGET_S)  # iterations is TARGET_S of work; this is 1 s of it
    stubs: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            # The launcher's own stockade/ nodes: under systemd on cgroup2 they are inside
            # the worker's delegated unit, not at the hierarchy's root.
            dirs = [
                os.path.join(parent, name)
                for parent in launcher.cgroups.parents()
                if os.path.isdir(parent)
                for name in os.listdir(parent)
                if pattern.match(name)
            ]
            for pid, cpu in _stub_cpu_s(dirs).items():
                stubs[pid] = max(stubs.get(pid, 0.0), cpu)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = run_work(launcher, work, "gvisor", n, 1, sleep_ms=500)
    finally:
        done.set()
        sampler.join()
    assert stubs, "no ptrace stub was ever seen in the box cgroup"
    program = sum(stubs.values())
    figures = f"reported {r.time:.3f} s, the stubs' own {program:.3f} s ({stubs})"
    assert 0.6 <= program <= 1.6, figures  # about the 1 s of work, whatever the host's mood
    assert 0.9 * program <= r.time <= 1.1 * program, figures
