"""`python -m tests.v2lab run [--systemd] -- CMD...`: CMD as root in a cgroup2 lab VM."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from sandbox.config import STATE_DIR
from sandbox.images.store import LayerStore
from tests.v2lab.boot import prepare_boot
from tests.v2lab.image import lab_disks
from tests.v2lab.vm import (
    CHECKOUT,
    HERE,
    LabPlan,
    guest_env,
    job_script,
    make_scratch,
    run,
    shares_for,
)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.v2lab")
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="run CMD as root in the checkout, in the lab VM")
    r.add_argument("--systemd", action="store_true", help="systemd as PID 1 (cgroup2 only)")
    r.add_argument("--timeout", type=float, default=1800.0, help="seconds before QEMU is killed")
    r.add_argument("--memory-mib", type=int, default=3072)
    r.add_argument("--cpus", type=int, default=2)
    r.add_argument("--keep", action="store_true", help="keep the run directory (console.log)")
    r.add_argument("cmd", nargs="+", help="the command (after --)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("v2lab: run it as root (the layer store needs it)", file=sys.stderr)
        return 2
    state = STATE_DIR.as_str()
    store = LayerStore(state)
    disks = lab_disks(store, os.path.join(state, "microvm", "disks"))
    boot = prepare_boot(state)
    run_dir = tempfile.mkdtemp(prefix="run-", dir=os.path.join(state, "v2lab"))
    try:
        shares = shares_for(CHECKOUT)
        job = {
            "cmd.sh": job_script(args.cmd, str(CHECKOUT), guest_env()),
            "shares": "".join(f"s{i} {path}\n" for i, path in enumerate(shares)),
            "guest.sh": (HERE / "guest.sh").read_text(),
            "v2lab-job.service": (HERE / "v2lab-job.service").read_text(),
        }
        scratch = os.path.join(run_dir, "scratch.img")
        make_scratch(scratch, job)
        plan = LabPlan(
            vmlinux=boot.vmlinux,
            initramfs=boot.initramfs,
            layer_disks=tuple(disks),
            scratch=scratch,
            shares=shares,
            systemd=args.systemd,
            memory_mib=args.memory_mib,
            vcpus=args.cpus,
            console_log=os.path.join(run_dir, "console.log"),
            output=os.path.join(run_dir, "output"),
        )
        return run(plan, args.timeout)
    finally:
        if args.keep:
            print(f"v2lab: kept {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
