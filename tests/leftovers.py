"""After the suite: no mount, cgroup, process, veth or nft table of a box may be left behind."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.cgroups import parse_mountinfo

SLOT_UIDS = range(60000, 60000 + 1024)


def stray_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if "stockade" in line]


def stray_cgroups() -> list[str]:
    """Box cgroups under any stockade/ node of any cgroup mount: at a hierarchy's root (v1, or
    v2 without systemd) or inside a systemd unit's delegated subtree (v2 under systemd)."""
    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    found: list[str] = []
    for point in sorted({m.mount_point for m in mounts}):
        for top, dirs, _ in os.walk(point):
            if os.path.basename(top) == "stockade":
                found += [os.path.join(top, d) for d in dirs]
                dirs.clear()
    return sorted(set(found))


def stray_processes() -> list[str]:
    found: list[str] = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            st = os.stat(f"/proc/{pid}")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if st.st_uid in SLOT_UIDS:
            found.append(f"pid {pid} uid {st.st_uid} {comm}")
    return found


def stray_links() -> list[str]:
    try:
        out = subprocess.run(
            ["ip", "-o", "link"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return []
    return [line for line in out.splitlines() if ": sbx" in line]


def main() -> int:
    problems = {
        "mounts": stray_mounts(),
        "cgroups": stray_cgroups(),
        "processes": stray_processes(),
        "links": stray_links(),
    }
    bad = {k: v for k, v in problems.items() if v}
    for kind, items in bad.items():
        print(f"leftover {kind}:", *items[:10], sep="\n  ")
    if not bad:
        print("leftovers: none (mounts, cgroups, processes, veth links)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
