"""The pure plans behind a box's root: template, init layer, scratch layer, /proc, rlimits."""

from __future__ import annotations

import dataclasses
import math
import resource
from pathlib import Path

import pytest

from sandbox import mounts as m
from sandbox import rlimits, rootfs
from sandbox import syscalls as sc
from sandbox.spec import MIB, Limits

USER = rootfs.BoxUser(60007, 60007)
ISSUE_HOST_PATHS = {"/usr", "/bin", "/lib", "/lib64", "/etc/alternatives"}
# Beyond the issue's list, documented exceptions: toolchains' files that live in /etc or /var
# (the JDK's conf, Mono's, R's and GnuCOBOL's configuration, GHC's package database).
HOST_PATHS = ISSUE_HOST_PATHS | {
    "/etc/java-17-openjdk", "/etc/mono", "/etc/R", "/etc/gnucobol", "/var/lib/ghc",
}  # fmt: skip
DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
# What a host has that a box must never see.
FORBIDDEN = ("home", "root", "var", "srv", "opt", "mnt", "boot", "sbin", "etc/shadow", "work")


def fake_host(root: Path, merged_usr: bool) -> Path:
    for d in ("usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "etc/alternatives", *FORBIDDEN):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/ld.so.cache").write_bytes(b"cache")
    (root / "etc/shadow").rmdir()
    (root / "etc/shadow").write_text("root:$6$secret:::\n")
    for name in ("bin", "lib", "lib64"):
        if merged_usr:
            (root / name).symlink_to(f"usr/{name}")
        else:
            (root / name).mkdir()
    return root


def binds(ops: list[m.Op]) -> list[m.Bind]:
    return [op for op in ops if isinstance(op, m.Bind)]


def test_host_paths_are_the_issues_list() -> None:
    assert set(rootfs.HOST_PATHS) == HOST_PATHS
    assert rootfs.HOST_FILES == ("/etc/ld.so.cache",)
    assert {f"/dev/{d}" for d in rootfs.DEVICES} == DEVICES


@pytest.mark.parametrize("merged_usr", [True, False], ids=["merged-usr", "split-usr"])
def test_template_binds_only_the_allowed_host_paths(tmp_path: Path, merged_usr: bool) -> None:
    host = fake_host(tmp_path, merged_usr)
    ops = rootfs.template_plan(USER, str(host))
    allowed = {str(host) + p for p in (*HOST_PATHS, "/etc/ld.so.cache")} | DEVICES
    sources = {b.source for b in binds(ops)}
    assert sources <= allowed, sources - allowed
    expected_dirs = {"/usr", "/etc/alternatives"} | (
        set() if merged_usr else {"/bin", "/lib", "/lib64"}
    )
    assert sources == {str(host) + p for p in (*expected_dirs, "/etc/ld.so.cache")} | DEVICES
    text = repr(ops)
    for name in FORBIDDEN:
        assert f"{host}/{name}'" not in text and f"'/{name}'" not in text, name


def test_a_deep_host_path_gets_bare_parents(tmp_path: Path) -> None:
    """/var/lib/ghc is bound alone: /var and /var/lib are empty directories of the box, and
    nothing else of the host's /var comes with them."""
    host = fake_host(tmp_path, merged_usr=True)
    (host / "var/lib/ghc/package.conf.d").mkdir(parents=True)
    (host / "var/lib/secret").mkdir()
    ops = rootfs.template_plan(USER, str(host))
    dirs = [op.path for op in ops if isinstance(op, m.Mkdir)]
    assert dirs.index("/var") < dirs.index("/var/lib") < dirs.index("/var/lib/ghc")
    var_binds = {b.source for b in binds(ops) if "/var" in b.source}
    assert var_binds == {f"{host}/var/lib/ghc"}


def test_merged_usr_links_stay_links(tmp_path: Path) -> None:
    ops = rootfs.template_plan(USER, str(fake_host(tmp_path, merged_usr=True)))
    links = {op.path: op.target for op in ops if isinstance(op, m.Symlink)}
    assert {k: links[k] for k in ("/bin", "/lib", "/lib64")} == {
        "/bin": "usr/bin",
        "/lib": "usr/lib",
        "/lib64": "usr/lib64",
    }


def test_template_on_this_host_binds_nothing_else() -> None:
    sources = {b.source for b in binds(rootfs.template_plan(USER))}
    assert sources <= HOST_PATHS | {"/etc/ld.so.cache"} | DEVICES
    assert "/usr" in sources and sources >= DEVICES


def test_host_binds_are_read_only_nosuid_nodev(tmp_path: Path) -> None:
    host = fake_host(tmp_path, merged_usr=False)
    for b in binds(rootfs.template_plan(USER, str(host))):
        if b.source in DEVICES:
            continue
        assert b.readonly and b.remount, b
        assert b.flags & m.SAFE == m.SAFE, b


def test_device_binds_are_nosuid_and_the_only_mounts_without_nodev() -> None:
    ops = rootfs.template_plan(USER)
    for b in binds(ops):
        if b.source in DEVICES:
            assert b.path == b.source and b.flags & sc.MS_NOSUID and b.remount
            assert not b.flags & sc.MS_NODEV  # a device node needs a mount without nodev
        else:
            assert b.flags & sc.MS_NODEV
    placeholders = {op.path for op in ops if isinstance(op, m.WriteFile)}
    assert placeholders >= DEVICES


def test_template_starts_on_a_small_tmpfs_and_ends_read_only() -> None:
    ops = rootfs.template_plan(USER)
    first, last = ops[0], ops[-1]
    assert isinstance(first, m.Tmpfs) and first.path == ""
    assert first.flags & m.SAFE == m.SAFE and "size=" in first.options
    assert last == m.Remount("", sc.MS_RDONLY | m.SAFE, bind=False)


def test_every_mount_point_is_made_before_it_is_mounted_on() -> None:
    made: set[str] = set()
    for op in rootfs.template_plan(USER):
        if isinstance(op, m.Bind):
            assert op.path in made, op
        if isinstance(op, m.Mkdir | m.WriteFile | m.Symlink):
            made.add(op.path)


def test_template_has_the_box_directories() -> None:
    dirs = {op.path: op.mode for op in rootfs.template_plan(USER) if isinstance(op, m.Mkdir)}
    assert dirs["/tmp"] == 0o1777 and dirs[rootfs.SCRATCH_DIR] == 0o700
    assert {"/box", "/proc", "/dev", "/dev/shm", "/etc"} <= set(dirs)
    links = {op.path: op.target for op in rootfs.template_plan(USER) if isinstance(op, m.Symlink)}
    assert links["/dev/fd"] == "/proc/self/fd" and links["/dev/stdout"] == "/proc/self/fd/1"


def test_init_layer_files() -> None:
    files = {op.path: op.content.decode() for op in rootfs.init_layer(USER)}
    assert set(files) >= {
        "/etc/passwd",
        "/etc/group",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    }
    assert "box:x:60007:60007:box:/box:" in files["/etc/passwd"]
    assert "$" not in files["/etc/passwd"]  # no hashes, only the x placeholder
    assert "box:x:60007:" in files["/etc/group"]
    assert files["/etc/hostname"] == f"{rootfs.HOSTNAME}\n"
    assert "127.0.0.1" in files["/etc/hosts"] and rootfs.HOSTNAME in files["/etc/hosts"]


def test_scratch_plan_is_a_capped_nosuid_nodev_tmpfs() -> None:
    ops = rootfs.scratch_plan(32 * MIB, 1000, USER)
    tmpfs = ops[0]
    assert isinstance(tmpfs, m.Tmpfs) and tmpfs.path == rootfs.SCRATCH_DIR
    opts = dict(o.split("=", 1) for o in tmpfs.options.split(","))
    assert opts["size"] == str(32 * MIB) and opts["nr_inodes"] == "1000"
    assert tmpfs.flags & m.SAFE == m.SAFE
    # The binds carry the tmpfs's own flags (a bind keeps its source mount's: mount(2)).
    targets = {b.path: b.source for b in binds(ops)}
    assert targets == {
        "/box": f"{rootfs.SCRATCH_DIR}/box",
        "/tmp": f"{rootfs.SCRATCH_DIR}/tmp",
        "/dev/shm": f"{rootfs.SCRATCH_DIR}/shm",
    }
    assert all(not b.readonly for b in binds(ops))
    box_dir = next(op for op in ops if isinstance(op, m.Mkdir) and op.path.endswith("/box"))
    assert (box_dir.uid, box_dir.gid) == (USER.uid, USER.gid)


def test_proc_plan_masks_files_and_freezes_dirs() -> None:
    ops = rootfs.proc_plan(("/proc/kcore", "/proc/keys"), ("/proc/sys",))
    assert ops[0] == m.Proc("/proc")
    assert ops[1:] == [
        m.Bind("/dev/null", "/proc/kcore", remount=False),
        m.Bind("/dev/null", "/proc/keys", remount=False),
        m.Bind("/proc/sys", "/proc/sys", readonly=True, flags=m.SAFE | sc.MS_NOEXEC),
    ]


def test_proc_masks_cover_the_known_leaks() -> None:
    masked = set(rootfs.PROC_MASKED_FILES)
    assert {"/proc/kcore", "/proc/keys", "/proc/sysrq-trigger", "/proc/kallsyms"} <= masked
    assert {"/proc/timer_list", "/proc/sched_debug", "/proc/kmsg"} <= masked
    assert {"/proc/sys", "/proc/irq", "/proc/bus"} <= set(rootfs.PROC_READONLY_DIRS)


def test_proc_plan_for_host_masks_what_exists() -> None:
    ops = rootfs.proc_plan_for_host()
    targets = {b.path for b in binds(ops)}
    for path in rootfs.PROC_MASKED_FILES + rootfs.PROC_READONLY_DIRS:
        assert (path in targets) == Path(path).exists(), path


# ---- rlimits ----------------------------------------------------------------------------------


def limits_of(limits: Limits) -> dict[int, tuple[int, int]]:
    return {res: (soft, hard) for res, soft, hard in rlimits.plan(limits)}


def test_rlimits_plan_values() -> None:
    lim = Limits(cpu_time_s=1.5, memory_bytes=128 * MIB, fsize_bytes=3 * MIB, nofile=64, pids=10)
    got = limits_of(lim)
    assert got[resource.RLIMIT_CORE] == (0, 0)
    assert got[resource.RLIMIT_FSIZE] == (3 * MIB, 3 * MIB)
    assert got[resource.RLIMIT_NOFILE] == (64, 64)
    assert got[resource.RLIMIT_STACK] == (128 * MIB, 128 * MIB)  # stack may grow to the memory
    assert got[resource.RLIMIT_NPROC][0] >= 10


def test_rlimit_stack_follows_stack_bytes() -> None:
    got = limits_of(Limits(stack_bytes=8 * MIB))
    assert got[resource.RLIMIT_STACK] == (8 * MIB, 8 * MIB)


@pytest.mark.parametrize("cpu", [0.001, 0.5, 1.0, 1.5, 5.0, 30.0])
def test_rlimit_cpu_is_a_backstop_behind_the_cgroup(cpu: float) -> None:
    """Whole seconds only (setrlimit(2)); the soft limit must fire after the cgroup's own
    check would have, never before, and SIGKILL (the hard limit) after SIGXCPU."""
    soft, hard = limits_of(Limits(cpu_time_s=cpu))[resource.RLIMIT_CPU]
    assert soft > cpu and soft >= math.ceil(cpu)
    assert soft <= math.ceil(cpu) + 2
    assert hard > soft


def test_rlimits_plan_is_plain_data() -> None:
    for res, soft, hard in rlimits.plan(Limits()):
        assert all(isinstance(v, int) for v in (res, soft, hard))
        assert 0 <= soft <= hard


# ---- mount ops --------------------------------------------------------------------------------

OPS: list[m.Op] = [
    m.Mkdir("/x"),
    m.Symlink("a", "/b"),
    m.WriteFile("/f", b"c"),
    m.Bind("/s", "/d"),
    m.Tmpfs("/t", "size=1m"),
    m.Proc("/proc"),
    m.Remount("/", sc.MS_RDONLY),
]


@pytest.mark.parametrize("op", OPS, ids=[type(op).__name__ for op in OPS])
def test_mount_ops_are_frozen_and_hashable(op: m.Op) -> None:
    assert dataclasses.is_dataclass(op)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.path = "/elsewhere"  # type: ignore[misc]
    # The launcher caches box plans keyed by tuples of ops (functools.lru_cache).
    assert hash(op) == hash(dataclasses.replace(op))
    assert op == dataclasses.replace(op)


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:33 / /usr rw,nosuid,relatime shared:2 - ext4 /dev/vdb rw
41 40 0:34 / /usr/local rw,noexec,nodev - tmpfs t rw
42 41 0:35 / /usr/local/my\\040dir rw - tmpfs t rw
43 22 0:36 / /usr2 rw - tmpfs t rw
44 40 0:37 / /usr/odd\\134name\\011x rw - tmpfs t rw
"""


def test_submounts_lists_mounts_strictly_below_with_their_flags() -> None:
    assert m.submounts(MOUNTINFO, "/usr") == [
        ("/usr/local", sc.MS_NOEXEC | sc.MS_NODEV),
        ("/usr/local/my dir", 0),
        ("/usr/odd\\name\tx", 0),
    ]
    assert m.submounts(MOUNTINFO, "/usr/") == m.submounts(MOUNTINFO, "/usr")
    assert m.submounts(MOUNTINFO, "/usr/local/my dir") == []
    assert [p for p, _ in m.submounts(MOUNTINFO, "/")][:2] == ["/usr", "/usr/local"]
