"""cgroups for boxes: v1 and v2 behind one interface, chosen once by probe()."""

from sandbox.cgroups.fs import CgroupOps
from sandbox.cgroups.host import delegated_scope_argv, probe
from sandbox.cgroups.manager import (
    BoxCgroup,
    CgroupLimits,
    CgroupManager,
    CgroupMount,
    choose_hierarchy,
    join_in_child,
    parse_mountinfo,
)

__all__ = [
    "BoxCgroup",
    "CgroupLimits",
    "CgroupManager",
    "CgroupMount",
    "CgroupOps",
    "choose_hierarchy",
    "delegated_scope_argv",
    "join_in_child",
    "parse_mountinfo",
    "probe",
]
