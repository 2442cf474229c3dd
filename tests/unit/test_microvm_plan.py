"""The microVM tier's pure parts: QEMU's and the kernel's command lines, the agent protocol's
framing and records, the pool policy, the kernel and initramfs helpers."""

from __future__ import annotations

import lzma
import re
import struct
import zlib
from pathlib import Path

import pytest

from sandbox.backends.microvm import protocol
from sandbox.backends.microvm.initramfs import Entry, cpio_newc
from sandbox.backends.microvm.jail import INITRAMFS, KERNEL, jail_plan
from sandbox.backends.microvm.jail import NAMESPACES as JAIL_NAMESPACES
from sandbox.backends.microvm.kernel import (
    extract_vmlinux,
    load_order,
    module_depends,
    real_package,
)
from sandbox.backends.microvm.pool import POOL, PoolKey, next_to_start
from sandbox.backends.microvm.qemu_plan import VmPlan, kernel_cmdline, qemu_argv, vm_memory_mib
from sandbox.syscalls import CLONE_NEWNET, CLONE_NEWPID


def plan(**kw: object) -> VmPlan:
    base: dict[str, object] = dict(
        vmlinux="/k/vmlinux",
        initramfs="/k/i.cpio",
        disk_fds=(7, 8),
        memory_mib=512,
        tsc_khz=2100000,
    )
    base.update(kw)
    return VmPlan(**base)  # type: ignore[arg-type]


def test_qemu_argv_is_sandboxed_and_has_no_network_or_defaults() -> None:
    argv = qemu_argv(plan())
    assert argv[0] == "qemu-system-x86_64"
    joined = " ".join(argv)
    assert "-nodefaults" in argv and "-no-user-config" in argv
    sandbox = argv[argv.index("-sandbox") + 1]
    for part in (
        "on",
        "obsolete=deny",
        "elevateprivileges=deny",
        "spawn=deny",
        "resourcecontrol=deny",
    ):
        assert part in sandbox.split(",")
    assert "-netdev" not in argv and "-nic" not in argv and "virtio-net" not in joined
    assert argv[argv.index("-m") + 1] == "512"
    assert argv[argv.index("-M") + 1].startswith("microvm")
    assert "tcg" in argv[argv.index("-accel") + 1]


def test_qemu_argv_attaches_every_layer_read_only_by_inherited_fd() -> None:
    argv = qemu_argv(plan())
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert len(drives) == 2
    assert all("readonly=on" in d and "file=/dev/fdset/" in d for d in drives)
    assert "fd=7,set=1,opaque=L0" in argv and "fd=8,set=2,opaque=L1" in argv
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert "virtserialport,chardev=chan,name=stockade" in devices  # the agent's channel
    devices = [d for d in devices if d.startswith("virtio-blk")]
    assert devices == [
        "virtio-blk-device,drive=L0,serial=L0",
        "virtio-blk-device,drive=L1,serial=L1",
    ]


def test_qemu_argv_kvm() -> None:
    argv = qemu_argv(plan(accel="kvm"))
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"


def test_kernel_cmdline() -> None:
    line = kernel_cmdline(plan()).split()
    assert "tsc_early_khz=2100000" in line
    assert "console=" in line and "quiet" in line and "panic=-1" in line
    assert "stockade.layers=2" in line and "stockade.fs=erofs" in line
    assert "console=ttyS0" in kernel_cmdline(plan(console_fd=5)).split()
    assert "socket,id=log,fd=5" in qemu_argv(plan(console_fd=5))
    assert not any(
        a.startswith("tsc_early_khz") for a in kernel_cmdline(plan(tsc_khz=None)).split()
    )


def test_vm_memory_leaves_room_above_the_box_limit() -> None:
    assert vm_memory_mib(256 << 20) == 512
    assert vm_memory_mib(64 << 20) == 512
    big = vm_memory_mib(1 << 30)
    assert big >= 1024 + 192 and big % 256 == 0


def test_frames_round_trip_after_noise_and_through_split_reads() -> None:
    # Noise before the first frame (a console sharing the port) is skipped.
    data = b"kernel noise\r\n\xfe\xfe" + protocol.frame(protocol.STDOUT, b"hi")
    data += protocol.frame(protocol.RESULT, b"x" * 1000)
    reader = protocol.FrameReader()
    got = []
    for i in range(0, len(data), 7):  # a serial port delivers any split
        got += reader.feed(data[i : i + 7])
    assert got == [(protocol.STDOUT, b"hi"), (protocol.RESULT, b"x" * 1000)]


def test_frame_with_a_bad_checksum_is_dropped() -> None:
    good = protocol.frame(protocol.STDERR, b"ok")
    bad = bytearray(protocol.frame(protocol.STDOUT, b"evil"))
    bad[-1] ^= 0xFF
    assert protocol.FrameReader().feed(bytes(bad) + good) == [(protocol.STDERR, b"ok")]


def test_once_in_step_a_bad_frame_ends_the_channel() -> None:
    """A program's output is a frame's payload: after a skip it could be read as frames of
    its own (a forged RESULT), so after the first good frame nothing is skipped."""
    forged = protocol.frame(protocol.RESULT, b"\0" * 40)
    reader = protocol.FrameReader()
    assert reader.feed(protocol.frame(protocol.HELLO, b"hi")) == [(protocol.HELLO, b"hi")]
    bad = bytearray(protocol.frame(protocol.STDOUT, forged))
    bad[-1] ^= 0xFF
    with pytest.raises(protocol.ProtocolError, match="checksum"):
        reader.feed(bytes(bad))
    with pytest.raises(protocol.ProtocolError, match="outside a frame"):
        protocol.FrameReader().feed(protocol.frame(protocol.HELLO, b"") + b"junk")
    # Split reads of good frames are still fine once in step.
    reader = protocol.FrameReader()
    data = protocol.frame(protocol.HELLO, b"") + protocol.frame(protocol.STDOUT, forged)
    got = [f for i in range(0, len(data), 3) for f in reader.feed(data[i : i + 3])]
    assert got == [(protocol.HELLO, b""), (protocol.STDOUT, forged)]


def test_the_host_holds_a_guest_to_the_caps() -> None:
    out = protocol.Outcome(output_cap=4, files_cap=3)
    out.take(protocol.STDOUT, b"ab")
    out.take(protocol.STDERR, b"cd")
    with pytest.raises(protocol.ProtocolError, match="output"):
        out.take(protocol.STDOUT, b"e")
    files = protocol.Outcome(files_cap=3)
    files.take(protocol.FILE, b"/box/a\0abc")
    with pytest.raises(protocol.ProtocolError, match="files"):
        files.take(protocol.FILE, b"/box/b\0d")
    done = protocol.Outcome()
    done.take(protocol.FAIL, b"x")
    with pytest.raises(protocol.ProtocolError, match="after the result"):
        done.take(protocol.STDOUT, b"late")
    with pytest.raises(protocol.ProtocolError, match="result of 3 bytes"):
        protocol.Outcome().take(protocol.RESULT, b"abc")
    seen: list[bytes] = []
    piped = protocol.Outcome(on_stdout=seen.append)
    piped.take(protocol.STDOUT, b"to the caller")
    assert seen == [b"to the caller"] and piped.stdout == b""


def test_frames_of_a_type_no_job_sends_count_against_the_caps() -> None:
    """An unknown type (or one of the host's own, sent back) is dropped but charged, frame
    and all, against the output cap it shares with stdout and stderr; so is an empty output
    frame, which the agent never sends. Before: skipped for free, without end."""
    out = protocol.Outcome(output_cap=100)
    out.take(ord("Z"), b"x" * 50)
    assert not out.done and out.stdout == b"" and out.stderr == b""
    with pytest.raises(protocol.ProtocolError, match="frames of type 90: more than the 100"):
        out.take(ord("Z"), b"x" * 50)  # 2 * (50 + 13) > 100
    for kind in (protocol.HELLO, protocol.JOB, protocol.WARM, protocol.STDIN, 0, 255):
        flood = protocol.Outcome(output_cap=1000)
        with pytest.raises(protocol.ProtocolError, match="more than the 1000 bytes"):
            for _ in range(1000 // protocol.FRAME_OVERHEAD + 1):
                flood.take(kind, b"")
    empty = protocol.Outcome(output_cap=1000)
    with pytest.raises(protocol.ProtocolError, match="output: more than"):
        for _ in range(1000 // protocol.FRAME_OVERHEAD + 1):
            empty.take(protocol.STDOUT, b"")
    shared = protocol.Outcome(output_cap=20)
    shared.take(protocol.STDOUT, b"x" * 7)
    shared.take(ord("?"), b"")  # 7 + 13 = 20: at the cap, not past it
    with pytest.raises(protocol.ProtocolError):
        shared.take(protocol.STDERR, b"y")


def test_the_largest_collected_file_fits_one_frame_and_the_agent_agrees() -> None:
    """A FILE frame carries the path, a NUL and the content: max_file_bytes is what fits
    under MAX_FRAME. The agent refuses a larger file with a message (agent_run.h) where it
    used to send a frame the host refused as a broken protocol (an XX)."""
    path = "/box/big"
    fits = protocol.max_file_bytes(path)
    assert fits == protocol.MAX_FRAME - len(path) - 1 < 64 << 20
    in_step = protocol.FrameReader()
    in_step.feed(protocol.frame(protocol.HELLO, b""))
    head = protocol.MAGIC + struct.pack("<BI", protocol.FILE, len(path) + 1 + fits)
    assert in_step.feed(head) == []  # taken: it waits for the payload
    over = protocol.FrameReader()
    over.feed(protocol.frame(protocol.HELLO, b""))
    with pytest.raises(protocol.ProtocolError, match="a frame of"):
        over.feed(protocol.MAGIC + struct.pack("<BI", protocol.FILE, len(path) + 2 + fits))
    agent = Path(protocol.__file__).parent
    source = (agent / "agent.c").read_text()
    m = re.search(r"#define MAX_FRAME \((\d+)u << (\d+)\)", source)
    assert m and int(m.group(1)) << int(m.group(2)) == protocol.MAX_FRAME
    run_h = (agent / "agent_run.h").read_text()
    assert "MAX_FRAME - (uint32_t)strlen(path) - 1" in run_h  # max_file_bytes, in C


def test_frame_layout_matches_the_agent() -> None:
    f = protocol.frame(ord("O"), b"abc")
    assert f[:4] == b"\xfeSTK" and f[4] == ord("O")
    assert struct.unpack_from("<I", f, 5)[0] == 3 and f[9:12] == b"abc"
    assert struct.unpack_from("<I", f, 12)[0] == zlib.crc32(f[4:12])


def _records(payload: bytes) -> list[tuple[str, bytes]]:
    out, at = [], 0
    while at < len(payload):
        key, n = chr(payload[at]), struct.unpack_from("<I", payload, at + 1)[0]
        out.append((key, payload[at + 5 : at + 5 + n]))
        at += 5 + n
    return out


def test_job_records() -> None:
    limits = {name: i + 1 for i, name in enumerate(protocol.LIMIT_FIELDS)}
    job = protocol.Job(
        argv=("python3", "-c", "print(1)"),
        env=(("PATH", "/usr/bin"),),
        files=(("/box/a.py", b"print(2)", 0o644),),
        stdin=b"in",
        limits=limits,
        rlimits=((7, 256, -1),),
        seccomp_bpf=b"\x06\x00\x00\x00\x00\x00\xff\x7f",
        collect=("/box/out/",),
        entropy=b"e" * 32,
        now_ns=123,
    )
    recs = _records(job.encode())
    assert [v for k, v in recs if k == "A"] == [b"python3", b"-c", b"print(1)"]
    assert ("E", b"PATH=/usr/bin") in recs
    assert ("F", struct.pack("<I", 0o644) + b"/box/a.py\0print(2)") in recs
    assert ("I", b"in") in recs and ("C", b"/box/out/") in recs
    (lim,) = [v for k, v in recs if k == "L"]
    assert struct.unpack(f"<{len(protocol.LIMIT_FIELDS)}Q", lim) == tuple(range(1, 11))
    (rl,) = [v for k, v in recs if k == "r"]
    assert struct.unpack("<3Q", rl) == (7, 256, (1 << 64) - 1)  # RLIM_INFINITY as the kernel's
    assert ("T", struct.pack("<Q", 123)) in recs


def test_outcome_from_frames() -> None:
    out = protocol.Outcome()
    out.take(protocol.STDOUT, b"a")
    out.take(protocol.STDOUT, b"b")
    out.take(protocol.FILE, b"/box/x\0data")
    out.take(protocol.REFUSED, b"/box/l\0a symlink (not followed)")
    assert not out.done
    out.take(protocol.RESULT, struct.pack("<iIIIQQQ", 0, 1, 0, 1, 1_500_000, 2_000_000, 4096) + b"")
    assert out.done and out.stdout == b"ab" and out.files == {"/box/x": b"data"}
    assert out.refused == {"/box/l": "/box/l: a symlink (not followed)"}
    assert out.oom_killed and out.wall_exceeded and not out.output_exceeded
    assert out.cpu_time_s == 1.5 and out.wall_time_s == 2.0 and out.memory_peak == 4096
    never = protocol.Outcome()
    never.take(protocol.RESULT, struct.pack("<iIIIQQQ", -1, 0, 0, 0, 0, 0, 0) + b"x: No such file")
    assert never.wait_status is None and never.exec_error == "x: No such file"


def test_qemu_jail_plan() -> None:
    """QEMU's root: its runtime directories bound read-only at their own paths, merged-/usr
    symlinks as symlinks, its binary where no bound directory holds it, the kernel and the
    initramfs at fixed paths, /dev/kvm only on KVM; nothing else of the host's."""
    links = {"/lib": "usr/lib", "/lib64": "usr/lib64"}
    dirs = ("/usr/lib", "/usr/lib64", "/usr/share/qemu")
    tcg = jail_plan("/run/x", "/usr/bin/qemu", "/s/vmlinux", "/s/i.cpio", False, links, dirs)
    assert tcg.qemu == "/usr/bin/qemu" and tcg.mount_point == "/run/x"
    assert [(b.source, b.target, b.is_dir, b.device) for b in tcg.binds] == [
        ("/usr/lib", "/usr/lib", True, False),
        ("/usr/lib64", "/usr/lib64", True, False),
        ("/usr/share/qemu", "/usr/share/qemu", True, False),
        ("/usr/bin/qemu", "/usr/bin/qemu", False, False),
        ("/s/vmlinux", KERNEL, False, False),
        ("/s/i.cpio", INITRAMFS, False, False),
    ]
    assert tcg.symlinks == (("/lib", "usr/lib"), ("/lib64", "usr/lib64"))
    kvm = jail_plan("/run/x", "/usr/lib/qemu", "/s/v", "/s/i", True, {}, ("/usr/lib",))
    assert [b.target for b in kvm.binds] == ["/usr/lib", KERNEL, INITRAMFS, "/dev/kvm"]
    assert kvm.binds[-1].device and not any(b.device for b in kvm.binds[:-1])
    assert JAIL_NAMESPACES & CLONE_NEWPID and JAIL_NAMESPACES & CLONE_NEWNET


def test_pool_policy() -> None:
    a, b = PoolKey("python3", 512), PoolKey("gcc", 512)
    assert next_to_start({a: 0, b: 1}, {}, per_key=1, max_starting=1) == a
    assert next_to_start({a: 1, b: 1}, {}, per_key=1, max_starting=1) is None
    assert next_to_start({a: 0}, {a: 1}, per_key=1, max_starting=2) is None  # already booting
    assert next_to_start({a: 0, b: 0}, {b: 1}, per_key=1, max_starting=1) is None  # bounded
    assert next_to_start({a: 0, b: 0}, {b: 1}, per_key=1, max_starting=2) == a
    assert next_to_start({}, {}, per_key=0, max_starting=1) is None


def test_pool_size_from_env() -> None:
    assert POOL.as_int({}) == 1
    assert POOL.as_int({"STOCKADE_MICROVM_POOL": ""}) == 1
    assert POOL.as_int({"STOCKADE_MICROVM_POOL": "3"}) == 3
    assert POOL.as_int({"STOCKADE_MICROVM_POOL": "0"}) == 0
    with pytest.raises(ValueError, match="STOCKADE_MICROVM_POOL: must be at least 0"):
        POOL.as_int({"STOCKADE_MICROVM_POOL": "-1"})


def test_real_package_and_module_order() -> None:
    assert real_package("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n") == (
        "linux-image-6.1.0-56-amd64"
    )
    ko = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0"
    assert module_depends(ko) == ("virtio", "virtio_ring")
    assert module_depends(b"\0depends=\0") == ()
    deps = {"virtio_blk": ("virtio", "virtio_ring"), "virtio_ring": ("virtio",), "virtio": ()}
    assert load_order(("virtio_blk",), deps) == ["virtio", "virtio_ring", "virtio_blk"]
    assert load_order(("builtin_only",), deps) == []
    with pytest.raises(ValueError, match="cycle"):
        load_order(("a",), {"a": ("b",), "b": ("a",)})


def test_extract_vmlinux_finds_the_xz_elf() -> None:
    elf = b"\x7fELF" + bytes(range(256)) * 10
    bz = (
        b"MZ setup code"
        + b"\xfd7zXZ\x00 not a stream"
        + lzma.compress(elf, lzma.FORMAT_XZ)
        + b"tail"
    )
    assert extract_vmlinux(bz) == elf
    with pytest.raises(ValueError):
        extract_vmlinux(b"no kernel here")


def test_cpio_newc_layout() -> None:
    data = cpio_newc(
        [
            Entry("init", 0o755, b"abc"),
            Entry("dev", 0o755),
            Entry("bin/sh", 0o777, target="busybox"),
        ]
    )
    assert data.startswith(b"070701")
    assert b"init\0" in data and b"abc" in data and b"TRAILER!!!\0" in data
    assert len(data) % 4 == 0
    # mode of the first entry: a regular file 0755
    assert int(data[14:22], 16) == 0o100755


def test_verdicts_from_the_agent_and_from_the_host_kill() -> None:
    from sandbox.backends.microvm.verdict import box_result
    from sandbox.result import Status
    from sandbox.spec import BoxSpec, Limits

    spec = BoxSpec(argv=("x",), limits=Limits(cpu_time_s=1.0, wall_time_s=2.0))
    ok = protocol.Outcome()
    ok.take(protocol.STDOUT, b"hi")
    ok.take(protocol.RESULT, struct.pack("<iIIIQQQ", 0, 0, 0, 0, 10_000, 20_000, 1 << 20))
    r = box_result(spec, ok, 0.5, "microvm/tcg")
    assert (r.status, r.stdout, r.memory, r.runtime) == (Status.OK, b"hi", 1 << 20, "microvm/tcg")
    mle = protocol.Outcome()
    mle.take(protocol.RESULT, struct.pack("<iIIIQQQ", 9, 1, 0, 0, 10_000, 20_000, 64 << 20))
    assert box_result(spec, mle, 0.5, "microvm/tcg").status is Status.MLE
    hung = protocol.Outcome()  # the agent never reported: the host's wall kill
    r = box_result(spec, hung, 3.0, "microvm/tcg")
    assert r.status is Status.TO and "the host stopped the VM" in r.message
    broken = protocol.Outcome()
    broken.take(protocol.FAIL, b"root: mount(overlay): ENOENT")
    r = box_result(spec, broken, 0.1, "microvm/tcg")
    assert r.status is Status.XX and r.message == "guest agent: root: mount(overlay): ENOENT"


def test_host_wall_kill_leaves_time_to_stream_what_the_box_may_send() -> None:
    from sandbox.backends.microvm.backend import HOST_MARGIN_S, host_wall_s
    from sandbox.spec import MIB, BoxSpec, Limits

    lim = Limits(wall_time_s=2.0, output_bytes=0)
    assert host_wall_s(BoxSpec(argv=("x",), limits=lim)) == 2.0 + HOST_MARGIN_S
    big = BoxSpec(argv=("x",), limits=lim, collect=("out",), collect_max_bytes=64 * MIB)
    assert host_wall_s(big) > 2.0 + HOST_MARGIN_S + 5


def test_pool_keeps_learned_keys_warm_and_take_waits_for_a_boot_under_way() -> None:
    import threading
    import time

    from sandbox.backends.microvm.pool import VmPool

    started: list[PoolKey] = []
    discarded: list[str] = []
    gate = threading.Event()

    def start(key: PoolKey) -> str:
        started.append(key)
        gate.wait(5)
        return f"vm{len(started)}"

    pool: VmPool[str] = VmPool(start, discarded.append, per_key=1)
    key = PoolKey("python3", 512)
    try:
        assert pool.take(key) is None  # unknown key: nothing ready, nothing booting
        deadline = time.monotonic() + 5
        while not started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started == [key]  # the pool learned the key and boots for it
        threading.Timer(0.2, gate.set).start()
        t = time.monotonic()
        assert pool.take(key, wait_s=5) == "vm1"  # waited for the boot under way
        assert 0.1 < time.monotonic() - t < 4
        assert pool.wait_ready(key, 5)  # and refilled
    finally:
        pool.close()
    assert discarded == ["vm2"]  # close() ends what was not taken


def test_pool_keeps_only_the_most_recent_keys_warm_and_gives_a_vm_up() -> None:
    """Each ready VM holds a VM slot: past max_keys, the least recently asked-for key is
    dropped and its VMs discarded; give_up_one frees a slot for a box that needs one."""
    import threading
    import time

    from sandbox.backends.microvm.pool import VmPool

    lock = threading.Lock()
    made: list[str] = []
    discarded: list[str] = []

    def start(key: PoolKey) -> str:
        with lock:
            made.append(f"{key.image}-{len(made)}")
            return made[-1]

    pool: VmPool[str] = VmPool(start, discarded.append, per_key=1, max_keys=2)
    a, b, c = (PoolKey(name, 256) for name in "abc")
    try:
        for key in (a, b):
            assert pool.take(key) is None
            assert pool.wait_ready(key, 5)
        assert pool.take(c) is None  # a is the least recently asked-for: dropped
        assert pool.wait_ready(c, 5)
        assert [vm for vm in discarded if vm.startswith("a-")] == [made[0]]
        assert pool.take(a) is None  # forgotten, so not warm; b is dropped now
        assert pool.wait_ready(a, 5)
        time.sleep(0.1)
        assert len([vm for vm in made if vm.startswith("b-")]) == 1  # never booted again
        assert pool.give_up_one()  # c's VM (c is the older of the two kept)
        assert discarded[-1].startswith("c-")
    finally:
        pool.close()
