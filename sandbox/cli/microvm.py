"""`stockade microvm prepare`: fetch the guest kernel, build the agent, the initramfs and the
layer disks of the images named (all images by default), ahead of the first microVM box."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sandbox.config import HostConfig
from sandbox.errors import SandboxError


def add_microvm_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("microvm", help="the microVM tier's kernel, agent and disks")
    sub = p.add_subparsers(dest="microvm_cmd", required=True)
    prep = sub.add_parser("prepare", help="make what every microVM needs (cached: once)")
    prep.add_argument("images", nargs="*", metavar="IMAGE", help="default: every image")
    bench = sub.add_parser("bench", help="cold and warm latency of a box (median)")
    bench.add_argument("--image", default="python3")
    bench.add_argument("-n", "--runs", type=int, default=3)


def run_microvm(args: argparse.Namespace) -> int:
    if args.microvm_cmd == "bench":
        return _bench(args)
    # Imported here: the CLI starts without the microvm package's imports.
    from sandbox.backends.microvm.disks import image_disks
    from sandbox.backends.microvm.prepare import prepare
    from sandbox.images.store import LayerError, LayerStore

    config = HostConfig.from_env()
    try:
        art = prepare(config.state_dir, refresh=True)
        print(f"kernel {art.kernel_version}: {art.vmlinux}")
        print(f"initramfs: {art.initramfs}")
        store = LayerStore(config.state_dir)
        for image in args.images or store.images():
            disks = image_disks(art.disk_dir, store.image_layers(image))
            print(f"{image}: {len(disks)} layer disk(s)")
    except (SandboxError, LayerError, OSError) as e:
        print(f"stockade microvm prepare: {e}", file=sys.stderr)
        return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    from sandbox.backends.microvm.bench import measure
    from sandbox.images.store import LayerStore

    config = HostConfig.from_env()
    try:
        measure(config, LayerStore(config.state_dir), args.image, args.runs, print)
    except (SandboxError, RuntimeError, OSError) as e:
        print(f"stockade microvm bench: {e}", file=sys.stderr)
        return 1
    return 0
