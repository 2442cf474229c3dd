"""Latency of the box's network namespace: fresh unshare, lo up, veth attach."""

from __future__ import annotations

import os
import shutil
import struct
import sys
import threading
import time
from collections.abc import Callable

from sandbox import network
from sandbox import syscalls as sc

RUNS = 200


def us(samples: list[float]) -> str:
    s = sorted(samples)
    return f"median {s[len(s) // 2] * 1e6:.0f} us, p90 {s[int(len(s) * 0.9)] * 1e6:.0f} us"


def in_child(fn: Callable[[], float]) -> float:
    """Time fn in a forked child, as the box's init runs it (its pages copied on write)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, struct.pack("d", fn()))
        os._exit(0)
    os.close(w)
    data = os.read(r, 8)
    os.close(r)
    os.waitpid(pid, 0)
    return float(struct.unpack("d", data)[0])


def unshare_and_lo() -> float:
    start = time.perf_counter()
    sc.unshare(sc.CLONE_NEWNET)
    network.bring_up_loopback()
    return time.perf_counter() - start


def lo_warm() -> list[float]:
    samples: list[float] = []

    def loop() -> None:  # a thread of its own: unshare moves only this thread
        for _ in range(RUNS):
            sc.unshare(sc.CLONE_NEWNET)
            start = time.perf_counter()
            network.bring_up_loopback()
            samples.append(time.perf_counter() - start)

    t = threading.Thread(target=loop)
    t.start()
    t.join()
    return samples


def attach_detach() -> tuple[list[float], list[float]]:
    cfg = network.NetConfig()
    network.ensure_firewall(cfg)
    attach: list[float] = []
    detach: list[float] = []
    try:
        for _ in range(20):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                sc.unshare(sc.CLONE_NEWNET)
                os.read(r, 1)
                os._exit(0)
            start = time.perf_counter()
            net = network.GrantedNetwork.attach(16383, pid, cfg)
            mid = time.perf_counter()
            net.detach()
            attach.append(mid - start)
            detach.append(time.perf_counter() - mid)
            os.write(w, b"x")
            os.waitpid(pid, 0)
            os.close(r)
            os.close(w)
    finally:
        network.remove_firewall()
    return attach, detach


def lo_in_child() -> float:
    sc.unshare(sc.CLONE_NEWNET)
    start = time.perf_counter()
    network.bring_up_loopback()
    return time.perf_counter() - start


def row(label: str, samples: list[float]) -> None:
    print(f"{label:<52} {us(samples)}")


def main() -> int:
    if os.geteuid() != 0:
        print("needs root: network namespaces")
        return 1
    row(
        "unshare(CLONE_NEWNET) + lo up, in a forked child",
        [in_child(unshare_and_lo) for _ in range(RUNS)],
    )
    row("bring_up_loopback alone, in a forked child", [in_child(lo_in_child) for _ in range(RUNS)])
    row("bring_up_loopback alone, warm (no fork)", lo_warm())
    if shutil.which("nft"):
        attach, detach = attach_detach()
        row("GrantedNetwork.attach (20 runs)", attach)
        row("GrantedNetwork.detach (20 runs)", detach)
    return 0


if __name__ == "__main__":
    sys.exit(main())
