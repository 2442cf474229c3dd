"""test_hostile_files.py's programs on the microVM tier, all in one VM. What the program
sees is the guest's: its own kernel's /proc (hidepid=2: only the box's uid), a /dev tmpfs
of the agent's, and a chroot into an overlay of the image. Where an outcome differs from the
container tier's, the comment says why it is still contained; the host canaries live on the
host and are not reachable at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from tests.privileged import hostile_util as hu
from tests.privileged import test_hostile_files as fi
from tests.privileged.test_tier_gvisor_containment import _host_unchanged, host_canaries
from tests.privileged.test_tier_gvisor_files import SYS_VIEW, canary_paths
from tests.privileged.test_tier_microvm import nothing_left
from tests.privileged.tier_groups import Group, Probe, microvm_usable, no_new_mounts, run_group

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
elves = hu.elves
__all__ = ["_host_unchanged", "canary_paths", "host_canaries", "microvm_usable", "nothing_left"]
__all__ += ["no_new_mounts"]

MOUNT_PREFIXES = (*fi.HOST_PREFIXES, "/var", "/srv", "/opt", "/sys")
# pid 1 is the guest agent (root), hidden by hidepid=2: PROC_VIEW and CAPS end at their
# first read of /proc/1/status. The same sources run again without that read, so the
# calls after it are tried too.
PROC_REST = fi.PROC_VIEW[fi.PROC_VIEW.index('for name in ("kallsyms"') :]
CAPS_SELF = fi.CAPS.replace('("self", "1")', '("self",)')
assert PROC_REST != fi.PROC_VIEW and CAPS_SELF != fi.CAPS
# The microVM's own questions: what its mounts name, and whether the guest kernel's symbol
# addresses are readable.
GUEST_VIEW = """
say("mountinfo_raw", "|".join(l.strip() for l in open("/proc/self/mountinfo")))
lines = open("/proc/kallsyms").read().splitlines()
say("kallsyms_many", len(lines) > 1000)
say("kallsyms_nonzero", sum(1 for l in lines if int(l.split()[0], 16)))
say("pid1_visible", os.path.exists("/proc/1"))
"""


@pytest.fixture(scope="module")
def files(launcher: Launcher, elves: dict[str, bytes], canary_paths: list[Path]) -> Group:
    os.environ["STOCKADE_SECRET_TEST"] = fi.SECRET
    before = [fi._fingerprint(p) for p in canary_paths]
    tunables = fi._host_tunables()
    probes = [
        Probe("canary", elf="canary", args=tuple(map(str, canary_paths))),
        Probe("env", fi.ENV_SECRET, stdin=fi.SECRET.encode()),
        Probe("proc", fi.PROC_VIEW),
        Probe("proc_rest", PROC_REST),
        Probe("host_paths", fi.HOST_PATHS_IN_PROC, stdin=" ".join(fi.HOST_PREFIXES).encode()),
        Probe("mountinfo", fi.MOUNTINFO, stdin=" ".join(MOUNT_PREFIXES).encode()),
        Probe("dev", fi.DEV_LEAKS),
        Probe("proc_sys", fi.PROC_SYS_AND_CGROUPS),
        Probe("read_only", fi.READ_ONLY_SYSTEM),
        Probe("caps", fi.CAPS),
        Probe("caps_self", CAPS_SELF),
        # The image's own setuid binaries (the guest's /usr is the image's, not the host's).
        Probe("suid", elf="suid_probe", args=tuple(fi.SETUID_BINARIES)),
        Probe("chroot", elf="chroot_escape"),
        Probe("sys", SYS_VIEW),
        Probe("guest", GUEST_VIEW),
    ]
    g = run_group(launcher, probes, elves, env=(("JUDGE", "1"),))
    assert [fi._fingerprint(p) for p in canary_paths] == before
    assert fi._host_tunables() == tunables
    assert not Path("/dev/evil").exists() and not Path("/usr/bin/stockade-pwn").exists()
    return g


def test_host_canaries_unreachable(files: Group) -> None:
    """The VM's disks are the image's layers: no host file is in it. /root is the image's
    own (0700 root), so the /root canary's path meets EACCES where a container box has no
    /root at all; every other path is ENOENT, /proc/1/root too (hidepid=2 hides the agent)."""
    out = files["canary"]
    assert len(out) == 2 * 4 * 5, files.describe("canary")
    via_root = ("c1_direct_", "c1_procselfroot_", "c1_dotdot_")
    want = {k: "EACCES" if k.startswith(via_root) else "ENOENT" for k in out}
    assert out == want, files.describe("canary")
    assert fi.SECRET.encode() not in files.result.files.get("/box/out/canary", b"")


def test_host_environment_secret_invisible(files: Group) -> None:
    out = files["env"]
    assert out["env_keys"] == "HOME,JUDGE,LANG,PATH,PWD", files.describe("env")  # PWD: sh's
    assert out["in_environ"] == out["in_self_environ"] == "False"
    # pid 1 is the guest agent (root): not even listed in /proc (hidepid=2), where a
    # container box's init is listed and refused (EACCES).
    assert out["init_environ"] == "ENOENT" and out["found"] == "none", files.describe("env")


def test_proc_shows_only_the_box(files: Group) -> None:
    """No pid namespace: the guest's pids, of which the box's uid sees its own only (the
    group's sh and the probe), not the agent, kernel threads or the host's processes."""
    out = files["proc"]
    assert files.rcs["proc"] == "1" and len(out["pids"].split(",")) == 2, files.describe("proc")
    assert "FileNotFoundError" in files.describe("proc") and "/proc/1/status" in files.describe(
        "proc"
    )
    assert files["guest"]["pid1_visible"] == "False"
    rest = files["proc_rest"]
    # The guest kernel's files: keys lists none of the box user's, the rest are root's.
    # kallsyms is readable but every address is 0 for the box's uid (kptr_restrict), and it
    # is the guest kernel's, not the host's.
    want = {"kallsyms": "LEAKS", "keys": "empty", "timer_list": "EACCES", "kcore": "EACCES"}
    want |= {"sysrq-trigger": "EACCES", "sched_debug": "absent", "kmsg": "EACCES"}
    want |= {"sysrq_write": "EACCES"}
    want |= dict.fromkeys(("init_mem", "init_environ", "init_maps", "init_root"), "ENOENT")
    want |= dict.fromkeys(("init_exe", "init_fd", "init_cwd"), "ENOENT")
    assert rest == want, files.describe("proc_rest")
    guest = files["guest"]
    assert guest["kallsyms_many"] == "True" and guest["kallsyms_nonzero"] == "0", guest


def test_proc_reveals_no_host_paths(files: Group) -> None:
    """The only hits are "/work" in the overlay's workdir=/scratch/work, a directory of the
    guest's scratch tmpfs: mountinfo names guest paths only (/layers/<n>, /scratch)."""
    hits = files["host_paths"]["hits"].split(",")
    assert hits and all(h.endswith("mountinfo:/work") or h.endswith("mounts:/work") for h in hits)
    raw = files["guest"]["mountinfo_raw"]
    assert raw.count("/work") == raw.count("workdir=/scratch/work"), raw
    for prefix in fi.HOST_PREFIXES:
        assert raw.replace("/scratch/work", "").count(prefix) == 0, (prefix, raw)
    assert "lowerdir=/layers/0" in raw, raw


def test_mountinfo_has_no_host_paths(files: Group) -> None:
    """Only /, /proc and /dev are in the chroot's view. / is a writable overlay (its upper
    is the box's scratch tmpfs in guest RAM; the image's layers are read-only disks) and
    /dev is the agent's tmpfs holding the five harmless devices, so both show up as the
    container tier would not have them; the system files stay root's (test below)."""
    out = files["mountinfo"]
    assert out["points"] == "/,/dev,/proc"
    assert out["bad"] == "rw:/,dev:/dev", files.describe("mountinfo")
    assert out["sys_exists"] == "True"  # the image's empty /sys: nothing is mounted there
    top = "bin boot box dev etc home lib lib64 media mnt opt proc root run sbin srv sys tmp usr"
    assert set(out["top"].split(",")) == {*top.split(), "var"}, out["top"]


def test_sys_view(files: Group) -> None:
    out = files["sys"]
    assert out["ls_sys"] == "" and out["sys_files"] == "", files.describe("sys")
    for key in ("ls_sys_fs_cgroup", "ls_sys_kernel", "ls_sys_class_net", "write_sys"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
    assert out["mountinfo"] == "overlay:/|proc:/proc|tmpfs:/dev"


def test_dev_has_only_the_harmless_devices(files: Group) -> None:
    out = files["dev"]
    assert out["dev"] == "fd,full,null,random,stderr,stdin,stdout,urandom,zero"
    opens = {k: v for k, v in out.items() if k.startswith("open_")}
    assert len(opens) == 17 and set(opens.values()) == {"ENOENT"}, files.describe("dev")
    assert out["null_is_chr"] == "True" and out["create_in_dev"] == "EACCES"


def test_proc_sys_and_cgroup_files_are_not_writable(files: Group) -> None:
    out = files["proc_sys"]
    for key in ("core_pattern", "hostname", "drop_caches", "ip_forward", "modprobe", "sysrq"):
        assert out[key] == "EACCES", f"{key}={out[key]}"
    assert out["oom_score_adj"] == "EACCES"
    for key in ("cg_memory_limit", "cg_stockade_procs", "cg_release_agent", "cg_pids_max"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
    # The guest's cgroup2 path of the box (no cgroup namespace; the hierarchy is the guest
    # kernel's, mounted outside the chroot): nothing of the host's cgroups.
    assert out["cgroup_view"] == "/box"


def test_system_files_are_read_only(files: Group) -> None:
    """The root is writable only where the box's uid may write: the image's system files
    are root's, so each write is EACCES (EROFS in a container box). /root is the image's
    (EEXIST). A write that did succeed would land in the VM's scratch, not on the host."""
    want = {
        "append_passwd": "EACCES", "rename_passwd": "EACCES", "unlink_passwd": "EACCES",
        "create_etc": "EACCES", "create_usr_bin": "EACCES", "write_ld_cache": "EACCES",
        "chmod_usr_su": "EPERM", "mkdir_root": "EEXIST",
    }  # fmt: skip
    out = files["read_only"]
    assert {k: out[k] for k in want} == want, files.describe("read_only")
    assert out["passwd_root"].startswith("root:x:0:0:")


def test_capability_sets_are_all_zero(files: Group) -> None:
    """CAPS stops at /proc/1/status (hidden); CAPS_SELF is the same without pid 1."""
    assert files.rcs["caps"] == "1" and "/proc/1/status" in files.describe("caps")
    out = files["caps_self"]
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(out[f"self_{key}"], 16) == 0, files.describe("caps_self")
    assert out["self_NoNewPrivs"] == "1" and out["self_Seccomp"] == "2"
    assert "0" not in out["self_Uid"].split()
    want = {"ambient_raise": "EPERM", "no_new_privs_off": "EINVAL", "seccomp_off": "EINVAL"}
    assert {k: out[k] for k in want} == want and out["capset"] == "EPERM"
    caps = files["caps"]
    assert {k: caps[k] for k in caps if k.startswith("self_")} == {
        k: v for k, v in out.items() if k.startswith("self_")
    }


def test_setuid_binaries_do_not_raise_privileges(files: Group) -> None:
    """The image's setuid-root binaries, each caught after its execve: no_new_privs."""
    out = files["suid"]
    assert out["uid"] == out["euid_after"] == "60000"
    for path in fi.SETUID_BINARIES:
        key = Path(path).name + "_uid"
        assert out[key].split() == ["60000"] * 4, files.describe("suid")


def test_chroot_escape(files: Group) -> None:
    out = files["chroot"]
    assert out["chroot_jail"] == out["chroot_dot"] == "EPERM"
    assert out["cwd"] == "/"
    # /root is the image's directory (the container tier's root has none): stat only.
    assert out["stat_root_home"] == "ok"
    for key in ("stat_work", "stat_run_stockade", "stat_dotdot_work"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
