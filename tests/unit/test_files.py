"""Reading trees back (sandbox/files.py) without root: depth, fds, path length, a moved tree."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import files


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A directory for a deep tree, removed by rm(1) afterwards: pytest's own cleanup of
    tmp_path (shutil.rmtree) recurses once per level and would fail on it, at the start of
    every later session on this machine."""
    root = tmp_path / "tree"
    root.mkdir()
    yield root
    subprocess.run(["rm", "-rf", "--", str(root)], check=True)


def make_chain(root: Path, depth: int, name: str = "d") -> str:
    """root/d/d/.../d (depth levels) with a file `f` at the bottom; -> the bottom's path.
    Made with relative mkdir and chdir, since the full path may pass PATH_MAX."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    wfd = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(wfd, b"bottom")
    os.close(wfd)
    os.close(fd)
    return str(root) + f"/{name}" * depth + "/f"


def read_with_nofile(path: str, nofile: int) -> dict[str, bytes | str]:
    """read_tree_beneath in a forked child whose RLIMIT_NOFILE is `nofile`, as a box's init
    runs it; the child's exception, if any, comes back as its text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # As in a box's init, only stdio and the result pipe are open: a test process
            # holds many more, which the low limit would count against the walk.
            os.dup2(w, 3)
            w = 3
            os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            got = files.read_tree_beneath(path, 1 << 20)
            payload = {
                k: v.decode() if isinstance(v, bytes) else ["refused", v] for k, v in got.items()
            }
            os.write(w, json.dumps(payload).encode())
        except BaseException as e:
            os.write(w, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = json.loads(f.read())
    os.waitpid(pid, 0)
    assert "error" not in data, data["error"]
    return {k: v.encode() if isinstance(v, str) else v[1] for k, v in data.items()}


def test_a_tree_deeper_than_the_open_file_limit_is_read(tree: Path) -> None:
    bottom = make_chain(tree, 200)
    (tree / "top").write_bytes(b"top")
    got = read_with_nofile(str(tree), 16)
    assert got == {str(tree / "top"): b"top", bottom: b"bottom"}


def test_a_tree_deeper_than_the_recursion_limit_is_read(tree: Path) -> None:
    bottom = make_chain(tree, 1500)
    assert files.read_tree_beneath(str(tree), 1 << 20) == {bottom: b"bottom"}


def test_a_path_past_path_max_is_refused_with_the_reason(tree: Path) -> None:
    make_chain(tree, 40, name="n" * 200)
    got = files.read_tree_beneath(str(tree), 1 << 20)
    [(key, why)] = got.items()
    assert isinstance(why, str) and f"path longer than {files.PATH_MAX} bytes" in why
    assert len(key) <= files.PATH_MAX


def test_a_parent_that_is_not_the_one_left_stops_the_walk(tmp_path: Path) -> None:
    """The walk climbs back through "..": if that is not the directory it came down from
    (the tree was moved under it), it stops and says so rather than read elsewhere."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    fd = os.open(tmp_path / "a" / "b", os.O_RDONLY | os.O_DIRECTORY)
    other_fd = os.open(other, os.O_RDONLY | os.O_DIRECTORY)
    parent = files._Dir(str(other), other_fd)  # what the walk thinks b's parent is
    os.close(other_fd)
    out: dict[str, bytes | str] = {}
    assert files._up(fd, parent, out) == -1
    assert out == {str(other): f"{other}: moved while it was read; the rest of it is not collected"}
    fd = os.open(tmp_path / "a" / "b", os.O_RDONLY | os.O_DIRECTORY)
    a_fd = os.open(tmp_path / "a", os.O_RDONLY | os.O_DIRECTORY)
    up = files._up(fd, files._Dir(str(tmp_path / "a"), a_fd), out)
    os.close(a_fd)
    assert up >= 0 and os.path.samestat(os.fstat(up), os.stat(tmp_path / "a"))
    os.close(up)
