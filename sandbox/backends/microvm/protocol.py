"""The host <-> guest agent protocol: framing, the JOB record encoding, the RESULT layout.

One byte stream carries it: here a virtio-serial port (the guest's /dev/vport0p1, named by
stockade.chan= on the kernel command line); ttyS0 works too, slowly. Nothing in it is
QEMU's. Another VMM (Firecracker, cloud-hypervisor) reuses the same kernel, initramfs and
agent: boot them with kernel_cmdline()'s arguments, attach each layer as a virtio disk with
serial "L<n>", and connect a serial console or virtio-console (stockade.chan=ttyS0 or hvc0)
to a FrameReader.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

MAGIC = b"\xfeSTK"
MAX_FRAME = 64 << 20  # agent.c's MAX_FRAME
_HEAD = struct.Struct("<BI")
# A frame's bytes besides its payload: MAGIC, type, length, crc32.
FRAME_OVERHEAD = len(MAGIC) + _HEAD.size + 4

# Frame types (agent.c's enum).
HELLO = ord("H")
JOB = ord("J")
STDOUT = ord("O")
STDERR = ord("E")
FILE = ord("F")
REFUSED = ord("X")
RESULT = ord("R")
FAIL = ord("S")
STDIN = ord("I")  # host -> guest, interactive stdin; an empty one is EOF
WARM = ord("W")  # a JOB of the host's own, whose frames are dropped; HELLO follows it

# The L record: u64 each, in this order (agent_job.h's struct job).
LIMIT_FIELDS = (
    "cpu_ms",
    "wall_ms",
    "memory",
    "pids",
    "output",
    "scratch",
    "inodes",
    "uid",
    "collect_max",
    "tick_ms",
)
_RESULT = struct.Struct("<iIIIQQQ")


def max_file_bytes(path: str) -> int:
    """The largest collected file one FILE frame carries beside its path and NUL (agent.c
    refuses a larger one with a message instead of sending a frame the host would refuse)."""
    return MAX_FRAME - len(path.encode()) - 1


def frame(kind: int, payload: bytes) -> bytes:
    """MAGIC, type, length, payload, crc32 of type|length|payload (all little-endian)."""
    head = _HEAD.pack(kind, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return MAGIC + head + payload + struct.pack("<I", crc)


class FrameReader:
    """Incremental decoder: feed bytes as they arrive, take whole frames. Bytes outside a
    frame (a kernel message on a shared console) and frames with a bad checksum are skipped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0
        self.synced = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while True:
            if self.synced and self._buf:
                self._check_next()
            at = self._buf.find(MAGIC)
            if at < 0:
                keep = len(MAGIC) - 1  # a magic split across two reads
                self.skipped += max(len(self._buf) - keep, 0)
                del self._buf[: max(len(self._buf) - keep, 0)]
                return out
            self.skipped += at
            del self._buf[:at]
            if len(self._buf) < 9:
                return out
            kind, length = _HEAD.unpack_from(self._buf, 4)
            if length > MAX_FRAME:
                del self._buf[:1]
                continue
            end = 9 + length + 4
            if len(self._buf) < end:
                return out
            payload = bytes(self._buf[9 : 9 + length])
            (crc,) = struct.unpack_from("<I", self._buf, 9 + length)
            if zlib.crc32(payload, zlib.crc32(bytes(self._buf[4:9]))) != crc:
                del self._buf[:1]
                continue
            del self._buf[:end]
            out.append((kind, payload))
            self.synced = True

    def _check_next(self) -> None:
        """Once in step, every byte belongs to a frame: a program's output inside one must
        never be read as a frame of its own after a skip, so a bad frame ends the channel."""
        head = bytes(self._buf[:9])
        if not MAGIC.startswith(head[:4]):
            raise ProtocolError(f"bytes outside a frame: {head[:9]!r}")
        if len(head) < 9:
            return
        length = _HEAD.unpack_from(head, 4)[1]
        if length > MAX_FRAME:
            raise ProtocolError(f"a frame of {length} bytes (at most {MAX_FRAME})")
        end = 9 + length + 4
        if len(self._buf) >= end:
            (crc,) = struct.unpack_from("<I", self._buf, 9 + length)
            if zlib.crc32(bytes(self._buf[9 : 9 + length]), zlib.crc32(head[4:9])) != crc:
                raise ProtocolError("a frame with a bad checksum")


class ProtocolError(ValueError):
    """The guest broke the protocol: a compromised guest, or a broken agent. An XX."""


@dataclass(frozen=True)
class Job:
    """Everything the agent needs for one box; encode() gives the JOB payload."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, bytes, int], ...]  # normalised box path, content, mode
    stdin: bytes
    limits: dict[str, int]  # LIMIT_FIELDS
    rlimits: tuple[tuple[int, int, int], ...]
    seccomp_bpf: bytes
    collect: tuple[str, ...]
    entropy: bytes
    now_ns: int
    interactive: bool = False  # stdin comes as STDIN frames, not in the job

    def encode(self) -> bytes:
        parts: list[bytes] = []
        for a in self.argv:
            parts.append(_record("A", a.encode()))
        for k, v in self.env:
            parts.append(_record("E", f"{k}={v}".encode()))
        for path, content, mode in self.files:
            parts.append(_record("F", struct.pack("<I", mode) + path.encode() + b"\0" + content))
        parts.append(_record("I", self.stdin))
        values = [self.limits[name] for name in LIMIT_FIELDS]
        parts.append(_record("L", struct.pack(f"<{len(values)}Q", *values)))
        for res, soft, hard in self.rlimits:
            parts.append(_record("r", struct.pack("<3Q", res, _u64(soft), _u64(hard))))
        parts.append(_record("S", self.seccomp_bpf))
        for path in self.collect:
            parts.append(_record("C", path.encode()))
        parts.append(_record("R", self.entropy))
        parts.append(_record("T", struct.pack("<Q", self.now_ns)))
        if self.interactive:
            parts.append(_record("i", b""))
        return b"".join(parts)


def _record(key: str, value: bytes) -> bytes:
    return key.encode() + struct.pack("<I", len(value)) + value


def _u64(value: int) -> int:
    # RLIM_INFINITY is -1 in Python's resource module and ~0 for the kernel.
    return value & ((1 << 64) - 1)


@dataclass
class Outcome:
    """What the agent reported for one job, gathered from its frames."""

    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    files: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    wait_status: int | None = None
    oom_killed: bool = False
    output_exceeded: bool = False
    wall_exceeded: bool = False
    cpu_time_s: float = 0.0
    wall_time_s: float = 0.0
    memory_peak: int = 0
    exec_error: str = ""
    failure: str = ""  # the agent's own failure (a FAIL frame): an XX
    done: bool = False
    # What the agent may send at most (it enforces the same caps): the host holds a guest
    # that sends more to them, whatever ran in it.
    output_cap: int = MAX_FRAME
    files_cap: int = MAX_FRAME
    on_stdout: Callable[[bytes], None] | None = None  # stdout to a caller's pipe instead
    _output: int = 0
    _file_bytes: int = 0

    def take(self, kind: int, payload: bytes) -> None:
        """Fold one frame in; RESULT and FAIL end the job."""
        if self.done:
            raise ProtocolError("a frame after the result")
        if kind in (STDOUT, STDERR):
            # The agent never sends an empty one: a flood of them costs their size.
            self._charge(len(payload) or FRAME_OVERHEAD, "output")
            if kind == STDERR:
                self.stderr += payload
            elif self.on_stdout is not None:
                self.on_stdout(payload)
            else:
                self.stdout += payload
        elif kind in (FILE, REFUSED):
            path, _, rest = payload.partition(b"\0")
            name = path.decode("utf-8", "replace")
            self._file_bytes += len(rest) if kind == FILE else 0
            if self._file_bytes > self.files_cap or len(self.files) + len(self.refused) > 2 * 4096:
                raise ProtocolError("more collected files than the box may send")
            if kind == FILE:
                self.files[name] = rest
            else:
                self.refused[name] = f"{name}: {rest.decode('utf-8', 'replace')[:200]}"
        elif kind == RESULT:
            if len(payload) < _RESULT.size:
                raise ProtocolError(f"a result of {len(payload)} bytes")
            status, oom, ole, wall_x, cpu_us, wall_us, peak = _RESULT.unpack_from(payload)
            self.wait_status = None if status < 0 else status
            self.oom_killed = bool(oom)
            self.output_exceeded = bool(ole)
            self.wall_exceeded = bool(wall_x)
            self.cpu_time_s = cpu_us / 1e6
            self.wall_time_s = wall_us / 1e6
            self.memory_peak = peak
            self.exec_error = payload[_RESULT.size :].decode("utf-8", "replace")[:500]
            self.done = True
        elif kind == FAIL:
            self.failure = payload.decode("utf-8", "replace")[:500]
            self.done = True
        else:
            # A kind no job sends (unknown, or one of the host's own): dropped, but not for
            # free, or a guest could stream frames without end under no cap at all.
            self._charge(len(payload) + FRAME_OVERHEAD, f"frames of type {kind}")

    def _charge(self, n: int, what: str) -> None:
        self._output += n
        if self._output > self.output_cap:
            raise ProtocolError(f"{what}: more than the {self.output_cap} bytes of output allowed")
