#!/bin/sh
# The worker container's entrypoint: make the cgroup tree usable, build layers if asked, run CMD.
set -eu

# cgroup v2 with a private cgroup namespace (docker's default on v2, always so under
# Kubernetes): /sys/fs/cgroup is this container's own cgroup, mounted read-only unless the
# container is privileged. Remount it read-write (needs CAP_SYS_ADMIN and no AppArmor mount
# rule), then move our processes into a leaf: cgroup-v2.rst "No Internal Process Constraint"
# lets a cgroup that holds processes give no controller to its children, and the boxes live
# in children (stockade/<box>). The same dance as docker-in-docker's entrypoint.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  if [ "$(cat /proc/self/cgroup)" != "0::/" ]; then
    # With the host's cgroup namespace the boxes would land at the host's root, outside
    # this container's limits: refuse rather than escape them.
    echo "stockade worker: run the container with a private cgroup namespace" \
      "(compose: cgroup: private; docker run --cgroupns=private)" >&2
    exit 1
  fi
  if awk '$5 == "/sys/fs/cgroup" && $6 ~ /(^|,)ro(,|$)/ {found=1} END {exit !found}' \
      /proc/self/mountinfo; then
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null || mount -o remount,bind,rw /sys/fs/cgroup
  fi
  # Not `[ -s ]`: cgroupfs files have size 0 whatever they hold (found in the v2 lab).
  if [ -n "$(cat /sys/fs/cgroup/cgroup.procs)" ]; then
    mkdir -p /sys/fs/cgroup/init
    # Each write moves one process; one that exited meanwhile fails, which is fine.
    while read -r pid; do
      echo "$pid" > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
    done < /sys/fs/cgroup/cgroup.procs
  fi
fi

# STOCKADE_ROOTFS=image: every language runs in its own layer-store image. Build whatever is
# missing into the /var/lib/stockade volume (a cached layer is never rebuilt, so a restart
# costs nothing); the first start takes minutes and needs a Debian mirror.
if [ "${STOCKADE_ROOTFS:-host}" != host ]; then
  stockade layers build --all
fi

exec "$@"
