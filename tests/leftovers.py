"""After the suite: no mount, cgroup, process, veth or nft table of a box may be left behind."""

from __future__ import annotations

import os
import subprocess
import sys

SLOT_UIDS = range(60000, 60000 + 1024)


def stray_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if "stockade" in line]


def stray_cgroups() -> list[str]:
    found: list[str] = []
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(root):
            continue
        for ctl in os.listdir(root):
            base = os.path.join(root, ctl, "stockade")
            if root.endswith("unified"):
                base = os.path.join(root, "stockade")
            if os.path.isdir(base):
                found += [
                    os.path.join(base, d)
                    for d in os.listdir(base)
                    if os.path.isdir(os.path.join(base, d))
                ]
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
