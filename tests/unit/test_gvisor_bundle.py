"""The gVisor tier's pure plan: the OCI config from a BoxSpec, runsc's argv, host limits."""

from __future__ import annotations

import os
import signal

from sandbox.backends.gvisor import bundle as gb
from sandbox.spec import MIB, BoxSpec, Limits

INPUTS = gb.BundleInputs(
    root_path="/run/x/root",
    scratch_dir="/run/x/scratch",
    uid=60064,
    gid=60064,
    cgroups_path="/stockade/gvisor-1-1",
)


def config(**spec: object) -> dict:  # type: ignore[type-arg]
    box = BoxSpec(argv=("/box/a.out", "x y"), **spec)  # type: ignore[arg-type]
    return gb.oci_config(box, INPUTS, "/usr/bin:/bin")


def test_process_runs_the_argv_as_the_box_uid_without_capabilities() -> None:
    proc = config()["process"]
    assert proc["args"] == ["/box/a.out", "x y"]
    assert proc["user"] == {"uid": 60064, "gid": 60064, "additionalGids": []}
    assert proc["cwd"] == "/box"
    assert proc["terminal"] is False
    assert proc["noNewPrivileges"] is True
    assert all(v == [] for v in proc["capabilities"].values())
    assert set(proc["capabilities"]) == {
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    }


def test_env_is_the_minimal_one_then_the_spec_overrides() -> None:
    env = config(env=(("A", "1"), ("PATH", "/opt")))["process"]["env"]
    assert env == ["PATH=/opt", "HOME=/box", "LANG=C.UTF-8", "A=1"]
    assert not any(e.startswith("TERM=") for e in env)  # nothing of the host's environment


def test_root_is_the_assembled_tree_and_every_namespace_is_new() -> None:
    c = config()
    # Writable for the Sentry (/box and /tmp are in it); the host's binds are read-only.
    assert c["root"] == {"path": "/run/x/root", "readonly": False}
    kinds = {n["type"] for n in c["linux"]["namespaces"]}
    assert kinds == {"pid", "network", "ipc", "uts", "mount"}
    assert c["linux"]["cgroupsPath"] == "/stockade/gvisor-1-1"
    assert "resources" not in c["linux"]  # the box cgroup's limits are ours, set before


def test_runsc_mounts_proc_and_the_scratchs_tmp_and_shm() -> None:
    """/, /usr and /box are one gofer mount, the root (gvisor_rootfs.assemble_root)."""
    mounts = {m["destination"]: m for m in config()["mounts"]}
    assert set(mounts) == {"/proc", "/tmp", "/dev/shm"}
    assert mounts["/proc"]["type"] == "proc"
    for dest, sub in (("/tmp", "tmp"), ("/dev/shm", "shm")):
        assert mounts[dest]["source"] == f"/run/x/scratch/{sub}"
        assert {"rw", "nosuid", "nodev"} <= set(mounts[dest]["options"])


def test_rlimits_are_the_container_tiers_with_nproc_as_the_pids_limit() -> None:
    lim = Limits(cpu_time_s=2.5, pids=16, fsize_bytes=8 * MIB, nofile=64, stack_bytes=None)
    got = {r["type"]: (r["soft"], r["hard"]) for r in config(limits=lim)["process"]["rlimits"]}
    assert got["RLIMIT_NPROC"] == (16, 16)
    assert got["RLIMIT_CPU"] == (4, 5)
    assert got["RLIMIT_FSIZE"] == (8 * MIB, 8 * MIB)
    assert got["RLIMIT_NOFILE"] == (64, 64)
    # The memory limit (256 MiB) as in a container box, but no more than the Sentry grows.
    assert got["RLIMIT_STACK"] == (gb.SENTRY_MAX_STACK_BYTES, gb.SENTRY_MAX_STACK_BYTES)
    assert got["RLIMIT_CORE"] == (0, 0)
    assert set(got) == {
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_NOFILE",
        "RLIMIT_STACK",
        "RLIMIT_MEMLOCK",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NPROC",
    }


def test_a_stack_limit_under_the_sentrys_ceiling_is_kept() -> None:
    for stack in (8 * MIB, gb.SENTRY_MAX_STACK_BYTES):
        lim = Limits(stack_bytes=stack)
        got = {r["type"]: (r["soft"], r["hard"]) for r in config(limits=lim)["process"]["rlimits"]}
        assert got["RLIMIT_STACK"] == (stack, stack)


def test_host_cgroup_gets_the_sentry_overhead_on_top() -> None:
    memory, pids = gb.host_cgroup_limits(Limits(memory_bytes=64 * MIB, pids=16))
    assert memory == 64 * MIB + gb.SENTRY_MEMORY_BYTES
    assert pids == gb.HOST_TASKS_BASE + 16 * gb.HOST_TASKS_PER_TASK
    assert gb.host_cgroup_limits(Limits(pids=4 * 1024 * 1024))[1] == gb.PID_MAX


def test_run_argv_has_a_private_root_no_network_and_logs_in_the_box_dir() -> None:
    argv = gb.run_argv("/usr/bin/runsc", "/run/s/state", "ptrace", "/run/s/b1", "gvisor-7-1")
    assert argv[0] == "/usr/bin/runsc"
    assert "--root=/run/s/state" in argv and "--platform=ptrace" in argv
    assert "--network=none" in argv
    assert "--ignore-cgroups" not in argv
    assert "--log=/run/s/b1/runsc.log" in argv
    run = argv.index("run")
    assert argv[run:] == [
        "run",
        "--bundle",
        "/run/s/b1",
        "--pid-file",
        "/run/s/b1/pid",
        "gvisor-7-1",
    ]


def test_exit_codes_read_back_as_wait_statuses() -> None:
    for code in (0, 1, 3, 127, 128):
        st = gb.wait_status_from_exit(code)
        assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == code
    st = gb.wait_status_from_exit(128 + signal.SIGSEGV)
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGSEGV
    st = gb.wait_status_from_exit(128 + signal.SIGKILL)
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL
    st = gb.wait_status_from_exit(255)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 255
