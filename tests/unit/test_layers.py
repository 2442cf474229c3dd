"""Layer store without root: digests, recipes, mirrors, cache keys, images and gc selection."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from sandbox.cli.layers import run_layers
from sandbox.images.build import (
    DEFAULT_RECIPES,
    Recipe,
    build_order,
    load_recipes,
    parse_mirrors,
    parse_recipes,
)
from sandbox.images.setid import safe_mode, strip_tree
from sandbox.images.store import LayerError, LayerStore, cache_key, gc_plan, tree_digest

LANGUAGE_IMAGES = {
    "gcc": ["gcc", "g++", "libc6-dev"],
    "python3": ["python3"],
    "java": ["openjdk-17-jdk-headless"],
    "nodejs": ["nodejs"],
    "rust": ["rustc"],
    "go": ["golang-go"],
    "ruby": ["ruby"],
    "perl": ["perl"],
    "php": ["php-cli"],
    "lua": ["lua5.4"],
    "pascal": ["fp-compiler"],
    "fortran": ["gfortran"],
    "ocaml": ["ocaml-nox"],
}


def make_tree(root: str) -> None:
    os.makedirs(f"{root}/usr/bin")
    with open(f"{root}/usr/bin/hello", "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(f"{root}/usr/bin/hello", 0o755)
    os.symlink("usr/bin", f"{root}/bin")
    os.link(f"{root}/usr/bin/hello", f"{root}/usr/bin/hello2")


def test_digest_is_stable_and_ignores_mtimes(tmp_path: os.PathLike[str]) -> None:
    a, b = f"{tmp_path}/a", f"{tmp_path}/b"
    make_tree(a)
    make_tree(b)
    os.utime(f"{b}/usr/bin/hello", (1, 1))
    assert tree_digest(a) == tree_digest(b)
    digest, size, files = tree_digest(a)
    assert len(digest) == 64 and size == len("#!/bin/sh\necho hi\n") and files == 5


@pytest.mark.parametrize(
    "change",
    [
        lambda r: os.truncate(f"{r}/usr/bin/hello", 3),
        lambda r: os.chmod(f"{r}/usr/bin/hello", 0o700),
        lambda r: (os.unlink(f"{r}/bin"), os.symlink("usr/sbin", f"{r}/bin")),
        lambda r: os.rename(f"{r}/usr/bin/hello2", f"{r}/usr/bin/hello3"),
        lambda r: os.mkdir(f"{r}/empty"),
    ],
)
def test_digest_changes_with_content(tmp_path: os.PathLike[str], change: object) -> None:
    a = f"{tmp_path}/a"
    make_tree(a)
    before = tree_digest(a)[0]
    change(a)  # type: ignore[operator]
    assert tree_digest(a)[0] != before


def test_shipped_recipes() -> None:
    recipes = load_recipes(DEFAULT_RECIPES)
    assert recipes["debian"] == Recipe("debian", suite="bookworm", variant="minbase")
    for name, packages in LANGUAGE_IMAGES.items():
        assert recipes[name].parent == "debian"
        assert list(recipes[name].packages) == packages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[a]\nparent = "b"\napt = ["xy"]\n', "parent 'b' is not defined"),
        ('[a]\nparent = "a"\napt = ["xy"]\n', "cycle"),
        ('[a]\nsuite = "bookworm"\nvariant = "huge"\n', "variant must be one of"),
        ('[a]\nsuite = "bookworm"\nvariant = "minbase"\n[b]\nparent = "a"\napt = []\n', "apt"),
        ('[a]\nsuite = "b"\nvariant = "minbase"\n[b]\nparent = "a"\napt = ["x;rm"]\n', "package"),
        ('[A]\nsuite = "bookworm"\nvariant = "minbase"\n', "bad name"),
        ("[a\n", "recipes:"),
    ],
)
def test_bad_recipes_are_refused(text: str, message: str) -> None:
    with pytest.raises(LayerError, match=r"recipes:|image:") as e:
        parse_recipes(text)
    assert message in str(e.value)


def test_build_order_puts_parents_first() -> None:
    recipes = load_recipes()
    assert build_order(recipes, ["python3", "gcc"]) == ["debian", "python3", "gcc"]
    with pytest.raises(LayerError, match="no recipe named 'swift'"):
        build_order(recipes, ["swift"])


def test_cache_key_covers_parent_and_recipe() -> None:
    py = Recipe("python3", parent="debian", packages=("python3",)).layer_recipe()
    assert cache_key("a" * 64, py) == cache_key("a" * 64, dict(py))
    assert cache_key("a" * 64, py) != cache_key("b" * 64, py)
    assert cache_key("a" * 64, py) != cache_key("a" * 64, {**py, "apt": ["python3", "x"]})


def test_parse_mirrors_both_formats() -> None:
    one_line = "# c\ndeb [arch=amd64] http://m.example/debian bookworm main\ndeb-src http://x b m\n"
    assert parse_mirrors(one_line, deb822=False) == [("http://m.example/debian", ["bookworm"])]
    deb822 = (
        "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://m.example/sec\nSuites: bookworm-security\n"
    )
    assert parse_mirrors(deb822, deb822=True) == [
        ("http://m.example/debian", ["bookworm", "bookworm-updates"]),
        ("http://m.example/sec", ["bookworm-security"]),
    ]


def test_gc_plan_keeps_referenced_layers() -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    entries = [a, f"{a}.json", b, f"{b}.json", f"{c}.json", ".tmp-1234", "x.json.12.part"]
    plan = gc_plan(entries, {a})
    assert plan.layers == [b, c]
    assert plan.leftovers == [".tmp-1234", "x.json.12.part"]


def test_store_images_layers_rm_and_gc(tmp_path: os.PathLike[str]) -> None:
    store = LayerStore(f"{tmp_path}/state")
    assert store.images() == []
    digests = []
    for i in range(3):
        tree = store.new_tmp()
        with open(f"{tree}/f{i}", "w") as f:
            f.write(str(i))
        digests.append(str(store.commit_layer(tree, {"name": f"l{i}"})["digest"]))
    store.save_image("base", digests[:1], "test")
    store.save_image("lang", digests[:2], "test")
    assert store.images() == ["base", "lang"]
    assert store.image_layers("lang") == [store.layer_dir(digests[1]), store.layer_dir(digests[0])]
    with pytest.raises(LayerError, match="image: no image named 'nope'"):
        store.image_layers("nope")
    os.mkdir(f"{store.layers_dir}/.tmp-leftover")
    with store.locked():
        plan = store.gc()
    assert plan.layers == [digests[2]] and plan.leftovers == [".tmp-leftover"]
    store.rm_image("lang")
    with store.locked():
        assert store.gc().layers == [digests[1]]
    assert store.image_layers("base") == [store.layer_dir(digests[0])]
    assert sorted(os.listdir(store.layers_dir)) == [digests[0], f"{digests[0]}.json"]


def test_same_content_is_stored_once(tmp_path: os.PathLike[str]) -> None:
    store = LayerStore(f"{tmp_path}/state")
    metas = []
    for _ in range(2):
        tree = store.new_tmp()
        open(f"{tree}/same", "w").close()
        metas.append(store.commit_layer(tree, {"name": "x"}))
    assert metas[0]["digest"] == metas[1]["digest"]
    assert len(store.layers()) == 1 and not any(
        n.startswith(".") for n in os.listdir(store.layers_dir)
    )


def test_state_dir_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_STATE_DIR", "/srv/st")
    assert LayerStore().layers_dir == "/srv/st/layers"
    monkeypatch.delenv("STOCKADE_STATE_DIR")
    assert LayerStore().state_dir == "/var/lib/stockade"


def setid_tree(root: str) -> None:
    """A tree as an older Stockade stored it: set-uid and set-gid files, a link to one, a
    set-gid directory."""
    os.makedirs(f"{root}/usr/bin")
    os.makedirs(f"{root}/var/mail")
    for name, mode in (("su", 0o4755), ("chage", 0o2755), ("plain", 0o755)):
        with open(f"{root}/usr/bin/{name}", "w") as f:
            f.write(name)
        os.chmod(f"{root}/usr/bin/{name}", mode)
    os.symlink("su", f"{root}/usr/bin/su-link")
    os.link(f"{root}/usr/bin/su", f"{root}/usr/bin/su-hard")
    os.chmod(f"{root}/var/mail", 0o2775)


def modes(root: str) -> dict[str, int]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = os.lstat(path).st_mode & 0o7777
    return out


def test_strip_tree_clears_set_id_bits_of_files_only(tmp_path: os.PathLike[str]) -> None:
    root = f"{tmp_path}/t"
    setid_tree(root)
    changed = strip_tree(root)
    # su and su-hard are one inode: whichever comes first is changed, the other is clean.
    assert len(changed) == 2 and "usr/bin/chage" in changed
    got = modes(root)
    assert {k: v for k, v in got.items() if v & 0o6000} == {"var/mail": 0o2775}
    assert got["usr/bin/su"] == got["usr/bin/chage"] == got["usr/bin/plain"] == 0o755
    assert os.readlink(f"{root}/usr/bin/su-link") == "su"
    assert strip_tree(root) == []
    assert safe_mode(0o104755) == 0o755 and safe_mode(0o042775) == 0o2775


def test_committed_layers_hold_no_set_id_file(tmp_path: os.PathLike[str]) -> None:
    store = LayerStore(f"{tmp_path}/state")
    tree = store.new_tmp()
    setid_tree(tree)
    meta = store.commit_layer(tree, {"name": "x"})
    layer = store.layer_dir(str(meta["digest"]))
    assert meta["setid"] == "stripped" and store.layer_meta(str(meta["digest"]))["setid"]
    assert all(not m & 0o6000 for p, m in modes(layer).items() if p != "var/mail")
    for path in (store.layers_dir, store.images_dir):
        assert os.stat(path).st_mode & 0o777 == 0o700


def test_harden_fixes_a_store_written_before(tmp_path: os.PathLike[str]) -> None:
    """Layers committed by an older Stockade (no "setid" in their metadata) are stripped in
    place and keep their names; the store's directories become 0700."""
    store = LayerStore(f"{tmp_path}/state")
    tree = store.new_tmp()
    setid_tree(tree)
    digest, _, _ = tree_digest(tree)
    os.rename(tree, store.layer_dir(digest))  # what commit_layer did before
    with open(store.layer_dir(digest) + ".json", "w") as f:
        json.dump({"digest": digest, "name": "old", "size": 1, "files": 1}, f)
    for path in (store.state_dir, store.layers_dir, store.images_dir):
        os.chmod(path, 0o755)
    assert store.harden() == [digest]
    assert {p: m for p, m in modes(store.layer_dir(digest)).items() if m & 0o6000} == {
        "var/mail": 0o2775
    }
    assert store.layer_meta(digest)["setid"] == "stripped"
    assert store.layer_meta(digest)["name"] == "old"
    assert [os.stat(p).st_mode & 0o777 for p in (store.layers_dir, store.images_dir)] == [
        0o700,
        0o700,
    ]
    assert os.stat(store.state_dir).st_mode & 0o777 == 0o755  # QEMU's uid reads microvm/
    assert store.harden() == []
    assert LayerStore(f"{tmp_path}/absent").harden() == []
    assert not os.path.exists(f"{tmp_path}/absent")


def test_harden_leaves_layers_to_the_next_open_while_the_store_is_locked(
    tmp_path: os.PathLike[str],
) -> None:
    store = LayerStore(f"{tmp_path}/state")
    tree = store.new_tmp()
    setid_tree(tree)
    digest, _, _ = tree_digest(tree)
    os.rename(tree, store.layer_dir(digest))
    with open(store.layer_dir(digest) + ".json", "w") as f:
        json.dump({"digest": digest}, f)
    os.chmod(store.layers_dir, 0o755)
    pid = os.fork()
    if pid == 0:  # holds the lock as a build would, from another process (flock(2))
        with store.locked():
            os.kill(os.getpid(), 19)  # SIGSTOP until the parent has looked
        os._exit(0)
    try:
        os.waitpid(pid, os.WUNTRACED)
        assert LayerStore(store.state_dir).harden() == []
        assert os.stat(store.layers_dir).st_mode & 0o777 == 0o700
        assert os.stat(f"{store.layer_dir(digest)}/usr/bin/su").st_mode & 0o4000
    finally:
        os.kill(pid, 18)  # SIGCONT
        os.waitpid(pid, 0)
    assert store.harden() == [digest]


def test_stockade_layers_fixes_the_store_it_opens(
    tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = LayerStore(f"{tmp_path}/state")
    tree = store.new_tmp()
    setid_tree(tree)
    digest, _, _ = tree_digest(tree)
    os.rename(tree, store.layer_dir(digest))
    with open(store.layer_dir(digest) + ".json", "w") as f:
        json.dump({"digest": digest, "name": "old", "size": 1, "files": 1}, f)
    args = argparse.Namespace(state_dir=store.state_dir, layers_cmd="ls", layers=True, json=True)
    assert run_layers(args) == 0
    assert (
        f"layer {digest[:12]}: set-id bits and file capabilities removed" in capsys.readouterr().err
    )
    assert not os.stat(f"{store.layer_dir(digest)}/usr/bin/su").st_mode & 0o6000
