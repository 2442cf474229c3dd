#!/bin/sh
# The lab guest's /init (busybox): layers + tmpfs upper as the root, the host's read-only
# shares at their host paths, the scratch disk at /scratch; then systemd or the job runner.
export PATH=/bin
busybox mount -t proc proc /proc
busybox --install -s /bin  # it finds itself through /proc/self/exe
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do insmod "/lib/$m.ko" || echo "v2lab init: insmod $m failed"; done < /lib/modules.order

die() { echo "v2lab init: $*"; echo b > /proc/sysrq-trigger; sleep 9; }
disk() {  # the /dev node of the virtio disk whose serial is $1
  for s in /sys/block/vd*/serial; do
    [ "$(cat "$s")" = "$1" ] && { d=${s%/serial}; echo "/dev/${d##*/}"; return; }
  done
}
arg() { for a in $(cat /proc/cmdline); do case $a in "$1"=*) echo "${a#*=}";; esac; done; }

layers=$(arg v2lab.layers)
lower=""
i=0
while [ "$i" -lt "$layers" ]; do
  dev=$(disk "L$i")
  [ -n "$dev" ] || die "no disk for layer $i"
  mkdir -p "/rw/L$i"
  mount -t erofs -o ro "$dev" "/rw/L$i" || die "mount layer $i"
  lower="$lower${lower:+:}/rw/L$i"
  i=$((i + 1))
done
# The root's writable layer is guest memory: nothing the guest writes there reaches the host.
mkdir -p /rw/t && mount -t tmpfs -o mode=0755 upper /rw/t || die "tmpfs upper"
mkdir -p /rw/t/upper /rw/t/work
mount -t overlay -o "lowerdir=$lower,upperdir=/rw/t/upper,workdir=/rw/t/work" root /newroot \
  || die "overlay root"
mkdir -p /newroot/scratch
mount -t ext4 "$(disk scratch)" /newroot/scratch || die "scratch disk"
# Each share: a 9p tag and the host path it is mounted at, read-only (QEMU refuses writes too).
# The share's root keeps its host mode, 0700 for a clone under mktemp -d, which the API's
# dynamic user could not enter: an empty 0755 top layer over it (a read-only overlay) gives
# the root that mode, as a checkout installed under /opt has; every file is the share's.
n=0
while read -r tag path; do
  n=$((n + 1))
  mkdir -p "/rw/s$n" "/rw/t/top$n" "/newroot$path"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose "$tag" "/rw/s$n" \
    || die "9p share $tag"
  chmod 0755 "/rw/t/top$n"
  mount -t overlay -o "lowerdir=/rw/t/top$n:/rw/s$n" "share$n" "/newroot$path" \
    || die "overlay over share $tag"
done < /newroot/scratch/job/shares
cp /newroot/scratch/job/guest.sh /newroot/usr/local/sbin/v2lab-guest
chmod 0755 /newroot/usr/local/sbin/v2lab-guest
mode=$(arg v2lab.mode)
umount /proc /sys /dev
if [ "$mode" = systemd ]; then
  mkdir -p /newroot/etc/systemd/system/multi-user.target.wants
  cp /newroot/scratch/job/v2lab-job.service /newroot/etc/systemd/system/
  ln -s ../v2lab-job.service /newroot/etc/systemd/system/multi-user.target.wants/
  ln -s /dev/null /newroot/etc/systemd/system/serial-getty@ttyS0.service
  exec switch_root /newroot /lib/systemd/systemd
fi
exec switch_root /newroot /usr/local/sbin/v2lab-guest plain
