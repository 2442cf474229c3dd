"""Import a `docker save` tarball or an OCI image layout (dir or tar) into the layer store.

Layer tars are unpacked by our own code, not tarfile.extract: every member name is checked
(no absolute path, no `..`), every parent directory is opened with O_NOFOLLOW|O_DIRECTORY
from the layer's root fd, so a symlink planted by an earlier member is never followed, and
files are created with O_CREAT|O_EXCL|O_NOFOLLOW. Hard links may only name a regular file
extracted earlier in the same layer. Total bytes and entries are capped across the import.
Device nodes and FIFOs are skipped, xattrs in the archive are ignored (a trusted.overlay
xattr smuggled in a tar could redirect overlayfs lookups, a security.capability one would
grant privileges) and files lose their set-uid and set-gid bits.

OCI whiteouts become overlayfs whiteouts (image-spec layer.md, overlayfs(5)):
`dir/.wh.name` -> char device 0/0 at dir/name; `dir/.wh..wh..opq` -> xattr
trusted.overlay.opaque=y on dir. Both need root (mknod, trusted.* xattrs).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, cast

from sandbox.images.build import Progress, human, stderr_progress
from sandbox.images.setid import safe_mode
from sandbox.images.store import LayerError, LayerStore, check_image_name

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_BLOB_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def member_parts(name: str) -> tuple[str, ...]:
    """Pure: a tar member name as path components inside the layer, or LayerError."""
    if "\0" in name:
        raise LayerError(f"import: entry {name!r} has a NUL byte")
    if name.startswith("/"):
        raise LayerError(f"import: entry {name!r} is an absolute path; refusing it")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"import: entry {name!r} escapes the layer with '..'; refusing it")
    return parts


def whiteout_plan(parts: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """Pure: ("opaque", dir) or ("whiteout", path) for an OCI whiteout entry, else None."""
    if not parts or not parts[-1].startswith(WHITEOUT):
        return None
    if parts[-1] == OPAQUE:
        return ("opaque", parts[:-1])
    target = parts[-1][len(WHITEOUT) :]
    if target.startswith(WHITEOUT) or target in ("", ".", ".."):
        return ("skip", parts)  # aufs bookkeeping (.wh..wh.plnk and such)
    return ("whiteout", (*parts[:-1], target))


@dataclass
class Budget:
    """Caps shared by every layer of one import."""

    max_bytes: int
    max_files: int
    bytes: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)

    def entry(self, name: str) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise LayerError(f"import: more than {self.max_files} entries (at {name!r})")

    def data(self, name: str, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise LayerError(f"import: more than {human(self.max_bytes)} unpacked (at {name!r})")


class LayerWriter:
    """Creates one layer's entries below root without following any symlink."""

    def __init__(self, root: str, budget: Budget) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.budget = budget
        self.regular: set[tuple[str, ...]] = set()
        self.as_root = os.geteuid() == 0

    def close(self) -> None:
        os.close(self.root_fd)

    def _dir(self, parts: tuple[str, ...], name: str, create: bool = True) -> int:
        fd = os.dup(self.root_fd)
        for i, comp in enumerate(parts):
            try:
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    raise LayerError(
                        f"import: {name!r}: {'/'.join(parts)} does not exist"
                    ) from None
                self.budget.entry(name)
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = "/".join(parts[: i + 1])
                    raise LayerError(
                        f"import: entry {name!r} goes through {where!r}, which is a symlink "
                        "or not a directory; refusing to follow it"
                    ) from None
                raise
            os.close(fd)
            fd = nfd
        return fd

    def _clear(self, dfd: int, leaf: str, keep_dir: bool = False) -> None:
        """Remove what an earlier member put at leaf (tar semantics: the later one wins)."""
        try:
            st = os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(leaf, dir_fd=dfd)
        else:
            os.unlink(leaf, dir_fd=dfd)

    def _owner(self, m: tarfile.TarInfo, leaf: str, dfd: int) -> None:
        if self.as_root:
            os.chown(leaf, m.uid, m.gid, dir_fd=dfd, follow_symlinks=False)

    def add(self, m: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        parts = member_parts(m.name)
        if not parts:
            return  # the layer root itself
        plan = whiteout_plan(parts)
        if plan is not None:
            self._whiteout(plan, m.name)
            return
        self.budget.entry(m.name)
        dfd = self._dir(parts[:-1], m.name)
        leaf = parts[-1]
        try:
            self.regular.discard(parts)
            if m.isdir():
                self._clear(dfd, leaf, keep_dir=True)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(leaf, 0o700, dir_fd=dfd)
                fd = os.open(leaf, _DIR_FLAGS, dir_fd=dfd)
                try:
                    if self.as_root:
                        os.fchown(fd, m.uid, m.gid)
                    os.fchmod(fd, m.mode & 0o7777)
                finally:
                    os.close(fd)
            elif m.isreg():
                self._clear(dfd, leaf)
                self._file(m, data, leaf, dfd)
                self.regular.add(parts)
            elif m.issym():
                self._clear(dfd, leaf)
                os.symlink(m.linkname, leaf, dir_fd=dfd)
                self._owner(m, leaf, dfd)
            elif m.islnk():
                self._clear(dfd, leaf)
                self._link(m, leaf, dfd)
                self.regular.add(parts)
            else:
                self.budget.skipped.append(m.name)
        finally:
            os.close(dfd)

    def _file(self, m: tarfile.TarInfo, data: IO[bytes] | None, leaf: str, dfd: int) -> None:
        if m.size > self.budget.max_bytes - self.budget.bytes:
            self.budget.data(m.name, m.size)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(leaf, flags, 0o600, dir_fd=dfd)
        try:
            while data is not None and (chunk := data.read(1 << 20)):
                self.budget.data(m.name, len(chunk))
                os.write(fd, chunk)
            if self.as_root:
                os.fchown(fd, m.uid, m.gid)
            # After chown, which clears set-id bits; and none are set: a set-uid file in the
            # store runs as its owner for any local user who reaches it (sandbox/images/setid.py).
            os.fchmod(fd, safe_mode(stat.S_IFREG | m.mode))
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def _link(self, m: tarfile.TarInfo, leaf: str, dfd: int) -> None:
        target = member_parts(m.linkname)
        if target not in self.regular:
            raise LayerError(
                f"import: hard link {m.name!r} -> {m.linkname!r} does not name a regular file "
                "extracted earlier in this layer; refusing it"
            )
        sfd = self._dir(target[:-1], m.name, create=False)
        try:
            st = os.stat(target[-1], dir_fd=sfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise LayerError(f"import: hard link {m.name!r} target is not a regular file")
            os.link(target[-1], leaf, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(sfd)

    def _whiteout(self, plan: tuple[str, tuple[str, ...]], name: str) -> None:
        kind, parts = plan
        if kind == "skip":
            self.budget.skipped.append(name)
            return
        self.budget.entry(name)
        if kind == "opaque":
            fd = self._dir(parts, name)
            try:
                os.setxattr(fd, "trusted.overlay.opaque", b"y")
            finally:
                os.close(fd)
            return
        dfd = self._dir(parts[:-1], name)
        try:
            self._clear(dfd, parts[-1])
            self.regular.discard(parts)
            # overlayfs's whiteout: a character device with device number 0/0.
            os.mknod(parts[-1], stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)
        finally:
            os.close(dfd)


class _HashingReader:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.h.hexdigest()


def extract_layer(blob: IO[bytes], root: str, budget: Budget, digest: str | None = None) -> None:
    """Unpack one layer tar (plain, gzip, bzip2 or xz) from a stream into root."""
    reader = _HashingReader(blob)
    writer = LayerWriter(root, budget)
    try:
        # A stream ("r|") only ever calls read(), which the hashing reader has.
        with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|*") as tf:
            for member in tf:
                writer.add(member, tf.extractfile(member) if member.isreg() else None)
    except tarfile.TarError as e:
        raise LayerError(f"import: layer is not a readable tar ({e})") from e
    finally:
        writer.close()
    if digest is not None and reader.drain() != digest:
        raise LayerError(f"import: layer blob does not match its digest sha256:{digest[:12]}")


class _Source:
    """An image archive's files by relative name: an OCI layout dir, or a tar of one."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tar = None if os.path.isdir(path) else tarfile.open(path, "r:*")  # noqa: SIM115

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def has(self, rel: str) -> bool:
        if self.tar is None:
            return os.path.isfile(os.path.join(self.path, *member_parts(rel)))
        try:
            self.tar.getmember(rel)
        except KeyError:
            return False
        return True

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        parts = member_parts(rel)
        if self.tar is None:
            with open(os.path.join(self.path, *parts), "rb") as f:
                yield f
            return
        member: IO[bytes] | None
        try:
            member = self.tar.extractfile("/".join(parts))
        except KeyError:
            member = None
        if member is None:
            raise LayerError(f"import: {rel!r} is missing from {self.path}")
        with member:
            yield member

    def json(self, rel: str) -> object:
        with self.open(rel) as f:
            try:
                return json.loads(f.read(1 << 24))
            except ValueError as e:
                raise LayerError(f"import: {rel} is not JSON: {e}") from e


@dataclass(frozen=True)
class LayerRef:
    path: str  # inside the archive
    digest: str | None  # hex sha256 of the blob, checked while reading, if known


def _blob(desc: object) -> LayerRef:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    match = _BLOB_DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise LayerError(f"import: descriptor {desc!r} has no sha256 digest")
    return LayerRef(f"blobs/sha256/{match.group(1)}", match.group(1))


def image_manifest(src: _Source) -> tuple[list[LayerRef], str | None]:
    """The layers (bottom first) and tag of the archive's first image."""
    if src.has("manifest.json"):  # docker save, old and new (docker 25+ also has index.json)
        data = src.json("manifest.json")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise LayerError("import: manifest.json lists no image")
        tags = data[0].get("RepoTags") or [None]
        return [LayerRef(str(p), None) for p in data[0].get("Layers", [])], tags[0]
    if not src.has("index.json"):
        raise LayerError(f"import: {src.path} has neither manifest.json nor index.json")
    doc, tag = src.json("index.json"), None
    for _depth in range(4):
        if not isinstance(doc, dict):
            break
        if "layers" in doc:
            return [_blob(d) for d in doc["layers"]], tag
        manifests = doc.get("manifests") or []
        if not manifests or not isinstance(manifests[0], dict):
            break
        desc = manifests[0]
        tag = tag or (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        ref = _blob(desc)
        with src.open(ref.path) as f:
            raw = f.read(1 << 24)
        if hashlib.sha256(raw).hexdigest() != ref.digest:
            raise LayerError(f"import: {ref.path} does not match its digest")
        doc = json.loads(raw)
    raise LayerError("import: index.json leads to no image manifest with layers")


def image_name_from_tag(tag: str | None) -> str | None:
    """'docker.io/library/busybox:1.36' -> 'busybox-1.36' (store names are plain)."""
    if not tag:
        return None
    base = tag.rsplit("/", 1)[-1].replace(":", "-").lower()
    base = re.sub(r"[^a-z0-9._-]", "-", base).lstrip("._-")[:64]
    return base or None


def import_archive(
    store: LayerStore,
    path: str,
    name: str | None = None,
    max_bytes: int = 8 << 30,
    max_files: int = 1_000_000,
    progress: Progress = stderr_progress,
) -> str:
    """Import the archive's first image as layers + an image record; -> the image name."""
    src = _Source(path)
    try:
        refs, tag = image_manifest(src)
        image = check_image_name(name or image_name_from_tag(tag) or "")
        budget = Budget(max_bytes, max_files)
        digests: list[str] = []
        with store.locked():
            for i, ref in enumerate(refs, 1):
                progress(f"[{i}/{len(refs)}] unpacking {ref.path}")
                digests.append(_import_layer(store, src, ref, budget, digests, path))
                meta = store.layer_meta(digests[-1])
                progress(
                    f"      layer {digests[-1][:12]}: {human(int(str(meta['size'])))}, "
                    f"{meta['files']} entries (import so far {human(budget.bytes)})"
                )
            store.save_image(image, digests, source=f"oci:{os.path.basename(path)}")
        if budget.skipped:
            progress(f"      skipped {len(budget.skipped)} device/FIFO/aufs entries")
        progress(f"imported {image}: {len(digests)} layers, {human(budget.bytes)}")
        return image
    finally:
        src.close()


def _import_layer(
    store: LayerStore, src: _Source, ref: LayerRef, budget: Budget, below: list[str], path: str
) -> str:
    tmp = store.new_tmp()
    try:
        tree = os.path.join(tmp, "tree")
        os.mkdir(tree, 0o755)
        with src.open(ref.path) as blob:
            extract_layer(blob, tree, budget, ref.digest)
        meta = store.commit_layer(
            tree,
            {
                "name": os.path.basename(path),
                "parent": below[-1] if below else None,
                "source": f"oci:{ref.path}",
                "recipe": None,
                "cache_key": None,
            },
        )
        return str(meta["digest"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
