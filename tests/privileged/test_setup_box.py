"""Setup boxes on the real kernel: a bundle's setup.sh and [setup] pip/script become a layer,
installed from the host's package mirrors and from nowhere else, built once per content.

The install tests reach the mirrors this host is configured with (apt's sources, pip's
indexes) and take about a minute each; the others need no mirror."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.config import HostConfig
from sandbox.images.mirrors import host_apt_uris
from sandbox.images.setupbox import SetupJob
from sandbox.images.setuplayer import build_setup_image
from sandbox.images.setuproot import SUBUID_BASE
from sandbox.images.store import LayerError, LayerStore
from sandbox.network import NetConfig, ensure_firewall, remove_firewall
from worker.grading.gradescope import setup_image
from worker.grading.tree import read_tree

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft"),
]
ASSIGNMENTS = Path(__file__).parent.parent / "assignments"
PARENT = "python3"


def _table(name: str) -> bool:
    run = subprocess.run(["nft", "list", "table", "inet", name], capture_output=True, check=False)
    return run.returncode == 0


def _sbx_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[1].strip() for line in out.splitlines() if ": sbx" in line]


@pytest.fixture(scope="module")
def store() -> Iterator[LayerStore]:
    config = HostConfig.from_env()
    s = LayerStore(config.state_dir)
    if PARENT not in s.images():
        pytest.skip(f"needs the {PARENT} image (stockade layers build {PARENT})")
    had_table = _table("stockade")  # a launcher's on this host: leave it in place
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    ensure_firewall(NetConfig())
    try:
        yield s
    finally:
        if not had_table and not _sbx_links():
            remove_firewall()
            Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)


@pytest.fixture
def made(store: LayerStore) -> Iterator[list[str]]:
    """Images a test makes: removed afterwards, with their top layers when no image keeps them."""
    names: list[str] = []
    yield names
    with store.locked():
        tops = set()
        for name in names:
            if name in store.images():
                tops.add(store.image_digests(name)[-1])
                store.rm_image(name)
        kept = {d for i in store.images() for d in store.image_digests(i)}
        for digest in tops - kept:
            os.unlink(store.layer_dir(digest) + ".json")
            shutil.rmtree(store.layer_dir(digest))


def _bundle(tmp_path: Path, setup: str, **more: str) -> dict[str, bytes]:
    d = tmp_path / f"bundle-{secrets.token_hex(4)}"
    d.mkdir()
    (d / "setup.sh").write_text(f"#!/bin/bash\nset -e\n{setup}\n")
    (d / "run_autograder").write_text("#!/bin/bash\ntrue\n")
    for name, text in more.items():
        (d / name).write_text(text)
    return read_tree(d)


def _layer_file(store: LayerStore, image: str, rel: str) -> Path:
    return Path(store.layer_dir(store.image_digests(image)[-1])) / rel


def test_layer_is_cached_by_the_bundle_content(
    store: LayerStore, made: list[str], tmp_path: Path
) -> None:
    config = HostConfig.from_env()
    token = secrets.token_hex(8)  # a bundle no earlier run built
    files = _bundle(tmp_path, f"echo {token} > /etc/stockade-marker", notes="v1\n")
    lines: list[str] = []
    start = time.monotonic()
    first = setup_image(store, config, PARENT, files, lines.append)
    built_s = time.monotonic() - start
    made.append(first)
    assert any("built layer" in line for line in lines), lines
    marker = _layer_file(store, first, "etc/stockade-marker")
    assert marker.read_text() == f"{token}\n"
    st = marker.lstat()
    assert (st.st_uid, st.st_gid) == (0, 0)  # the box's root, not the mapped host uid
    layer = Path(store.layer_dir(store.image_digests(first)[-1]))
    assert sorted(p.name for p in layer.iterdir()) == ["etc"]  # no mount points, no /autograder
    assert all(p.lstat().st_uid < SUBUID_BASE for p in layer.rglob("*"))
    assert store.image_digests(first)[:-1] == store.image_digests(PARENT)

    lines.clear()
    start = time.monotonic()
    again = setup_image(store, config, PARENT, dict(files), lines.append)
    cached_s = time.monotonic() - start
    assert again == first and not any("built layer" in line for line in lines), lines
    assert cached_s < built_s and cached_s < 1.0, (cached_s, built_s)

    # Any file of the bundle is part of its content: setup.sh may read it.
    lines.clear()
    changed = setup_image(store, config, PARENT, {**files, "notes": b"v2\n"}, lines.append)
    made.append(changed)
    assert changed != first and any("built layer" in line for line in lines), lines


def test_setup_runs_as_root_of_its_own_user_namespace(
    store: LayerStore, made: list[str], tmp_path: Path
) -> None:
    script = (
        "id -u > /etc/probe-uid; cat /proc/self/uid_map > /etc/probe-map;"
        "ls /autograder/source > /etc/probe-source;"
        # The store the layers live in is not in the box: the old root is gone.
        "test ! -e /var/lib/stockade/layers && echo gone > /etc/probe-store"
    )
    image = setup_image(store, HostConfig.from_env(), PARENT, _bundle(tmp_path, script), print)
    made.append(image)
    assert _layer_file(store, image, "etc/probe-uid").read_text() == "0\n"
    assert _layer_file(store, image, "etc/probe-map").read_text().split() == [
        "0",
        str(SUBUID_BASE),
        "65536",
    ]
    assert _layer_file(store, image, "etc/probe-source").read_text().split() == [
        "run_autograder",
        "setup.sh",
    ]
    assert _layer_file(store, image, "etc/probe-store").read_text() == "gone\n"


PROBE = r"""
import errno, json, socket, sys
def connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return "ok"
    except TimeoutError:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
gateway = next(socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
               for f in (l.split() for l in open("/proc/net/route").readlines()[1:])
               if f[1] == "00000000")
targets = json.loads(sys.argv[1]) + [[gateway, int(sys.argv[2])]]
json.dump({f"{h}:{p}": connect(h, p) for h, p in targets}, open("/etc/probe.json", "w"))
"""


def _host_address() -> str:
    """The host's own address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.123", 9))
        return str(s.getsockname()[0])


def test_setup_reaches_the_mirrors_and_nothing_else(
    store: LayerStore, made: list[str], tmp_path: Path
) -> None:
    mirror = next(u for u in host_apt_uris() if u.startswith("http://"))
    mirror_host = mirror.split("/")[2]
    mirror_ip = socket.gethostbyname(mirror_host)
    # Places the host itself reaches where no mirror is (the mirror's address on another
    # port, the next address): refused in the box only by its firewall.
    others = [[mirror_ip, 81], [str(ipaddress.IPv4Address(mirror_ip) + 1), 80]]
    for host, port_ in others:
        with socket.create_connection((host, port_), timeout=5):
            pass  # the control: from the host, it connects
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        targets = [[mirror_host, 80], *others, [_host_address(), port], ["127.0.0.1", port]]
        resolv = Path("/etc/resolv.conf").read_text().splitlines()
        resolver = next((x.split()[1] for x in resolv if x.startswith("nameserver ")), None)
        if resolver:
            targets.append([resolver, 53])
        files = _bundle(tmp_path, "python3 probe.py \"$(cat targets)\" $(cat port)", **{
            "probe.py": PROBE, "targets": json.dumps(targets), "port": str(port),
        })  # fmt: skip
        image = setup_image(store, HostConfig.from_env(), PARENT, files, print)
    made.append(image)
    got = json.loads(_layer_file(store, image, "etc/probe.json").read_text())
    assert got.pop(f"{mirror_host}:80") == "ok"
    # Everything else is refused at once: a reset from the box's firewall, not a timeout.
    assert got and all(v == "ECONNREFUSED" for v in got.values()), got
    assert _sbx_links() == []  # the box's veth went with it
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert "stockade_setup" not in out


def test_a_failing_setup_builds_nothing(store: LayerStore, tmp_path: Path) -> None:
    before = {m["digest"] for m in store.layers()}
    files = _bundle(tmp_path, f"echo {secrets.token_hex(4)} > /etc/x\necho broke >&2\nexit 3")
    lines: list[str] = []
    with pytest.raises(LayerError, match="status 3"):
        setup_image(store, HostConfig.from_env(), PARENT, files, lines.append)
    assert "      | broke" in lines
    assert {m["digest"] for m in store.layers()} == before


def _grade(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "service.cli", "grade", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def _images_like(store: LayerStore, prefix: str) -> set[str]:
    return {i for i in store.images() if i.startswith(prefix)}


def test_bundle_installs_from_the_mirrors_then_builds_nothing(
    store: LayerStore, made: list[str], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(ASSIGNMENTS / "gssetup" / "bundle", bundle)
    with (bundle / "setup.sh").open("a") as f:
        f.write(f"# run {secrets.token_hex(8)}: a bundle no earlier run built\n")
    sub = ASSIGNMENTS / "gssetup" / "submissions" / "full"
    before = _images_like(store, "gradescope-")
    start = time.monotonic()
    first = _grade(bundle, sub, "--json", "--no-cache")
    first_s = time.monotonic() - start
    made.extend(sorted(_images_like(store, "gradescope-") - before))
    assert first.returncode == 0, first.stderr
    assert "built layer" in first.stderr
    results = json.loads(first.stdout)
    assert [t["score"] for t in results["tests"]] == [1, 1, 1], results
    layers = {m["digest"] for m in store.layers()}
    start = time.monotonic()
    second = _grade(bundle, sub, "--json", "--no-cache")
    second_s = time.monotonic() - start
    assert second.returncode == 0, second.stderr
    assert "built layer" not in second.stderr and "cached layer" in second.stderr
    assert {m["digest"] for m in store.layers()} == layers
    assert json.loads(second.stdout)["score"] == 3
    print(f"first run (setup built) {first_s:.1f}s, second run (cached) {second_s:.1f}s")
    assert second_s < first_s / 3


def test_native_setup_pip_and_script(store: LayerStore, made: list[str], tmp_path: Path) -> None:
    assignment = tmp_path / "assignment"
    shutil.copytree(ASSIGNMENTS / "pysetup" / "assignment", assignment)
    with (assignment / "setup.sh").open("a") as f:
        f.write(f"# run {secrets.token_hex(8)}\n")
    before = _images_like(store, "assignment-")
    p = _grade(assignment, ASSIGNMENTS / "pysetup" / "submissions" / "full", "--json", "--no-cache")
    made.extend(sorted(_images_like(store, "assignment-") - before))
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)
    assert [t["score"] for t in results["tests"]] == [1, 1], results


def test_setup_box_has_memory_and_pids_limits(store: LayerStore, tmp_path: Path) -> None:
    """Its own cgroup: a script past the memory limit is killed and the build says why; the
    cgroup is gone afterwards."""
    job = SetupJob("python3 -c 'x = bytearray(256 << 20)'", memory_bytes=64 << 20, pids=32)
    lines: list[str] = []
    recipe: dict[str, object] = {"test": secrets.token_hex(8)}
    with pytest.raises(LayerError, match="status"):
        build_setup_image(
            store, HostConfig.from_env(), PARENT, "test-setup-oom", recipe, job, lines.append
        )
    assert any("ran out of memory" in line for line in lines), lines
    assert "test-setup-oom" not in store.images()
    leftovers = [
        name
        for parent in cgroups.probe().parents()
        for name in os.listdir(parent)
        # A setup box's cgroup: <pid>-<time_ns()> (a launcher's boxes count from 0).
        if name.startswith(f"{os.getpid()}-") and len(name.partition("-")[2]) >= 18
    ]
    assert leftovers == []


def test_a_link_in_the_image_where_a_mount_goes_is_refused(
    store: LayerStore, made: list[str], tmp_path: Path
) -> None:
    """C mounts as host root: a link planted in an image (run -> /) must not lead it out."""
    tree = Path(store.new_tmp()) / "tree"
    tree.mkdir()
    (tree / "run").symlink_to("/")
    with store.locked():
        meta = store.commit_layer(str(tree), {"name": "test-link", "source": "test"})
        os.rmdir(tree.parent)
        name = f"test-link-{secrets.token_hex(4)}"
        store.save_image(name, [*store.image_digests(PARENT), str(meta["digest"])], "test")
    made.append(name)
    lines: list[str] = []
    with pytest.raises(LayerError, match="status 126"):
        setup_image(store, HostConfig.from_env(), name, _bundle(tmp_path, "true"), lines.append)
    assert any("/run in the image is or passes through a link" in line for line in lines), lines
    assert Path("/run").is_dir() and not Path("/run").is_symlink()
