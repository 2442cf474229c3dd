"""Layer store without root: digests, recipes, mirrors, cache keys, images and gc selection."""

from __future__ import annotations

import os

import pytest

from sandbox.images.build import (
    DEFAULT_RECIPES,
    Recipe,
    build_order,
    load_recipes,
    parse_mirrors,
    parse_recipes,
)
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
