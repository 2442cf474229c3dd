"""Content-addressed layer store: read-only layer directories, their metadata, images and gc.

Layout under the state directory (STOCKADE_STATE_DIR, default /var/lib/stockade):

    layers/<digest>/       an unpacked directory tree, used as an overlayfs lower dir as is
    layers/<digest>.json   name, digest, parent, size, files, source, created, recipe, cache_key
    images/<name>.json     {"name", "layers": [digest, ...] bottom first, "created"}

A layer's digest is sha256 over a canonical walk of its tree (see `tree_digest`): paths,
types, modes, uid/gid, sizes, file contents, symlink targets, device numbers (overlayfs
whiteouts are char devices 0/0) and xattrs; modification times are left out so that the
same content always has the same name. Hashing runs at a few hundred MB/s, so even the
JDK layer (~250 MB) costs seconds once, at freeze time, never when a box starts. Whether a
layer must be built at all is decided by its `cache_key` instead (a digest of the parent's
digest and the recipe), since debootstrap and apt never produce byte-identical trees twice.

Every write is atomic: a layer is built in layers/.tmp-<random>/ and renamed into place,
metadata goes through a temporary file and rename(2). A layer counts as present only when
both its directory and its JSON exist. Mutations take an flock(2) on <state>/lock.

No layer holds a set-uid or set-gid file or a file capability (sandbox/images/setid.py):
they are stripped before a layer is committed, and layers/ and images/ are 0700, since
boxes reach layers through their mounts, never through their uid. A store written before
this (its layers' metadata lacks "setid") is fixed in place by `harden`, which the launcher
and `stockade layers` run when they open it; such a layer keeps its name, the digest of
what it was committed as.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sandbox.config import STATE_DIR
from sandbox.images.setid import strip_tree

TMP_PREFIX = ".tmp-"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CHUNK = 1 << 20
# In a layer's metadata: its files carry no set-id bit and no file capability.
SETID_FIELD, SETID_STRIPPED = "setid", "stripped"


class LayerError(Exception):
    """A layer store operation failed; the message starts with the step ("image: ...")."""


def check_image_name(name: str) -> str:
    if not _IMAGE_NAME.match(name):
        raise LayerError(
            f"image: bad name {name!r} (lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64 characters)"
        )
    return name


def _xattrs(path: str) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    return sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below root as (relative path, lstat), sorted by name, parents first."""
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, path)


def tree_digest(root: str) -> tuple[str, int, int]:
    """sha256 over a canonical walk of root -> (hex digest, bytes of regular files, entries)."""
    h = hashlib.sha256()
    seen_inodes: dict[tuple[int, int], str] = {}
    size = count = 0
    root_st = os.lstat(root)
    h.update(f"./ {root_st.st_mode:o} {root_st.st_uid} {root_st.st_gid}\0".encode())
    for rel, st in _walk(root):
        count += 1
        full = os.path.join(root, rel)
        head = f"{rel}\0{st.st_mode:o} {st.st_uid} {st.st_gid}"
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                h.update(f"{head} link {seen_inodes[key]}\0".encode())
                continue
            seen_inodes[key] = rel
            size += st.st_size
            h.update(f"{head} file {st.st_size}\0".encode())
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                while chunk := os.read(fd, _CHUNK):
                    h.update(chunk)
            finally:
                os.close(fd)
        elif stat.S_ISLNK(st.st_mode):
            h.update(f"{head} symlink ".encode() + os.fsencode(os.readlink(full)) + b"\0")
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            h.update(f"{head} dev {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}\0".encode())
        else:
            h.update(f"{head}\0".encode())
        for name, value in _xattrs(full):
            h.update(f"xattr {name}=".encode() + value + b"\0")
    return h.hexdigest(), size, count


def cache_key(parent: str | None, recipe: dict[str, object]) -> str:
    """The build cache key: sha256 of the parent layer's digest and the canonical recipe."""
    text = json.dumps({"parent": parent, "recipe": recipe}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class GcPlan:
    layers: list[str]  # digests whose directory and metadata go
    leftovers: list[str]  # names under layers/ that are neither layers nor their metadata


def gc_plan(entries: list[str], referenced: set[str]) -> GcPlan:
    """Pure: which names under layers/ gc removes, given the digests images reference."""
    digests = {e.removesuffix(".json") for e in entries if _DIGEST.match(e.removesuffix(".json"))}
    layers = sorted(d for d in digests if d not in referenced)
    leftovers = sorted(
        e for e in entries if not _DIGEST.match(e.removesuffix(".json")) or e.startswith(".")
    )
    return GcPlan(layers, leftovers)


def _write_json(path: str, data: dict[str, object]) -> None:
    tmp = f"{path}.{secrets.token_hex(4)}.part"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _read_json(path: str, what: str) -> dict[str, object]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise LayerError(f"{what}: cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise LayerError(f"{what}: {path} is not a JSON object")
    return data


class LayerStore:
    """The store on disk. Reading needs no lock; changes hold <state>/lock."""

    def __init__(self, state_dir: str | None = None) -> None:
        self.state_dir = os.path.abspath(state_dir or STATE_DIR.as_str())
        self.layers_dir = os.path.join(self.state_dir, "layers")
        self.images_dir = os.path.join(self.state_dir, "images")

    # -- reading --------------------------------------------------------------------

    def images(self) -> list[str]:
        try:
            names = os.listdir(self.images_dir)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and _IMAGE_NAME.match(n[:-5]))

    def image_record(self, image: str) -> dict[str, object]:
        path = os.path.join(self.images_dir, f"{image}.json")
        if not _IMAGE_NAME.match(image) or not os.path.exists(path):
            raise LayerError(f"image: no image named {image!r} in {self.state_dir}")
        return _read_json(path, "image")

    def image_digests(self, image: str) -> list[str]:
        """The image's layer digests, bottom first."""
        layers = self.image_record(image).get("layers")
        if not isinstance(layers, list) or not all(
            isinstance(d, str) and _DIGEST.match(d) for d in layers
        ):
            raise LayerError(f"image: {image!r} has a malformed layer list")
        return list(layers)

    def image_layers(self, image: str) -> list[str]:
        """Absolute layer dirs, top-most first (the order of overlayfs's lowerdir=)."""
        dirs = []
        for digest in reversed(self.image_digests(image)):
            path = self.layer_dir(digest)
            if not self.has_layer(digest):
                raise LayerError(f"image: {image!r} needs layer {digest[:12]}, which is missing")
            dirs.append(path)
        return dirs

    def layer_dir(self, digest: str) -> str:
        return os.path.join(self.layers_dir, digest)

    def has_layer(self, digest: str) -> bool:
        return os.path.isdir(self.layer_dir(digest)) and os.path.isfile(
            self.layer_dir(digest) + ".json"
        )

    def layer_meta(self, digest: str) -> dict[str, object]:
        if not _DIGEST.match(digest) or not self.has_layer(digest):
            raise LayerError(f"layer: no layer {digest!r}")
        return _read_json(self.layer_dir(digest) + ".json", "layer")

    def layers(self) -> list[dict[str, object]]:
        try:
            names = os.listdir(self.layers_dir)
        except FileNotFoundError:
            return []
        digests = sorted(n[:-5] for n in names if n.endswith(".json") and _DIGEST.match(n[:-5]))
        return [self.layer_meta(d) for d in digests if self.has_layer(d)]

    def find_cached(self, key: str) -> str | None:
        """The digest of a present layer built from this cache key, if any."""
        for meta in self.layers():
            if meta.get("cache_key") == key:
                return str(meta["digest"])
        return None

    def resolve(self, ref: str) -> str:
        """A full digest from an unambiguous prefix of at least 6 hex digits."""
        matches = [str(m["digest"]) for m in self.layers() if str(m["digest"]).startswith(ref)]
        if len(ref) < 6 or len(matches) != 1:
            raise LayerError(f"layer: {ref!r} names {len(matches)} layers (need exactly one)")
        return matches[0]

    # -- writing --------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, wait: bool = True) -> Iterator[None]:
        """Hold the store's lock; with wait=False, BlockingIOError if another holds it."""
        self._make_private()
        fd = os.open(os.path.join(self.state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            yield
        finally:
            os.close(fd)

    def _make_private(self) -> None:
        # Only root, which mounts the layers, reads them; the state dir itself stays open,
        # since QEMU's unprivileged uid reads <state>/microvm.
        for path in (self.layers_dir, self.images_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)

    def harden(self) -> list[str]:
        """Bring a store written by older code up to this one's rules: layers/ and images/
        0700, and no set-id bit or file capability in a layer (its metadata then says
        "setid": "stripped"). While another process holds the lock (a build, an import, a
        gc) only the directories are fixed: the next open does the layers. -> the digests
        of the layers fixed now."""
        if not os.path.isdir(self.state_dir):
            return []
        fixed: list[str] = []
        try:
            with self.locked(wait=False):
                for meta in self.layers():
                    if meta.get(SETID_FIELD) != SETID_STRIPPED:
                        digest = str(meta["digest"])
                        strip_tree(self.layer_dir(digest))
                        _write_json(self.layer_dir(digest) + ".json", _stripped(meta))
                        fixed.append(digest)
        except BlockingIOError:
            pass
        return fixed

    def new_tmp(self) -> str:
        """A fresh empty directory layers/.tmp-<random>/ on the store's file system."""
        self._make_private()
        path = os.path.join(self.layers_dir, TMP_PREFIX + secrets.token_hex(8))
        os.mkdir(path, 0o700)
        return path

    def commit_layer(self, tree: str, meta: dict[str, object]) -> dict[str, object]:
        """Digest tree, move it to layers/<digest>/ and write its metadata; returns the meta.

        If a layer with the same digest exists, tree is removed and the old one is kept.
        """
        strip_tree(tree)
        digest, size, files = tree_digest(tree)
        meta = {**meta, "digest": digest, "size": size, "files": files, "created": time.time()}
        meta = _stripped(meta)
        os.chmod(tree, 0o755)
        target = self.layer_dir(digest)
        if self.has_layer(digest):
            shutil.rmtree(tree)
            return self.layer_meta(digest)
        if os.path.isdir(target):  # a directory left without metadata by a crash
            shutil.rmtree(target)
        os.rename(tree, target)
        _write_json(target + ".json", meta)
        return meta

    def save_image(self, image: str, digests: list[str], source: str) -> None:
        check_image_name(image)
        for d in digests:
            if not self.has_layer(d):
                raise LayerError(f"image: layer {d[:12]} of {image!r} is missing")
        self._make_private()
        record: dict[str, object] = {
            "name": image,
            "layers": digests,
            "source": source,
            "created": time.time(),
        }
        _write_json(os.path.join(self.images_dir, f"{image}.json"), record)

    def rm_image(self, image: str) -> None:
        self.image_record(image)
        os.unlink(os.path.join(self.images_dir, f"{image}.json"))

    def gc(self) -> GcPlan:
        """Remove layers no image references, and leftovers of interrupted writes."""
        try:
            entries = os.listdir(self.layers_dir)
        except FileNotFoundError:
            return GcPlan([], [])
        referenced = {d for image in self.images() for d in self.image_digests(image)}
        plan = gc_plan(entries, referenced)
        for digest in plan.layers:
            _remove(self.layer_dir(digest) + ".json")
            _remove(self.layer_dir(digest))
        for name in plan.leftovers:
            _remove(os.path.join(self.layers_dir, name))
        return plan


def _stripped(meta: dict[str, object]) -> dict[str, object]:
    return {**meta, SETID_FIELD: SETID_STRIPPED}


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
