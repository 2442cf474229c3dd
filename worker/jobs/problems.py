"""Uploaded problem packages: checked as archives, read by the loader, kept in Redis by digest."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from worker.jobs.archives import ArchiveError, ArchiveLimits, extract_zip
from worker.jobs.packages.format import MAX_DATA_BYTES, Group, ProblemError
from worker.jobs.packages.package import Package, load_package
from worker.jobs.uploads import UploadStore

DIGEST = re.compile(r"^[0-9a-f]{64}$")
# A package holds more files than a submission's additional_files (every case is two), and
# each may be as large as the loader reads (format.MAX_DATA_BYTES); the bomb checks stay.
MAX_FILES = 4096
MAX_UNPACKED_BYTES = 256 << 20
_TAG = b"stockade-problem:"


def archive_limits(max_package_bytes: int) -> ArchiveLimits:
    return ArchiveLimits(
        max_files=MAX_FILES,
        max_total_bytes=MAX_UNPACKED_BYTES,
        max_archive_bytes=max_package_bytes,
    )


def unpack(data: bytes, max_package_bytes: int) -> dict[str, bytes]:
    """The package's files by path below its problem.yaml: the archive checks of
    additional_files (zip slip, links, bombs), then the root found. ArchiveError otherwise."""
    files = extract_zip(data, archive_limits(max_package_bytes))
    if "problem.yaml" in files:
        return files
    tops = {path.split("/", 1)[0] for path in files}
    # Zipping a folder puts everything under its name: one such folder is the package.
    if len(tops) == 1:
        top = tops.pop()
        if f"{top}/problem.yaml" in files:
            return {posixpath.relpath(p, top): b for p, b in files.items()}
    raise ArchiveError("problem.yaml: not at the top of the zip, nor in its one top-level folder")


def digest(files: dict[str, bytes]) -> str:
    """The problem's id: of its files' paths and contents, so that the same package zipped
    twice (other timestamps, order or compression) is one problem."""
    h = hashlib.sha256(_TAG)
    for path in sorted(files):
        name, content = path.encode(), files[path]
        h.update(len(name).to_bytes(8, "big") + name + len(content).to_bytes(8, "big"))
        h.update(content)
    return h.hexdigest()


def write_tree(files: dict[str, bytes], dest: Path) -> None:
    """Lays checked files out under dest (extract_zip refused every path leaving it)."""
    for path, content in files.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def summary(package: Package) -> dict[str, Any]:
    """What GET /api/v1/problems/<id> shows of a package."""
    meta, lim = package.meta, package.limits
    return {
        "name": meta.name,
        "format": meta.version,
        "interactive": meta.interactive,
        "scoring": meta.scoring,
        "custom_output": meta.custom_output,
        "languages": list(meta.languages),
        "time_limit_s": lim.time_limit_s,
        "memory_mib": lim.memory_mib,
        "output_mib": lim.output_mib,
        "cases": len(package.cases),
        "groups": _groups(package.tests),
    }


def _groups(group: Group) -> list[dict[str, Any]]:
    """Every group below data/, depth first, with its own cases counted."""
    out: list[dict[str, Any]] = []
    for item in group.items:
        if isinstance(item, Group):
            out.append({"name": item.name, "cases": len(item.cases())})
            out.extend(_groups(item))
    return out


def check(files: dict[str, bytes], max_memory_mib: int) -> dict[str, Any]:
    """The loader on an extracted copy (never the judge's): the summary, or ProblemError
    naming the file and the rule. The API judges nothing, so the time limit must be stated."""
    for path, content in files.items():
        # What the judge would refuse when it reads the file: refused now, naming it.
        if len(content) > MAX_DATA_BYTES:
            raise ProblemError(f"{path}: over {MAX_DATA_BYTES} bytes")
    with tempfile.TemporaryDirectory(prefix="stockade-upload-") as tmp:
        root = Path(tmp) / "problem"
        write_tree(files, root)
        package = load_package(root, max_memory_mib)
        if package.limits.time_limit_s is None:
            raise ProblemError(
                "problem.yaml: limits.time_limit: a package judged through the API must state "
                "its time limit (or have .timelimit); `stockade problem verify` derives one"
            )
        return summary(package)


class ProblemStore(UploadStore):
    """Packages in Redis: {prefix}problem:<digest> (zip, summary) and
    {prefix}problem:<digest>:owners (the digests of the tokens that uploaded it)."""

    kind = "problem"


def unpacked(cache: Path, problem: str, zip_bytes: bytes, max_package_bytes: int) -> Path:
    """The package's folder in a worker's cache: cache/<digest>, made once. Each worker
    unpacks into a private folder and renames it into place, so that concurrent workers
    never see half a package; the loser of the race drops its copy."""
    if not DIGEST.match(problem):
        raise ValueError(f"problem: not a digest: {problem!r}")
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_private(cache)
    final = cache / problem
    if (final / "problem.yaml").is_file():
        return final
    files = unpack(zip_bytes, max_package_bytes)
    if digest(files) != problem:  # what Redis held is not what was checked at upload
        raise ProblemError(f"problem {problem}: stored package does not match its digest")
    tmp = Path(tempfile.mkdtemp(prefix=f".{problem[:12]}-", dir=cache))
    try:
        write_tree(files, tmp)
        os.rename(tmp, final)
    except OSError:
        if not (final / "problem.yaml").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _check_private(cache: Path) -> None:
    """A folder found there is trusted as a checked package: so the cache must be this
    user's alone (the default lives in a world-writable /tmp, where anyone may make it)."""
    st = cache.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ProblemError(
            f"{cache}: not a directory of this user's that only it may write "
            "(STOCKADE_PROBLEM_CACHE_DIR)"
        )
