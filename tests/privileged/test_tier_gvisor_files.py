"""test_hostile_files.py's programs on the gVisor tier, all in one box. What the program
sees is the Sentry's: its own /proc, /dev and /sys, 9p mounts served by the gofer. Where an
outcome differs from the container tier's, the comment says why it is still contained."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_files as fi
from tests.privileged.test_tier_gvisor import gvisor_usable, nothing_left
from tests.privileged.test_tier_gvisor_containment import (
    Group,
    Probe,
    _host_unchanged,
    host_canaries,
    run_group,
)

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["_host_unchanged", "gvisor_usable", "host_canaries", "nothing_left"]

MOUNT_PREFIXES = (*fi.HOST_PREFIXES, "/var", "/srv", "/opt", "/sys")
# Files a box may see in the Sentry's sysfs: the CPU lists, nothing of the host's devices.
SYS_VIEW = """
for root in ("/sys", "/sys/fs/cgroup", "/sys/kernel", "/sys/class/net"):
    try:
        say("ls" + root.replace("/", "_"), ",".join(sorted(os.listdir(root))))
    except OSError as e:
        say("ls" + root.replace("/", "_"), errno.errorcode[e.errno])
say("sys_files", ",".join(sorted(os.path.join(d, f) for d, _, fs in os.walk("/sys") for f in fs)))
attempt("write_sys", lambda: open("/sys/devices/system/cpu/online", "w").write("0"))
say("mountinfo", "|".join(l.split(" - ")[1].split()[0] + ":" + l.split()[4]
                          for l in open("/proc/self/mountinfo")))
"""


@pytest.fixture(scope="module")
def canary_paths() -> Iterator[list[Path]]:
    tag = secrets.token_hex(6)
    made = []
    for where, mode in (("/root", 0o600), ("/tmp", 0o644)):
        path = Path(f"{where}/stockade-gvisor-file-canary-{tag}")
        path.write_text(f"canary {tag} {fi.SECRET}\n")
        path.chmod(mode)
        made.append(path)
    yield made
    for path in made:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def files(launcher: Launcher, elves: dict[str, bytes], canary_paths: list[Path]) -> Group:
    os.environ["STOCKADE_SECRET_TEST"] = fi.SECRET
    suid = [p for p in fi.SETUID_BINARIES if Path(p).exists() and fi._is_setuid(Path(p))]
    before = [fi._fingerprint(p) for p in canary_paths]
    tunables = fi._host_tunables()
    probes = [
        Probe("canary", elf="canary", args=tuple(map(str, canary_paths))),
        Probe("env", fi.ENV_SECRET, stdin=fi.SECRET.encode()),
        Probe("proc", fi.PROC_VIEW),
        Probe("host_paths", fi.HOST_PATHS_IN_PROC, stdin=" ".join(fi.HOST_PREFIXES).encode()),
        Probe("mountinfo", fi.MOUNTINFO, stdin=" ".join(MOUNT_PREFIXES).encode()),
        Probe("dev", fi.DEV_LEAKS),
        Probe("proc_sys", fi.PROC_SYS_AND_CGROUPS),
        Probe("read_only", fi.READ_ONLY_SYSTEM),
        Probe("caps", fi.CAPS),
        Probe("suid", elf="suid_probe", args=tuple(suid)),
        Probe("chroot", elf="chroot_escape"),
        Probe("sys", SYS_VIEW),
    ]
    g = run_group(launcher, probes, elves, env=(("JUDGE", "1"),))
    assert [fi._fingerprint(p) for p in canary_paths] == before
    assert fi._host_tunables() == tunables
    assert not Path("/dev/evil").exists() and not Path("/usr/bin/stockade-pwn").exists()
    return g


def test_host_canaries_unreachable(files: Group) -> None:
    out = files["canary"]
    assert len(out) == 2 * 4 * 5, files.describe("canary")
    # /proc/1/root is the root of the program's own sh here, and refused (EACCES).
    want = {k: "EACCES" if "_proc1root_" in k else "ENOENT" for k in out}
    assert out == want, files.describe("canary")
    assert fi.SECRET.encode() not in files.result.files.get("/box/out/canary", b"")


def test_host_environment_secret_invisible(files: Group) -> None:
    out = files["env"]
    # PWD is exported by the group's /bin/sh, the probe's parent.
    assert out["env_keys"] == "HOME,JUDGE,LANG,PATH,PWD", files.describe("env")
    assert out["in_environ"] == out["in_self_environ"] == "False"
    # pid 1 is the program's own sh (the sandbox has no init of ours): readable, and holds
    # only the box's environment, as `found` shows.
    assert out["init_environ"] == "ok"
    assert out["found"] == "none", files.describe("env")


def test_proc_shows_only_the_box(files: Group) -> None:
    out = files["proc"]
    pids = out["pids"].split(",")
    assert len(pids) == 2 and pids[0] == "1", files.describe("proc")  # sh and the probe
    # The Sentry's status files have no NSpid line; PPid 0 for its pid 1 as in Linux.
    assert out["init_nspid"] == out["self_nspid"] == "absent" and out["init_ppid"] == "0"
    for name in ("kallsyms", "keys", "timer_list", "kcore", "sysrq-trigger", "sched_debug", "kmsg"):
        assert out[name] == "absent", f"/proc/{name}: {out[name]}"  # the Sentry has none
    assert out["sysrq_write"] == "EACCES"
    # Files of pid 1, the program's own sh: what lets a process look into its own kind
    # (maps, fd, environ: same uid, dumpable) is allowed, the rest refused.
    want = {"init_mem": "EACCES", "init_environ": "ok", "init_maps": "ok", "init_root": "EACCES"}
    want |= {"init_exe": "EACCES", "init_fd": "ok", "init_cwd": "EACCES"}
    assert {k: out[k] for k in want} == want, files.describe("proc")


def test_proc_reveals_no_host_paths(files: Group) -> None:
    assert files["host_paths"]["hits"] == "none", files.describe("host_paths")


def test_mountinfo_has_no_host_paths(files: Group) -> None:
    """The Sentry's mountinfo: every mount's root is "/", its source "none" and its 9p
    options name descriptors of the gofer, not host paths. gVisor prints no per-mount
    flags (no nosuid, no nodev), so MOUNTINFO reports each point for both; setuid is
    powerless all the same (test_setuid_binaries) and the Sentry's /dev has no host
    device. /sys is listed because it exists: the Sentry's own sysfs (test_sys_view). "/" is
    read-write to the Sentry: /box is in the same gofer mount, and the host's mounts under
    it are read-only everywhere else (test_system_files_are_read_only)."""
    out = files["mountinfo"]
    points = out["points"].split(",")
    want = {f"{kind}:{p}" for p in points for kind in ("suid", "dev")} | {"host:/sys", "rw:/"}
    assert set(out["bad"].split(",")) == want, files.describe("mountinfo")
    assert out["sys_exists"] == "True"
    allowed_top = {"bin", "box", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sys"}
    # var: only the read-only /var/lib/ghc (GHC's package database) is under it
    assert set(out["top"].split(",")) <= allowed_top | {"tmp", "usr", "var"}, out["top"]


def test_sys_view(files: Group) -> None:
    """The Sentry's sysfs: CPU lists and its own loopback, no cgroup tree, no host device."""
    out = files["sys"]
    assert out["ls_sys_fs_cgroup"] == "" and out["ls_sys_kernel"] == "", files.describe("sys")
    assert out["ls_sys_class_net"] == "lo", files.describe("sys")  # the Sentry's loopback
    cpu = [f"/sys/devices/system/cpu/{f}" for f in ("online", "possible", "present")]
    assert out["sys_files"].split(",") == ["/sys/class/net/lo/gro_flush_timeout", *cpu]
    assert out["write_sys"] == "EACCES"
    kinds = dict(reversed(m.split(":", 1)) for m in out["mountinfo"].split("|"))
    assert kinds["/sys"] == "sysfs" and kinds["/proc"] == "proc" and kinds["/dev"] == "tmpfs"
    # /box and /usr are in the root's gofer mount (gvisor_rootfs.assemble_root).
    assert kinds["/"] == kinds["/tmp"] == kinds["/dev/shm"] == "9p", kinds
    assert "/box" not in kinds and "/usr" not in kinds, kinds


def test_dev_has_only_the_harmless_devices(files: Group) -> None:
    """runsc's own /dev: the harmless devices, a tty that answers EIO, and the Sentry's
    FUSE and TUN devices. These two open, but they are the Sentry's implementations: a
    FUSE mount needs CAP_SYS_ADMIN (the box has none) and a TUN interface lives in the
    Sentry's netstack, which has no link to the host (--network=none)."""
    out = files["dev"]
    harmless = "null zero full random urandom shm fd stdin stdout stderr pts ptmx"
    assert set(out["dev"].split(",")) == {*harmless.split(), "fuse", "net", "tty"}
    opens = {k: v for k, v in out.items() if k.startswith("open_")}
    special = {"open_tty": "EIO", "open_net_tun": "ok", "open_fuse": "ok"}
    assert len(opens) == 17, files.describe("dev")
    assert opens == {k: special.get(k, "ENOENT") for k in opens}, files.describe("dev")
    assert out["null_is_chr"] == "True" and out["create_in_dev"] == "EACCES"


def test_proc_sys_and_cgroup_files_are_not_writable(files: Group) -> None:
    out = files["proc_sys"]
    for key in ("core_pattern", "hostname", "drop_caches", "ip_forward", "modprobe", "sysrq"):
        assert out[key] == "EACCES", f"{key}={out[key]}"
    # The Sentry's own OOM score of the task (the host's score of the Sentry is untouched:
    # the Sentry is not the task, and host OOM kills are the box cgroup's).
    assert out["oom_score_adj"] == "ok"
    for key in ("cg_memory_limit", "cg_stockade_procs", "cg_release_agent", "cg_pids_max"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
    assert out["cgroup_view"] == "", "the Sentry lists no cgroup at all"


def test_system_files_are_read_only(files: Group) -> None:
    """The Sentry's permission checks refuse first (EACCES: the root is one writable gofer
    mount to it, for /box's sake); behind them, the host's mounts are read-only even to
    the gofer (test_tier_gvisor's test_assembled_root_refuses_root_itself_...)."""
    want = {
        "append_passwd": "EACCES", "rename_passwd": "EACCES", "unlink_passwd": "EACCES",
        "create_etc": "EACCES", "create_usr_bin": "EACCES", "write_ld_cache": "EACCES",
        "chmod_usr_su": "EPERM", "mkdir_root": "EACCES",
    }  # fmt: skip
    out = files["read_only"]
    assert {k: out[k] for k in want} == want, files.describe("read_only")
    assert out["passwd_root"].startswith("root:x:0:0:")


def test_capability_sets_are_all_zero(files: Group) -> None:
    """No capability. The Sentry's status has no CapAmb or NoNewPrivs line, and Seccomp is
    0: the program's syscalls reach the Sentry, not the host kernel (the Sentry itself runs
    under runsc's seccomp filter on the host: test_tier_gvisor_escape's concurrent test)."""
    out = files["caps"]
    for pid in ("self", "1"):
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
            assert int(out[f"{pid}_{key}"], 16) == 0, f"/proc/{pid}/status {key}"
        assert out[f"{pid}_CapAmb"] == out[f"{pid}_NoNewPrivs"] == "absent"
        assert out[f"{pid}_Seccomp"] == "0"
        assert "0" not in out[f"{pid}_Uid"].split()
    want = {"ambient_raise": "EINVAL", "no_new_privs_off": "EINVAL", "seccomp_off": "EINVAL"}
    assert {k: out[k] for k in want} == want and out["capset"] == "EFAULT"


def test_setuid_binaries_do_not_raise_privileges(files: Group) -> None:
    out = files["suid"]
    uid = out["uid"]
    assert int(uid) >= 60000 and out["euid_after"] == uid
    names = [k for k in out if k.endswith("_uid") and k != "euid_after"]
    assert names, files.describe("suid")
    for key in names:
        assert out[key].split() == [uid] * 4, f"{key}: {out[key]}"


def test_chroot_escape(files: Group) -> None:
    out = files["chroot"]
    assert out["chroot_jail"] == out["chroot_dot"] == "EPERM"
    assert out["cwd"] == "/"
    for key in ("stat_work", "stat_root_home", "stat_run_stockade", "stat_dotdot_work"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
