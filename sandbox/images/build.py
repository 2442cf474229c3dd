"""Build layers from Debian: a debootstrap base, and apt-get layers captured as overlay uppers.

A language layer is built the way Docker's overlay2 driver commits a container: an overlay
whose lower dirs are the parent image's layers and whose upper dir is a fresh directory,
`apt-get install` chrooted into the merged view, and the upper dir kept as the new layer.
Its whiteouts (char devices 0/0) and opaque dirs (trusted.overlay.opaque=y) stay as they
are, because the layer is used as an overlay lower dir again. The overlay and the /proc,
/dev and tmpfs mounts the chroot needs live in a private mount namespace of a forked
child (unshare(2) CLONE_NEWNS, then / made MS_PRIVATE|MS_REC, mount_namespaces(7)), so
none of them can propagate to the host, and all vanish when the child exits.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass

from sandbox import syscalls as sc
from sandbox.config import PROFILES_DIR
from sandbox.images.store import LayerError, LayerStore, cache_key, check_image_name
from sandbox.settings import setting

RECIPE_VERSION = 1  # bump to invalidate every cached layer when the build procedure changes
DEFAULT_RECIPES = str(PROFILES_DIR / "images.toml")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_SUITE = re.compile(r"^[a-z][a-z0-9-]*$")
_VARIANTS = ("minbase", "buildd", "fakechroot")
# Bookkeeping overlayfs writes into an upper dir that means nothing once it is a lower dir
# (file handles of this build's lower inodes); opaque and whiteouts are kept. overlayfs(5).
_OVERLAY_SCRATCH_XATTRS = (
    "trusted.overlay.origin",
    "trusted.overlay.impure",
    "trusted.overlay.nlink",
    "trusted.overlay.uuid",
    "trusted.overlay.upper",
)
# Left by apt and dpkg; removed from a new layer unless a lower layer has the same path
# (removing that one would leave a whiteout, so it stays in the layer that owns it).
_JUNK = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/archives/partial/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/log/*.log",
    "var/log/apt/*",
    "tmp/*",
    "var/tmp/*",
    "run/*",
)
_HOST_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Recipe:
    name: str
    parent: str | None = None
    suite: str = ""
    variant: str = ""
    packages: tuple[str, ...] = ()

    def layer_recipe(self) -> dict[str, object]:
        """What identifies this layer's build (hashed into the cache key with the parent)."""
        if self.parent is None:
            return {
                "v": RECIPE_VERSION,
                "debootstrap": self.suite,
                "variant": self.variant,
            }
        return {"v": RECIPE_VERSION, "apt": sorted(self.packages)}


def parse_recipes(text: str) -> dict[str, Recipe]:
    """images.toml -> recipes; raises LayerError naming the image and the rule broken."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LayerError(f"recipes: {e}") from e
    recipes: dict[str, Recipe] = {}
    for name, table in data.items():
        check_image_name(name)
        if not isinstance(table, dict):
            raise LayerError(f"recipes: [{name}] must be a table")
        recipes[name] = _recipe(name, table)
    for r in recipes.values():
        if r.parent is not None and r.parent not in recipes:
            raise LayerError(f"recipes: [{r.name}] parent {r.parent!r} is not defined")
    build_order(recipes, list(recipes))  # refuses cycles
    return recipes


def _recipe(name: str, table: dict[str, object]) -> Recipe:
    keys = set(table)
    if "parent" in table:
        if keys - {"parent", "apt"}:
            raise LayerError(f"recipes: [{name}] unknown keys {sorted(keys - {'parent', 'apt'})}")
        parent, packages = table["parent"], table.get("apt")
        if not isinstance(parent, str):
            raise LayerError(f"recipes: [{name}] parent must be an image name")
        if not isinstance(packages, list) or not packages:
            raise LayerError(f"recipes: [{name}] apt must be a non-empty list of packages")
        for p in packages:
            if not isinstance(p, str) or not _PACKAGE.match(p):
                raise LayerError(f"recipes: [{name}] {p!r} is not a Debian package name")
        return Recipe(name, parent=parent, packages=tuple(packages))
    if keys != {"suite", "variant"}:
        raise LayerError(f"recipes: [{name}] needs parent+apt, or suite+variant for a base")
    suite, variant = table["suite"], table["variant"]
    if not isinstance(suite, str) or not _SUITE.match(suite):
        raise LayerError(f"recipes: [{name}] suite {suite!r} is not a Debian suite name")
    if variant not in _VARIANTS:
        raise LayerError(f"recipes: [{name}] variant must be one of {', '.join(_VARIANTS)}")
    return Recipe(name, suite=suite, variant=str(variant))


def load_recipes(path: str | None = None) -> dict[str, Recipe]:
    path = path or DEFAULT_RECIPES
    try:
        with open(path) as f:
            return parse_recipes(f.read())
    except OSError as e:
        raise LayerError(f"recipes: cannot read {path}: {e.strerror}") from e


def build_order(recipes: dict[str, Recipe], names: list[str]) -> list[str]:
    """Pure: the images to visit so that every parent comes before its children."""
    order: list[str] = []
    for name in names:
        chain: list[str] = []
        cur: str | None = name
        while cur is not None and cur not in order:
            if cur not in recipes:
                raise LayerError(f"image: no recipe named {cur!r}")
            if cur in chain:
                raise LayerError(f"recipes: parent cycle through {cur!r}")
            chain.append(cur)
            cur = recipes[cur].parent
        order.extend(reversed(chain))
    return order


def parse_mirrors(text: str, deb822: bool) -> list[tuple[str, list[str]]]:
    """Pure: (URI, suites) of each `deb` source in an apt sources file. sources.list(5)."""
    found: list[tuple[str, list[str]]] = []
    if not deb822:
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append((words[1], [words[2]]))
        return found
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                found.append((uri, fields.get("suites", "").split()))
    return found


DEBIAN_MIRROR = setting(
    "STOCKADE_DEBIAN_MIRROR",
    "",
    "the Debian mirror image builds use; empty: the host's apt sources",
)


def host_mirror(suite: str) -> str:
    """The Debian mirror for suite: STOCKADE_DEBIAN_MIRROR, else the host's apt sources."""
    if mirror := DEBIAN_MIRROR.as_str():
        return mirror
    files = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for uri, suites in parse_mirrors(text, path.endswith(".sources")):
            if suite in suites and uri.startswith(("http://", "https://", "file:/")):
                return uri
    raise LayerError(
        f"debootstrap: no apt source for suite {suite!r} in /etc/apt; set STOCKADE_DEBIAN_MIRROR"
    )


def tree_size(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _make_private() -> None:
    # A new mount namespace starts as a copy whose mounts are still shared with the host's
    # peer groups; MS_PRIVATE|MS_REC on / stops propagation both ways. mount_namespaces(7).
    sc.unshare(sc.CLONE_NEWNS, step="layer build")
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, step="layer build")


def run_private(
    argv: list[str],
    log_path: str,
    watch: str,
    progress: Progress,
    setup: Callable[[], None] = lambda: None,
    env: dict[str, str] | None = None,
) -> None:
    """Run argv in a forked child in a private mount namespace; raise LayerError on failure."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    pid = os.fork()
    if pid == 0:  # child: never returns into the caller's Python
        try:
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.setsid()
            _make_private()
            setup()
            os.execvpe(argv[0], argv, env or dict(os.environ))
        except BaseException as e:  # anything here must end the child
            os.write(2, f"stockade layer build: {e}\n".encode())
        finally:
            os._exit(127)
    os.close(log_fd)
    try:
        status = _wait(pid, watch, progress)
    except BaseException:
        # Interrupted: the child leads its own session, so its process group holds apt,
        # dpkg and maintainer scripts; none may keep writing into a tree about to go.
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        raise LayerError(f"build: {argv[0]} failed with status {code}; log {log_path}:\n{tail}")


def _wait(pid: int, watch: str, progress: Progress) -> int:
    start, last, shown = time.monotonic(), time.monotonic(), 0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.2)
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            size = tree_size(watch)
            if size != shown:
                shown = size
                progress(f"      ... {human(size)} written, {last - start:.0f}s")


def clean_tree(upper: str, lowers: list[str]) -> int:
    """Remove apt/dpkg junk from upper where no lower has the path; -> entries removed."""
    removed = 0
    for pattern in _JUNK:
        for path in glob.glob(os.path.join(upper, pattern)):
            rel = os.path.relpath(path, upper)
            if os.path.basename(rel) == "partial" or any(
                os.path.lexists(os.path.join(lo, rel)) for lo in lowers
            ):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed += 1
    return removed


def strip_overlay_xattrs(upper: str) -> tuple[int, int]:
    """Drop overlay bookkeeping xattrs; -> (whiteouts, opaque dirs) left in the layer."""
    whiteouts = opaque = 0
    for dirpath, dirs, files in os.walk(upper):
        for name in [*dirs, *files]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                whiteouts += 1
            if stat.S_ISLNK(st.st_mode):
                continue
            for attr in os.listxattr(path, follow_symlinks=False):
                if attr in _OVERLAY_SCRATCH_XATTRS:
                    os.removexattr(path, attr, follow_symlinks=False)
                elif attr == "trusted.overlay.metacopy":
                    raise LayerError(f"build: {path} is a metacopy-only file (metacopy=on?)")
                elif attr == "trusted.overlay.opaque":
                    opaque += 1
    return whiteouts, opaque


def overlay_options(lowers: list[str], upper: str, work: str) -> str:
    """overlayfs mount data. Layers are reused as lower dirs, so nothing may point back at
    this build's lower inodes: no redirects, no metacopy, no index. overlayfs(5)."""
    for path in [*lowers, upper, work]:
        if any(c in path for c in ",:\\"):
            raise LayerError(f"build: path {path!r} has a character overlayfs options cannot hold")
    return (
        f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work},"
        "redirect_dir=off,metacopy=off,index=off,xino=off"
    )


def base_junk(root: str) -> None:
    """Make a fresh debootstrap tree a clean, host-independent base layer."""
    clean_tree(root, [])
    for name in os.listdir(os.path.join(root, "dev")):
        path = os.path.join(root, "dev", name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    # Host facts debootstrap copies in; the box's init layer writes its own over these.
    for name, text in (("etc/resolv.conf", ""), ("etc/hostname", "localhost\n")):
        path = os.path.join(root, name)
        if os.path.lexists(path):
            os.unlink(path)
        with open(path, "w") as f:
            f.write(text)


def _chroot_setup(lowers: list[str], upper: str, work: str, merged: str) -> Callable[[], None]:
    """The child's mounts, all inside its private mount namespace, then chroot(2)."""

    def setup() -> None:
        flags = sc.MS_NOSUID | sc.MS_NODEV
        sc.mount("overlay", merged, "overlay", 0, overlay_options(lowers, upper, work))
        sc.mount("proc", f"{merged}/proc", "proc", flags | sc.MS_NOEXEC)
        sc.mount("tmpfs", f"{merged}/dev", "tmpfs", sc.MS_NOSUID, "mode=755")
        for dev in _HOST_DEVICES:
            open(f"{merged}/dev/{dev}", "w").close()
            sc.mount(f"/dev/{dev}", f"{merged}/dev/{dev}", None, sc.MS_BIND)
        for sub in ("pts", "shm"):
            os.mkdir(f"{merged}/dev/{sub}")
        for src, name in (("/proc/self/fd", "fd"), ("fd/0", "stdin"), ("fd/1", "stdout")):
            os.symlink(src, f"{merged}/dev/{name}")
        os.symlink("fd/2", f"{merged}/dev/stderr")
        # Downloads and package lists land on tmpfs: they never reach the layer.
        for sub in ("tmp", "var/tmp", "var/lib/apt/lists", "var/cache/apt"):
            sc.mount("tmpfs", f"{merged}/{sub}", "tmpfs", flags, "mode=1777")
        for sub in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
            os.makedirs(f"{merged}/{sub}")
        os.chmod(f"{merged}/var/lib/apt/lists", 0o755)
        os.chmod(f"{merged}/var/cache/apt", 0o755)
        sc.mount("/etc/resolv.conf", f"{merged}/etc/resolv.conf", None, sc.MS_BIND)
        os.chroot(merged)
        os.chdir("/")

    return setup


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }


def build_base(store: LayerStore, recipe: Recipe, tmp: str, progress: Progress) -> str:
    """debootstrap into tmp/rootfs; -> the tree to commit."""
    mirror = host_mirror(recipe.suite)
    root = os.path.join(tmp, "rootfs")
    progress(f"      debootstrap --variant={recipe.variant} {recipe.suite} (from {mirror})")
    argv = ["debootstrap", f"--variant={recipe.variant}", recipe.suite, root, mirror]
    if shutil.which("debootstrap", path=_chroot_env()["PATH"]) is None:
        raise LayerError("build: debootstrap is not installed (apt-get install debootstrap)")
    run_private(argv, os.path.join(tmp, "build.log"), tmp, progress, env=_chroot_env())
    base_junk(root)
    return root


def build_apt(store: LayerStore, recipe: Recipe, parents: list[str], tmp: str, p: Progress) -> str:
    """apt-get install in a chroot of parents + a fresh upper; -> the upper dir to commit."""
    lowers = [store.layer_dir(d) for d in reversed(parents)]
    upper, work, merged = (os.path.join(tmp, n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d, 0o755)
    pkgs = " ".join(shlex.quote(x) for x in recipe.packages)
    script = (
        "set -e; apt-get -q update; "
        f"apt-get -q -y -o Dpkg::Use-Pty=0 install --no-install-recommends {pkgs}; apt-get clean"
    )
    p(f"      apt-get install {' '.join(recipe.packages)} over {len(lowers)} layer(s)")
    setup = _chroot_setup(lowers, upper, work, merged)
    run_private(["/bin/sh", "-c", script], os.path.join(tmp, "build.log"), upper, p, setup,
                _chroot_env())  # fmt: skip
    shutil.rmtree(work)
    removed = clean_tree(upper, lowers)
    whiteouts, opaque = strip_overlay_xattrs(upper)
    p(f"      cleaned {removed} apt/dpkg leftovers; kept {whiteouts} whiteouts, {opaque} opaque")
    return upper


def build_images(
    store: LayerStore,
    recipes: dict[str, Recipe],
    names: list[str],
    progress: Progress = stderr_progress,
) -> dict[str, str]:
    """Build what is missing for names, parents first; -> {image: 'built' | 'cached'}."""
    order = build_order(recipes, names)
    outcome: dict[str, str] = {}
    digests: dict[str, list[str]] = {}
    with store.locked():
        for i, name in enumerate(order, 1):
            recipe = recipes[name]
            parents = digests[recipe.parent] if recipe.parent else []
            key = cache_key(parents[-1] if parents else None, recipe.layer_recipe())
            digest = store.find_cached(key)
            if digest is not None:
                size = int(str(store.layer_meta(digest)["size"]))
                progress(f"[{i}/{len(order)}] {name}: cached layer {digest[:12]} ({human(size)})")
                outcome[name] = "cached"
            else:
                progress(f"[{i}/{len(order)}] {name}: building")
                digest = _build_one(store, recipe, parents, key, progress)
                outcome[name] = "built"
            digests[name] = [*parents, digest]
            store.save_image(name, digests[name], source=f"recipe:{name}")
    return outcome


def _build_one(
    store: LayerStore, recipe: Recipe, parents: list[str], key: str, progress: Progress
) -> str:
    start = time.monotonic()
    tmp = store.new_tmp()
    try:
        if recipe.parent is None:
            tree = build_base(store, recipe, tmp, progress)
        else:
            tree = build_apt(store, recipe, parents, tmp, progress)
        progress("      hashing the layer")
        meta = store.commit_layer(
            tree,
            {
                "name": recipe.name,
                "parent": parents[-1] if parents else None,
                "source": "debootstrap" if recipe.parent is None else "apt",
                "recipe": recipe.layer_recipe(),
                "cache_key": key,
            },
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    took = time.monotonic() - start
    progress(
        f"      built layer {str(meta['digest'])[:12]}: {human(int(str(meta['size'])))}, "
        f"{meta['files']} entries, {took:.1f}s"
    )
    return str(meta["digest"])
