#!/bin/sh
# The lab guest's job runner: `plain` as PID 1 (no systemd), `job` from v2lab-job.service.
# Runs /scratch/job/cmd.sh with its output on the virtio port the host prints, leaves the
# exit status in /scratch/job/rc, then reboots, which ends QEMU (-no-reboot).
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ "$1" = plain ]; then
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mount -t devtmpfs dev /dev
  mkdir -p /dev/pts /dev/shm
  mount -t devpts devpts /dev/pts
  mount -t tmpfs -o mode=1777 shm /dev/shm
  mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
  mount -t tmpfs -o mode=0755 run /run
  # No tmpfs on /tmp: the root's writable layer is guest memory already, and a tmpfs there
  # would hide a checkout shared from under the host's /tmp.
  hostname v2lab
  ip link set lo up
fi
exec >/dev/vport0p1 2>&1
# Swap on the scratch disk, so memory.swap.max is exercised as on a host with swap.
if [ ! -f /scratch/swap ]; then
  fallocate -l 512M /scratch/swap && chmod 0600 /scratch/swap && mkswap -q /scratch/swap >/dev/null
fi
swapon /scratch/swap 2>/dev/null || echo "v2lab: no swap on the scratch disk"
mkdir -p /scratch/tmp
sh /scratch/job/cmd.sh < /dev/null
rc=$?
echo "$rc" > /scratch/job/rc
swapoff /scratch/swap 2>/dev/null
sync
sleep 1
echo b > /proc/sysrq-trigger
