"""Where box cgroups go on cgroup2: a delegated unit's subtree, the root, or an error that names
the fix (pure), and the manager that puts them under the base it is given (a fake tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cgroups import CgroupLimits, CgroupOps, v2
from sandbox.cgroups.delegation import Placement, own_cgroup, plan_placement, unit_of
from sandbox.errors import SandboxError
from tests.unit.cgroup_fake import v2_tree

WORKER = "/system.slice/stockade-worker.service"


def test_own_cgroup_reads_the_unified_line() -> None:
    text = "1:name=systemd:/x\n0::/system.slice/a.service\n"
    assert own_cgroup(text) == "/system.slice/a.service"
    with pytest.raises(SandboxError, match="no cgroup2"):
        own_cgroup("4:memory:/x\n")


def test_unit_is_the_first_service_or_scope_on_the_path() -> None:
    assert unit_of(WORKER + "/supervisor") == (WORKER, "stockade-worker.service")
    user = "/user.slice/user-0.slice/user@0.service"
    assert unit_of(user + "/app.slice/x.service") == (user, "user@0.service")
    assert unit_of("/init") == ("", "")


def test_delegated_unit_gets_a_leaf_and_holds_the_boxes() -> None:
    assert plan_placement(WORKER, True, True) == Placement(
        WORKER, WORKER + "/supervisor", "stockade-worker.service"
    )
    # A second process of the same unit, already in the leaf, finds the same base.
    assert plan_placement(WORKER + "/supervisor", True, True).base == WORKER


def test_session_scope_without_delegation_names_the_fix() -> None:
    with pytest.raises(SandboxError) as e:
        plan_placement("/user.slice/user-0.slice/session-3.scope", True, False)
    assert "session-3.scope" in str(e.value) and "Delegate=yes" in str(e.value)
    assert "systemd-run --scope -p Delegate=yes" in str(e.value)


def test_without_a_unit_the_namespace_root_is_ours() -> None:
    # A plain host, or a container's private cgroup namespace (the entrypoint's /init leaf),
    # even where the host's /run/systemd shows through.
    assert plan_placement("/", False, None) == Placement("")
    assert plan_placement("/init", False, None) == Placement("")
    assert plan_placement("/init", True, None) == Placement("")


def test_manager_puts_boxes_under_the_unit_and_never_writes_above_it(tmp_path: Path) -> None:
    kernel, root, _ = v2_tree(tmp_path)
    cg = root / "sys/fs/cgroup"
    unit = cg / WORKER.lstrip("/")
    unit.mkdir(parents=True)
    kernel.populate(unit)
    (cg / "cgroup.subtree_control").write_text("")
    ops = CgroupOps(kernel.mkdir, kernel.rmdir, kernel.kill)
    mgr = v2.V2Manager(str(cg), ops, Placement(WORKER))
    box = mgr.create("1-1", CgroupLimits(64 << 20, 8))
    try:
        assert Path(box.paths[0]).parent == unit / "stockade"
        assert mgr.relative_parent == WORKER + "/stockade"
        assert (cg / "cgroup.subtree_control").read_text() == ""
        assert (unit / "stockade/1-1/pids.max").read_text() == "8"
    finally:
        mgr.close()
