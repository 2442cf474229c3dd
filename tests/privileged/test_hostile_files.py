"""Hostile programs after the host's files, environment and kernel interfaces: canaries,
a secret in the environment, /proc, mountinfo, /dev, /proc/sys, cgroup files, setuid
binaries, capabilities, read-only system files and the chroot escape."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launcher import Launcher
from sandbox.result import Status
from tests.privileged import hostile_util as hu

pytestmark = pytest.mark.privileged

elves = hu.elves
guard = hu.guard

# Set at import, before any launcher (and so its zygote and every box's init) exists: the
# secret is then in the environment of the processes the box is cloned from.
SECRET = "stockade-secret-" + secrets.token_hex(8)
os.environ["STOCKADE_SECRET_TEST"] = SECRET

HOST_PREFIXES = ("/work", "/root", "/home", "/run/stockade", "/var/lib/stockade", ".venv")


@pytest.fixture
def canaries() -> Iterator[list[Path]]:
    """A 0600 canary in /root and a world-readable one in the host's /tmp."""
    tag = secrets.token_hex(6)
    made = []
    for where, mode in (("/root", 0o600), ("/tmp", 0o644)):
        path = Path(f"{where}/stockade-canary-{tag}")
        path.write_text(f"canary {tag} {SECRET}\n")
        path.chmod(mode)
        made.append(path)
    yield made
    for path in made:
        path.unlink(missing_ok=True)


def _fingerprint(path: Path) -> tuple[bytes, int, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mode, st.st_ino, st.st_mtime_ns


def test_host_canaries_unreachable(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard, canaries: list[Path]
) -> None:
    before = [_fingerprint(p) for p in canaries]
    r = hu.run_c(launcher, elves, "canary", *map(str, canaries))
    guard.check()
    assert [_fingerprint(p) for p in canaries] == before
    for p in canaries:
        assert sorted(p.parent.glob(p.name + "*")) == [p]
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert len(out) == 2 * 4 * 5, hu.describe(r)
    assert all(v in ("ENOENT", "EACCES") for v in out.values()), hu.describe(r)
    assert SECRET.encode() not in r.stdout


ENV_SECRET = """
secret = sys.stdin.read()
say("env_keys", ",".join(sorted(os.environ)))
say("in_environ", any(secret in k or secret in v for k, v in os.environ.items()))
say("in_self_environ", secret.encode() in open("/proc/self/environ", "rb").read())
attempt("init_environ", lambda: open("/proc/1/environ", "rb").read())
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for what in ("environ", "cmdline"):
        try:
            if secret.encode() in open(f"/proc/{pid}/{what}", "rb").read():
                found.append(f"{pid}/{what}")
        except OSError:
            pass
say("found", ",".join(found) or "none")
"""


def test_host_environment_secret_invisible(launcher: Launcher, guard: hu.HostGuard) -> None:
    # The program gets the secret's value on stdin to search for it; the host's environment
    # variable itself must not reach the box, by environ or by /proc.
    os.environ["STOCKADE_SECRET_TEST"] = SECRET
    r = hu.run_py(launcher, ENV_SECRET, stdin=SECRET.encode(), env=(("JUDGE", "1"),))
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["env_keys"] == "HOME,JUDGE,LANG,PATH"
    assert out["in_environ"] == out["in_self_environ"] == "False"
    assert out["init_environ"] == "EACCES"
    assert out["found"] == "none", hu.describe(r)


PROC_VIEW = """
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
say("pids", ",".join(map(str, pids)))
status = dict(l.split(":", 1) for l in open("/proc/1/status").read().splitlines() if ":" in l)
# .get: gVisor's /proc/<pid>/status has no NSpid or CapAmb line (test_tier_gvisor_files.py).
say("init_nspid", status.get("NSpid", "absent").strip())
say("init_ppid", status["PPid"].strip())
own = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
say("self_nspid", own.get("NSpid", "absent").strip())
for name in ("kallsyms", "keys", "timer_list", "kcore", "sysrq-trigger", "sched_debug", "kmsg"):
    path = "/proc/" + name
    if not os.path.exists(path):
        say(name, "absent")
        continue
    try:
        with open(path, "rb") as f:
            say(name, "empty" if f.read(4096) == b"" else "LEAKS")
    except OSError as e:
        say(name, errno.errorcode[e.errno])
attempt("sysrq_write", lambda: open("/proc/sysrq-trigger", "w").write("h"))
attempt("init_mem", lambda: open("/proc/1/mem", "rb").read(16))
attempt("init_environ", lambda: open("/proc/1/environ", "rb").read())
attempt("init_maps", lambda: open("/proc/1/maps", "rb").read())
attempt("init_root", os.listdir, "/proc/1/root")
attempt("init_exe", os.readlink, "/proc/1/exe")
attempt("init_fd", os.listdir, "/proc/1/fd")
attempt("init_cwd", os.readlink, "/proc/1/cwd")
"""


def test_proc_shows_only_the_box(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, PROC_VIEW)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["pids"] == "1,2", hu.describe(r)
    assert out["init_nspid"] == "1" and out["init_ppid"] == "0"
    assert out["self_nspid"] == "2"
    for name in ("kallsyms", "keys", "timer_list", "kcore", "sysrq-trigger", "sched_debug", "kmsg"):
        assert out[name] in ("absent", "empty", "EACCES", "EPERM"), f"/proc/{name}: {out[name]}"
    assert out["sysrq_write"] in ("ENOENT", "EACCES", "EROFS", "ok")  # ok: into /dev/null
    init_files = [
        "init_mem", "init_environ", "init_maps", "init_root", "init_exe", "init_fd", "init_cwd",
    ]  # fmt: skip
    for key in init_files:
        assert out[key] in ("EACCES", "EPERM"), f"{key}={out[key]}"


HOST_PATHS_IN_PROC = """
import glob
prefixes = sys.stdin.read().split()  # not in argv: its own cmdline would then match
hits = []
for path in ["/proc/self/mountinfo", "/proc/self/mounts", "/proc/self/cgroup",
             "/proc/cmdline", *glob.glob("/proc/[0-9]*/cmdline"), *glob.glob("/proc/[0-9]*/status"),
             *glob.glob("/proc/[0-9]*/comm"), *glob.glob("/proc/[0-9]*/mountinfo")]:
    try:
        data = open(path, "rb").read().decode("utf-8", "replace")
    except OSError:
        continue
    for p in prefixes:
        if p in data:
            hits.append(f"{path}:{p}")
say("hits", ",".join(hits) or "none")
"""


def test_proc_reveals_no_host_paths(launcher: Launcher, guard: hu.HostGuard) -> None:
    """Nothing the box can read in /proc names a host path: not its mounts, not the
    command line of its init."""
    r = hu.run_py(launcher, HOST_PATHS_IN_PROC, stdin=" ".join(HOST_PREFIXES).encode())
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    assert hu.kv(r)["hits"] == "none", hu.describe(r)


MOUNTINFO = """
READ_ONLY_HOST_DATA = ("/var/lib/ghc",)
prefixes = sys.stdin.read().split()
bad = []
for line in open("/proc/self/mountinfo"):
    f = line.split()
    root, point = f[3], f[4]
    opts = f[5].split(",")
    fstype = f[f.index("-") + 1]
    if "nosuid" not in opts:
        bad.append("suid:" + point)
    # Only the harmless devices' own binds (and the /proc masks made of /dev/null) may
    # allow device nodes.
    if "nodev" not in opts and root not in ("/null", "/zero", "/full", "/random", "/urandom"):
        bad.append("dev:" + point)
    if point in ("/", "/usr", "/etc/alternatives", "/etc/ld.so.cache") and "ro" not in opts:
        bad.append("rw:" + point)
    if point in READ_ONLY_HOST_DATA and "ro" not in opts:
        bad.append("rw:" + point)
    for p in prefixes:
        # A proc mount's root is a path inside proc (/sys for /proc/sys), not a host path.
        # The one reviewed exception: GHC's package database, which Debian keeps in
        # /var/lib/ghc behind a symlink from /usr/lib/ghc; it is bound read-only, alone.
        if point in READ_ONLY_HOST_DATA and root == point:
            continue
        if point.startswith(p) or (fstype != "proc" and root.startswith(p)):
            bad.append("host:" + point)
say("points", ",".join(sorted({l.split()[4] for l in open("/proc/self/mountinfo")})))
say("bad", ",".join(bad) or "none")
say("sys_exists", os.path.exists("/sys"))
say("top", ",".join(sorted(os.listdir("/"))))
"""


def test_mountinfo_has_no_host_paths(launcher: Launcher, guard: hu.HostGuard) -> None:
    prefixes = (*HOST_PREFIXES, "/var", "/srv", "/opt", "/sys")
    r = hu.run_py(launcher, MOUNTINFO, stdin=" ".join(prefixes).encode())
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["bad"] == "none", hu.describe(r)
    assert out["sys_exists"] == "False"
    allowed_top = {
        "bin", "box", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "tmp", "usr",
        "var",  # empty but for the read-only /var/lib/ghc above
    }  # fmt: skip
    assert set(out["top"].split(",")) - allowed_top <= {".scratch"}, out["top"]


DEV_LEAKS = """
say("dev", ",".join(sorted(os.listdir("/dev"))))
for name in ("vda", "sda", "kvm", "mem", "kmem", "port", "kmsg", "console", "tty", "tty0",
             "net/tun", "fuse", "loop0", "loop-control", "userfaultfd", "hpet", "vsock"):
    attempt("open_" + name.replace("/", "_"), os.open, "/dev/" + name, os.O_RDONLY)
say("null_is_chr", __import__("stat").S_ISCHR(os.stat("/dev/null").st_mode))
attempt("create_in_dev", os.open, "/dev/evil", os.O_CREAT | os.O_WRONLY, 0o666)
"""


def test_dev_has_only_the_harmless_devices(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, DEV_LEAKS)
    guard.check()
    assert not Path("/dev/evil").exists()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    devices = set(out["dev"].split(","))
    harmless = "null zero full random urandom shm fd stdin stdout stderr pts ptmx"
    assert devices <= set(harmless.split()), devices
    opens = [k for k in out if k.startswith("open_")]
    assert len(opens) == 17 and all(out[k] == "ENOENT" for k in opens), hu.describe(r)
    assert out["null_is_chr"] == "True"
    assert out["create_in_dev"] in ("EROFS", "EACCES")


PROC_SYS_AND_CGROUPS = """
def write(path, value):
    with open(path, "w") as f:
        f.write(value)
for key, path, value in [
    ("core_pattern", "/proc/sys/kernel/core_pattern", "|/box/pwn"),
    ("hostname", "/proc/sys/kernel/hostname", "pwned"),
    ("drop_caches", "/proc/sys/vm/drop_caches", "3"),
    ("ip_forward", "/proc/sys/net/ipv4/ip_forward", "1"),
    ("modprobe", "/proc/sys/kernel/modprobe", "/box/pwn"),
    ("sysrq", "/proc/sysrq-trigger", "c"),
    ("oom_score_adj", "/proc/self/oom_score_adj", "-1000"),
    ("cg_memory_limit", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "-1"),
    ("cg_stockade_procs", "/sys/fs/cgroup/memory/stockade/cgroup.procs", "1"),
    ("cg_release_agent", "/sys/fs/cgroup/memory/release_agent", "/box/pwn"),
    ("cg_pids_max", "/sys/fs/cgroup/pids/pids.max", "max"),
]:
    attempt(key, write, path, value)
paths = {line.strip().split(":", 2)[2] for line in open("/proc/self/cgroup")}
say("cgroup_view", ",".join(sorted(paths)))
"""


def _host_tunables() -> dict[str, str]:
    paths = [
        "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/kernel/modprobe",
        "/proc/sys/net/ipv4/ip_forward", "/sys/fs/cgroup/memory/stockade/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/stockade/pids.max",
    ]  # fmt: skip
    return {p: Path(p).read_text() for p in paths if Path(p).exists()}


def test_proc_sys_and_cgroup_files_are_not_writable(
    launcher: Launcher, guard: hu.HostGuard
) -> None:
    before = _host_tunables()
    r = hu.run_py(launcher, PROC_SYS_AND_CGROUPS)
    guard.check()
    assert _host_tunables() == before
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    for key in ("core_pattern", "hostname", "drop_caches", "ip_forward", "modprobe"):
        # ENOENT only where this kernel has no such knob at all (modprobe needs CONFIG_MODULES).
        absent = ("ENOENT",) if not list(Path("/proc/sys").rglob(key)) else ()
        assert out[key] in ("EROFS", "EACCES", "EPERM", *absent), f"{key}={out[key]}"
    assert out["sysrq"] in ("ENOENT", "EACCES", "EROFS", "ok")  # ok: the mask is /dev/null
    assert out["oom_score_adj"] in ("EACCES", "EPERM")
    for key in ("cg_memory_limit", "cg_stockade_procs", "cg_release_agent", "cg_pids_max"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
    assert out["cgroup_view"] == "/", "the cgroup namespace must hide the host's hierarchy"


READ_ONLY_SYSTEM = """
attempt("append_passwd", lambda: open("/etc/passwd", "a").write("pwn::0:0::/:/bin/sh\\n"))
attempt("rename_passwd", os.rename, "/etc/passwd", "/etc/passwd.old")
attempt("unlink_passwd", os.unlink, "/etc/passwd")
attempt("create_etc", os.open, "/etc/shadow", os.O_CREAT | os.O_WRONLY, 0o600)
attempt("create_usr_bin", os.open, "/usr/bin/stockade-pwn", os.O_CREAT | os.O_WRONLY, 0o755)
attempt("write_ld_cache", os.open, "/etc/ld.so.cache", os.O_WRONLY)
attempt("chmod_usr_su", os.chmod, "/usr/bin/su", 0o777)
attempt("mkdir_root", os.mkdir, "/root")
say("passwd_root", open("/etc/passwd").readline().strip())
"""


def test_system_files_are_read_only(launcher: Launcher, guard: hu.HostGuard) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    r = hu.run_py(launcher, READ_ONLY_SYSTEM)
    guard.check()
    assert Path("/etc/passwd").read_bytes() == passwd
    assert not Path("/usr/bin/stockade-pwn").exists()
    assert Path("/usr/bin/su").stat().st_mode & 0o7777 == 0o4755
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    keys = [
        "append_passwd", "rename_passwd", "unlink_passwd", "create_etc", "create_usr_bin",
        "write_ld_cache", "chmod_usr_su", "mkdir_root",
    ]  # fmt: skip
    assert not hu.all_denied(out, keys, ("EROFS", "EACCES", "EPERM")), hu.describe(r)
    assert out["passwd_root"].startswith("root:x:0:0:")


CAPS = """
import ctypes
for pid in ("self", "1"):
    st = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Uid"):
        say(f"{pid}_{key}", " ".join(st.get(key, "absent").split()))
PR_CAP_AMBIENT, RAISE, PR_CAPBSET_READ = 47, 2, 23
sys_attempt("ambient_raise", 157, PR_CAP_AMBIENT, RAISE, 21, 0, 0)
sys_attempt("no_new_privs_off", 157, 38, 0, 0, 0, 0)
sys_attempt("seccomp_off", 157, 22, 0, 0, 0, 0)
sys_attempt("capset", 126, 0, 0)
"""


def test_capability_sets_are_all_zero(launcher: Launcher, guard: hu.HostGuard) -> None:
    r = hu.run_py(launcher, CAPS)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    for pid in ("self", "1"):
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            value = out[f"{pid}_{key}"]
            assert int(value, 16) == 0, f"/proc/{pid}/status {key}={value}"
        assert out[f"{pid}_NoNewPrivs"] == "1"
        assert out[f"{pid}_Seccomp"] == "2"
        assert "0" not in out[f"{pid}_Uid"].split()
    assert out["ambient_raise"] == "EPERM"
    assert out["no_new_privs_off"] == "EINVAL"  # no_new_privs cannot be unset (prctl(2))
    assert out["seccomp_off"] in ("EINVAL", "EFAULT", "EACCES", "EPERM")
    assert out["capset"] in ("EPERM", "EFAULT")


SETUID_BINARIES = [f"/usr/bin/{name}" for name in ("su", "passwd", "newgrp", "mount", "chsh")]


def _is_setuid(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_ISUID)


def test_setuid_binaries_do_not_raise_privileges(
    launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard
) -> None:
    present = [p for p in SETUID_BINARIES if Path(p).exists() and _is_setuid(Path(p))]
    if not present:
        pytest.skip("no setuid-root binary in the host's /usr to try")
    r = hu.run_c(launcher, elves, "suid_probe", *present)
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    uid = out["uid"]
    assert int(uid) >= 60000
    observed = [p for p in present if out[Path(p).name + "_uid"] != "unobserved"]
    assert observed, f"no setuid binary was caught after its execve: {hu.describe(r)}"
    for p in observed:
        assert out[Path(p).name + "_uid"].split() == [uid] * 4, f"{p}: {out[Path(p).name + '_uid']}"
    assert out["euid_after"] == uid


def test_chroot_escape(launcher: Launcher, elves: dict[str, bytes], guard: hu.HostGuard) -> None:
    r = hu.run_c(launcher, elves, "chroot_escape")
    guard.check()
    assert r.status == Status.OK, hu.describe(r)
    out = hu.kv(r)
    assert out["chroot_jail"] == out["chroot_dot"] == "EPERM"
    assert out["cwd"] == "/"
    for key in ("stat_work", "stat_root_home", "stat_run_stockade", "stat_dotdot_work"):
        assert out[key] == "ENOENT", f"{key}={out[key]}"
