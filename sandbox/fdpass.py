"""Passing file descriptors over unix sockets (SCM_RIGHTS), received close-on-exec.

Python 3.11's socket.recv_fds drops its flags argument, so MSG_CMSG_CLOEXEC never reaches
the kernel and received descriptors would leak into the program through execve."""

from __future__ import annotations

import array
import socket


def recv_fds(sock: socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    msg, ancdata, _, _ = sock.recvmsg(
        bufsize, socket.CMSG_SPACE(maxfds * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


def send_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    socket.send_fds(sock, [data], fds)
