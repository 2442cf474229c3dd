#!/bin/sh
# `make test-v2`, inside the lab under systemd: the tests whose outcome depends on the cgroup
# version, on the guest kernel's cgroup2, then the leftovers check.
set -u
echo "v2lab: kernel $(uname -r), PID 1 $(cat /proc/1/comm)"
echo "v2lab: /proc/self/cgroup: $(cat /proc/self/cgroup)"
echo "v2lab: /sys/fs/cgroup/cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "v2lab: swap: $(tail -n +2 /proc/swaps | awk '{print $1, $3 " KiB"}')"
# Deselected here, kept in the v1 run (make test, native speed): bounds calibrated for a
# native CPU that TCG's ~14x slower exec and interpreter start-up break whatever the cgroup
# version (5% over 1 s of work, a dynamic sleeper's 0.1 s of CPU, Python programs under a
# 1 s CPU limit). The properties themselves are asserted here on the guest's cgroup2 by
# tests/v2lab/test_accounting_v2.py, with a static C program that measures itself: CPU of
# every thread within 5% of its own clock, peak memory within 10% of what it touched, the
# wall kill within v1's 0.2 s, a memory bomb with swap on -> MLE with nothing swapped. Still
# left to v1 alone: the tmpfs, SysV shm, stderr flood, sleep, daemon and rlimit tests (Python
# programs; what they prove is about mounts, IPC and rlimits, not the cgroup version) and
# the gVisor tier's CPU ratios (test_tier_gvisor_cpu.py; test_in_guest.py holds their lower
# half here: under TCG the Sentry's share is not a native one).
skip_timing() {
  for t in \
    tests/privileged/test_accounting.py::test_one_second_of_cpu_reports_within_5_percent \
    tests/privileged/test_accounting.py::test_two_threads_of_half_a_second_report_one_second \
    tests/privileged/test_accounting.py::test_wall_time_kill_lands_within_0_2_s \
    "tests/privileged/test_hostile_limits.py::test_memory_bomb[python-bytearray]" \
    tests/privileged/test_hostile_limits.py::test_tmpfs_bomb \
    tests/privileged/test_hostile_limits.py::test_sysv_shm_left_behind_is_freed \
    tests/privileged/test_hostile_limits.py::test_sleep_hits_wall_clock \
    tests/privileged/test_hostile_limits.py::test_stderr_flood \
    tests/privileged/test_hostile_limits.py::test_double_fork_daemon \
    tests/privileged/test_hostile_limits.py::test_python_daemon_that_keeps_forking \
    tests/privileged/test_hostile_limits.py::test_rlimits_cannot_be_raised; do
    printf -- '--deselect\n%s\n' "$t"
  done
}
rc=0
# shellcheck disable=SC2046 # one argument per line of skip_timing, none with spaces
IFS='
' 
set -- $(skip_timing) "$@"
unset IFS
.venv/bin/python -m pytest -q -rfEs --durations=10 --basetemp=/scratch/pt \
  tests/v2lab/test_in_guest.py \
  tests/v2lab/test_accounting_v2.py \
  tests/v2lab/test_worker_scope.py \
  tests/privileged/test_cgroups_v2.py \
  tests/privileged/test_cgroups_sweep.py \
  tests/privileged/test_accounting.py \
  tests/privileged/test_hostile_limits.py \
  "$@" || rc=$?
# Last and apart: stopping the worker's unit removes /run/stockade (its RuntimeDirectory).
.venv/bin/python -m pytest -q -rfEs --basetemp=/scratch/pt-unit tests/v2lab/test_worker_unit.py \
  || { [ "$rc" -ne 0 ] || rc=1; }
.venv/bin/python -m tests.leftovers || { [ "$rc" -ne 0 ] || rc=1; }
echo "v2lab: box cgroups after the suite: $(find /sys/fs/cgroup -type d -path '*/stockade/*' | wc -l)"
exit "$rc"
