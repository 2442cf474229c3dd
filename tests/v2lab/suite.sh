#!/bin/sh
# `make test-v2`, inside the lab under systemd: the tests whose outcome depends on the cgroup
# version, on the guest kernel's cgroup2, then the leftovers check.
set -u
echo "v2lab: kernel $(uname -r), PID 1 $(cat /proc/1/comm)"
echo "v2lab: /proc/self/cgroup: $(cat /proc/self/cgroup)"
echo "v2lab: /sys/fs/cgroup/cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "v2lab: swap: $(tail -n +2 /proc/swaps | awk '{print $1, $3 " KiB"}')"
rc=0
.venv/bin/python -m pytest -q -rs --basetemp=/scratch/pt \
  tests/v2lab/test_in_guest.py \
  tests/privileged/test_cgroups_v2.py \
  tests/privileged/test_cgroups_sweep.py \
  tests/privileged/test_accounting.py \
  tests/privileged/test_hostile_limits.py \
  tests/privileged/test_tier_gvisor_cpu.py \
  "$@" || rc=$?
.venv/bin/python -m tests.leftovers || { [ "$rc" -ne 0 ] || rc=1; }
echo "v2lab: box cgroups after the suite: $(find /sys/fs/cgroup -type d -path '*/stockade/*' | wc -l)"
exit "$rc"
