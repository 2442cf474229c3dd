"""Setup layers: a course's setup run once in a setup box over an image, its upper dir kept as
a layer, found again by a cache key of the parent layer and the setup's content."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace

from sandbox import cgroups
from sandbox.config import HostConfig
from sandbox.images.build import Progress, clean_tree, human, strip_overlay_xattrs
from sandbox.images.mirrors import (
    SETUP_MIRRORS,
    endpoint,
    host_apt_uris,
    host_pip_indexes,
    local_dir,
    local_root,
    resolve,
)
from sandbox.images.setupbox import SetupJob, run_setup_box
from sandbox.images.setupnet import apply_mirror_rules, remove_mirror_rules
from sandbox.images.setuproot import MIRROR_DIR, drop_mountpoints, shift_owners
from sandbox.images.store import LayerError, LayerStore, cache_key
from sandbox.network import GrantedNetwork, NetConfig, plan_box_addresses
from sandbox.slots import SlotPool

SETUP_VERSION = 1  # bump to rebuild every setup layer when the procedure changes


def with_mirrors(job: SetupJob, progress: Progress) -> SetupJob:
    """job with the host's mirrors: names resolved for /etc/hosts and the firewall, local pip
    sources and pip's CA bundle bound read-only, and pip pointed at what the box can use
    (PIP_* variables, so pip's config files, the host's or the image's, play no part)."""
    pip = host_pip_indexes()
    resolved = resolve([*host_apt_uris(), *pip.urls(), *SETUP_MIRRORS.as_words()])
    for name in resolved.unresolved:
        progress(f"      mirror {name} does not resolve on this host: left out")
    binds: list[str] = []

    def inside(url: str, index: bool) -> str | None:
        """url as the box sees it; None when the box cannot use it."""
        ep = endpoint(url)
        if ep is not None:
            return None if ep.host in resolved.unresolved else url
        root = local_root(url, index)
        if root is None or not os.path.exists(root):
            return None
        if root not in binds:
            binds.append(root)
        rest = (local_dir(url) or "").rstrip("/")[len(root.rstrip("/")) :]
        return f"file://{MIRROR_DIR}/{binds.index(root)}{rest}"

    indexes = [u for u in (inside(x, True) for x in (pip.index, *pip.extra)) if u]
    links = [u for u in (inside(x, False) for x in pip.find_links) if u]
    env = {
        "PIP_BREAK_SYSTEM_PACKAGES": "1",  # Debian's python3 refuses pip installs without it
        "PIP_NO_CACHE_DIR": "1",  # a cache would end up in the layer
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_FIND_LINKS": " ".join(links),
    }
    if indexes:
        env["PIP_INDEX_URL"] = indexes[0]
        env["PIP_EXTRA_INDEX_URL"] = " ".join(indexes[1:])
    else:
        env["PIP_NO_INDEX"] = "1"
    if pip.cert and os.path.isfile(pip.cert):
        binds.append(pip.cert)
        env["PIP_CERT"] = f"{MIRROR_DIR}/{len(binds) - 1}"
    return replace(
        job,
        env=(*env.items(), *job.env),
        hosts=resolved.hosts,
        allowed=resolved.allowed,
        local_dirs=tuple(binds),
    )


def build_setup_image(
    store: LayerStore,
    config: HostConfig,
    parent: str,
    name: str,
    recipe: dict[str, object],
    job: SetupJob,
    progress: Progress,
) -> str:
    """Image `name`: parent plus the layer job leaves, built unless a layer of the same
    parent and recipe (the setup's content, hashed by the caller) is in the store.
    -> "built" or "cached"."""
    digests = store.image_digests(parent)
    key = cache_key(digests[-1] if digests else None, {"v": SETUP_VERSION, **recipe})
    with store.locked():
        digest = store.find_cached(key)
        outcome = "cached"
        if digest is None:
            digest = _build(store, config, parent, key, recipe, job, progress)
            outcome = "built"
        else:
            progress(f"      setup: cached layer {digest[:12]}")
        store.save_image(name, [*digests, digest], source=f"setup:{parent}")
    return outcome


def _build(
    store: LayerStore,
    config: HostConfig,
    parent: str,
    key: str,
    recipe: dict[str, object],
    job: SetupJob,
    progress: Progress,
) -> str:
    start = time.monotonic()
    lowers = store.image_layers(parent)
    tmp = store.new_tmp()
    try:
        job = with_mirrors(job, progress)
        progress(f"      setup box over {parent} ({len(lowers)} layers), mirrors: "
                 f"{', '.join(sorted({n for _, n in job.hosts})) or 'none'}")  # fmt: skip
        code, tail = _run(config, lowers, tmp, job)
        for line in tail.splitlines():
            progress(f"      | {line}")
        if code != 0:
            raise LayerError(f"setup: the script ended with status {code} (its output is above)")
        upper = os.path.join(tmp, "upper")
        try:
            shift_owners(upper)
        except ValueError as e:
            raise LayerError(str(e)) from None
        drop_mountpoints(upper, lowers)
        clean_tree(upper, lowers)
        strip_overlay_xattrs(upper)
        meta = store.commit_layer(
            upper,
            {
                "name": f"setup-{key[:12]}",
                "parent": store.image_digests(parent)[-1],
                "source": "setup",
                "recipe": {"v": SETUP_VERSION, **recipe},
                "cache_key": key,
            },
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    took = time.monotonic() - start
    progress(f"      setup: built layer {str(meta['digest'])[:12]}: "
             f"{human(int(str(meta['size'])))}, {took:.1f}s")  # fmt: skip
    return str(meta["digest"])


def _run(config: HostConfig, lowers: list[str], tmp: str, job: SetupJob) -> tuple[int, str]:
    """The setup box on a box slot of its own (its veth and addresses), firewalled to the
    mirrors for as long as the veth exists."""
    pool = SlotPool(os.path.join(config.run_dir, "slots"), config.first_uid, config.slots)
    try:
        slot = pool.acquire()
    except RuntimeError as e:
        pool.close()
        raise LayerError(f"setup: {e}") from None
    cfg = NetConfig()
    ifname = plan_box_addresses(slot.index, cfg).host_ifname

    def attach(pid: int) -> Callable[[], None]:
        apply_mirror_rules(ifname, job.allowed)  # before the veth exists: no unfiltered moment
        try:
            net = GrantedNetwork.attach(slot.index, pid, cfg)
        except BaseException:
            remove_mirror_rules(ifname)
            raise

        def detach() -> None:
            net.detach()
            remove_mirror_rules(ifname)

        return detach

    manager = cgroups.probe()
    try:
        # Named <pid>-<n> like a launcher's boxes, so a sweep removes it if this process dies.
        limits = cgroups.CgroupLimits(job.memory_bytes, job.pids)
        cg = manager.create(f"{os.getpid()}-{time.time_ns()}", limits)
        try:
            log = os.path.join(tmp, "setup.log")
            code, tail = run_setup_box(lowers, tmp, job, log, attach, cg.join_fds())
            if cg.oom_killed():
                tail += f"\nthe setup box ran out of memory ({human(job.memory_bytes)})"
            return code, tail
        finally:
            cg.kill_all()
            cg.destroy()
    finally:
        manager.close()
        pool.release(slot)
        pool.close()
