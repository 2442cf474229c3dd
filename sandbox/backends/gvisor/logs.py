"""What runsc says about a box: its own error (JSON log), a Sentry crash (panic log) and the
program's wait status (the `run` command's info log)."""

from __future__ import annotations

import json
import os
import re

# runsc's main.go, last words of `runsc run`: the unix.WaitStatus of the container's init,
# raw (768 for exit(3), 2 for SIGINT), where its exit code folds a signal n into 128 + n.
_EXIT_LINE = re.compile(r"\] Exiting with status: (\d+)$", re.MULTILINE)

_FATAL = ("panic:", "fatal error:", "runtime:")


def runsc_error(box_dir: str) -> str:
    """runsc's own error (its log is JSON lines only when it failed; warnings are not
    logged at the default level)."""
    for line in reversed(_read_text(os.path.join(box_dir, "runsc.log"), tail=True).splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", line))
    return ""


def sentry_panic(box_dir: str) -> str:
    """The Go runtime's first fatal line in the panic log (which also carries rate-limited
    notices, e.g. a raw socket refused), or "" when the Sentry did not crash."""
    for line in _read_text(os.path.join(box_dir, "panic.log")).splitlines():
        if line.startswith(_FATAL):
            return line.strip()
    return ""


def quiet_sandbox_logs(box_dir: str) -> None:
    """The Sentry's and the gofer's info logs go to /dev/null: runsc opens each --debug-log
    file for its children (following a link), and the Sentry's would log every execve's
    argv, a program's to grow. Only `run`'s own log (about 33 lines) is kept."""
    for command in ("boot", "gofer"):
        os.symlink(os.devnull, os.path.join(box_dir, f"{command}.log"))


def wait_status(box_dir: str) -> int | None:
    """The program's wait status as `runsc run` logged it, or None when it did not (runsc
    itself was killed, or failed before the program ran)."""
    found = _EXIT_LINE.findall(_read_text(os.path.join(box_dir, "run.log"), tail=True))
    return int(found[-1]) if found else None


def _read_text(path: str, tail: bool = False) -> str:
    """The first 64 KiB, or with `tail` the last (runsc's last words end its logs, however
    long they grew)."""
    try:
        with open(path, "rb") as f:
            if tail:
                f.seek(max(0, os.fstat(f.fileno()).st_size - (1 << 16)))
            return f.read(1 << 16).decode(errors="replace")
    except FileNotFoundError:
        return ""
