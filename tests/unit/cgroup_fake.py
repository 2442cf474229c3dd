"""A fake cgroupfs in a temp dir: mkdir makes interface files, rmdir refuses busy groups."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

# One mountinfo as on the development VM (v1 with separate cpu and cpuacct, a cgroup2 tree
# without memory/pids); {root} is replaced by the fake tree's mount base.
V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2_MOUNTINFO = """\
25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""

V1_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "cgroup.procs": "",
        "memory.limit_in_bytes": "9223372036854771712\n",
        "memory.memsw.limit_in_bytes": "9223372036854771712\n",
        "memory.max_usage_in_bytes": "0\n",
        "memory.memsw.max_usage_in_bytes": "0\n",
        "memory.swappiness": "60\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "pids": {"cgroup.procs": "", "pids.max": "max\n"},
    "cpuacct": {"cgroup.procs": "", "cpuacct.usage": "0\n"},
    "cpu": {"cgroup.procs": "", "cpu.shares": "1024\n"},
    "freezer": {"cgroup.procs": "", "freezer.state": "THAWED\n"},
}
V2_FILES: dict[str, str] = {
    "cgroup.procs": "",
    "cgroup.controllers": "cpu memory pids\n",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "memory.max": "max\n",
    "memory.swap.max": "max\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "pids.max": "max\n",
}


class FakeKernel:
    """Stands in for CgroupOps: a new directory gets its hierarchy's interface files, rmdir
    fails with EBUSY while cgroup.procs lists a pid, and kill() records the signal and takes
    the pid out of every cgroup.procs (the task "exits")."""

    def __init__(self, files_by_root: dict[Path, dict[str, str]]) -> None:
        self.files_by_root = files_by_root
        self.killed: list[tuple[int, int]] = []
        self.immortal = False  # kill() records but the task survives
        self.rmdirs: list[str] = []

    def populate(self, path: Path) -> None:
        for root, files in self.files_by_root.items():
            if path == root or root in path.parents:
                for name, text in files.items():
                    (path / name).write_text(text)
                return
        raise AssertionError(f"{path} is in no fake hierarchy")

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        self.populate(Path(path))

    def rmdir(self, path: str) -> None:
        self.rmdirs.append(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if Path(path, "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        shutil.rmtree(path)

    def kill(self, pid: int, sig: int) -> None:
        self.killed.append((pid, sig))
        if self.immortal:
            return
        for root in self.files_by_root:
            for procs in root.rglob("cgroup.procs"):
                pids = procs.read_text().split()
                if str(pid) in pids:
                    procs.write_text("".join(f"{p}\n" for p in pids if p != str(pid)))


def v1_tree(tmp_path: Path, memsw: bool = True) -> tuple[FakeKernel, Path, Path]:
    """Fake v1 hierarchies under tmp_path/sys/fs/cgroup; returns kernel, root, mountinfo."""
    roots: dict[Path, dict[str, str]] = {}
    for ctl, files in V1_FILES.items():
        root = tmp_path / "sys/fs/cgroup" / ctl
        root.mkdir(parents=True)
        chosen = {k: v for k, v in files.items() if memsw or ".memsw." not in k}
        roots[root] = chosen
    kernel = FakeKernel(roots)
    for root in roots:
        kernel.populate(root)
    unified = tmp_path / "sys/fs/cgroup/unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(V1_MOUNTINFO)
    return kernel, tmp_path, mountinfo


def v2_tree(tmp_path: Path, drop: tuple[str, ...] = ()) -> tuple[FakeKernel, Path, Path]:
    """Fake cgroup2 hierarchy at tmp_path/sys/fs/cgroup, without the files named in drop."""
    root = tmp_path / "sys/fs/cgroup"
    root.mkdir(parents=True)
    kernel = FakeKernel({root: {k: v for k, v in V2_FILES.items() if k not in drop}})
    kernel.populate(root)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(V2_MOUNTINFO)
    return kernel, tmp_path, mountinfo


def cgroup_dirs(root: Path) -> list[Path]:
    """Every directory under a stockade/ node of the fake tree."""
    return sorted(p for p in root.rglob("stockade/*") if p.is_dir())
