"""Memory per extra box: N concurrent Python boxes on one image, beyond the programs' own RSS.

Layers are plain directories under overlayfs, so every box's python3 maps the same page
cache pages. What a box adds on top of its program is its init, its namespaces, cgroups
and scratch tmpfs. Measured as the rise of the machine's used memory while N boxes sleep,
less the programs' own anonymous memory (Pss_Anon), divided by N: the image's file pages are
page cache, resident once for all boxes.
Run as root: .venv/bin/python bench/sharing.py [--boxes 20] [--json]."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox.launcher import Launcher
from sandbox.result import BoxResult
from sandbox.spec import MIB, BoxSpec, Limits

BREAKDOWN = ("AnonPages", "Shmem", "Slab", "KernelStack", "PageTables", "Percpu")


def meminfo() -> dict[str, int]:
    info: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":")
            info[key] = int(value.split()[0])
    info["Used"] = info["MemTotal"] - info["MemAvailable"]
    return info


def pss_kib(marker: str, field: str = "Pss:") -> tuple[int, int]:
    """Sum of a smaps_rollup field over the processes whose command line holds the marker."""
    total, count = 0, 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
                        count += 1
        except OSError:
            continue
    return total, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--image", default="python3")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    marker = f"stockade-sharing-{os.getpid()}"
    code = f"import time; time.sleep(6)  # {marker}"
    with Launcher() as lau:
        if args.image not in lau.container.templates.names():
            print(f"image {args.image!r} not built: stockade layers build {args.image}")
            return 2
        spec = BoxSpec(
            argv=("/usr/bin/python3", "-c", code),
            rootfs=args.image,
            limits=Limits(wall_time_s=20, memory_bytes=64 * MIB),
        )
        lau.run(BoxSpec(argv=("/usr/bin/python3", "-c", "pass"), rootfs=args.image))
        lau.container.warm.wait_full()
        lau.settle()
        time.sleep(1)
        before = meminfo()
        results: list[BoxResult] = []
        threads = [
            threading.Thread(target=lambda: results.append(lau.run(spec)))
            for _ in range(args.boxes)
        ]
        for t in threads:
            t.start()
        time.sleep(3.5)  # all started and asleep
        during = meminfo()
        pss, seen = pss_kib(marker)
        # What a program adds to the machine is its anonymous memory: the image's file pages
        # are page cache, already resident before the boxes start (the warm-up run read them).
        anon, _ = pss_kib(marker, "Pss_Anon:")
        init_pss, inits = pss_kib("stockade-init")
        for t in threads:
            t.join()
    rise = during["Used"] - before["Used"]
    # Counted two ways: from MemAvailable (an estimate the kernel makes), and directly as the
    # rise of anonymous, tmpfs and kernel memory (slab, stacks, page tables, per-cpu).
    direct = sum(during[k] - before[k] for k in BREAKDOWN)
    per_box = (direct - anon) / max(seen, 1)
    figures = {
        "boxes": args.boxes,
        "programs_seen": seen,
        "used_rise_mib": round(rise / 1024, 2),
        "programs_pss_mib": round(pss / 1024, 2),
        "program_pss_each_mib": round(pss / max(seen, 1) / 1024, 2),
        "program_anon_each_mib": round(anon / max(seen, 1) / 1024, 2),
        "overhead_per_box_mib": round(per_box / 1024, 2),
        "overhead_per_box_from_memavailable_mib": round((rise - anon) / max(seen, 1) / 1024, 2),
        "of_which_init_pss_mib": round(init_pss / max(inits, 1) / 1024, 2),
        "target_mib": 3.0,
        "rise_per_box_kib": {k: round((during[k] - before[k]) / args.boxes) for k in BREAKDOWN},
        "statuses": sorted({r.status.value for r in results}),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:24s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
