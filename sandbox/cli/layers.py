"""`stockade layers build|import|ls|inspect|rm|gc`: the layer store from the command line."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from sandbox.images.build import build_images, human, load_recipes, stderr_progress
from sandbox.images.store import LayerError, LayerStore
from sandbox.sizes import parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def add_layers_parser(subparsers: Any) -> None:
    """Add `layers` and its subcommands to a parser's subparsers."""
    p = subparsers.add_parser("layers", help="build, import and manage image layers")
    p.add_argument(
        "--state-dir", help="store root (default: $STOCKADE_STATE_DIR or /var/lib/stockade)"
    )
    sub = p.add_subparsers(dest="layers_cmd", required=True)
    b = sub.add_parser("build", help="build images from recipes (only what is not cached)")
    b.add_argument("images", nargs="*", metavar="IMAGE")
    b.add_argument("--all", action="store_true", help="build every image in the recipes")
    b.add_argument("--recipes", help="recipe file (default: profiles/images.toml)")
    i = sub.add_parser("import", help="import a docker save tarball or an OCI layout (dir or tar)")
    i.add_argument("archive")
    i.add_argument("--name", help="image name (default: the archive's tag)")
    i.add_argument("--max-size", type=_size, default="8G", help="cap on unpacked bytes (8G)")
    i.add_argument("--max-files", type=int, default=1_000_000, help="cap on entries (1000000)")
    ls = sub.add_parser("ls", help="list images, or layers with --layers")
    ls.add_argument("--layers", action="store_true")
    ls.add_argument("--json", action="store_true")
    ins = sub.add_parser("inspect", help="show an image's or a layer's metadata as JSON")
    ins.add_argument("ref", metavar="IMAGE|DIGEST")
    rm = sub.add_parser("rm", help="remove image records (their layers go at the next gc)")
    rm.add_argument("images", nargs="+", metavar="IMAGE")
    sub.add_parser("gc", help="remove layers no image references, and leftovers of crashes")


def run_layers(args: argparse.Namespace) -> int:
    """Run a parsed `stockade layers` command; errors print one line and return 1."""
    store = LayerStore(args.state_dir)
    try:
        for digest in store.harden():
            print(
                f"layer {digest[:12]}: set-id bits and file capabilities removed", file=sys.stderr
            )
        return int(_COMMANDS[args.layers_cmd](store, args))
    except LayerError as e:
        print(f"stockade layers: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"stockade layers: {e} (the store needs root)", file=sys.stderr)
        return 1


def _build(store: LayerStore, args: argparse.Namespace) -> int:
    recipes = load_recipes(args.recipes)
    names = list(recipes) if args.all else args.images
    if not names:
        raise LayerError("build: name at least one IMAGE, or --all")
    outcome = build_images(store, recipes, names, stderr_progress)
    built = [n for n, o in outcome.items() if o == "built"]
    cached = [n for n, o in outcome.items() if o == "cached"]
    print(f"built: {', '.join(built) or '-'}; cached: {', '.join(cached) or '-'}", file=sys.stderr)
    return 0


def _import(store: LayerStore, args: argparse.Namespace) -> int:
    from sandbox.images.oci import import_archive

    name = import_archive(
        store, args.archive, args.name, args.max_size, args.max_files, stderr_progress
    )
    print(name)
    return 0


def _ls(store: LayerStore, args: argparse.Namespace) -> int:
    if args.layers:
        rows: list[dict[str, Any]] = store.layers()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'DIGEST':14} {'NAME':12} {'SIZE':>10} {'SOURCE':12} CREATED")
        for m in rows:
            print(
                f"{str(m['digest'])[:12]:14} {m.get('name', '')!s:12} "
                f"{human(int(m.get('size', 0))):>10} {m.get('source', '')!s:12} "
                f"{_when(m.get('created'))}"
            )
        return 0
    images: list[dict[str, Any]] = []
    for name in store.images():
        digests = store.image_digests(name)
        size = sum(int(str(store.layer_meta(d)["size"])) for d in digests if store.has_layer(d))
        images.append({"name": name, "layers": digests, "size": size})
    if args.json:
        print(json.dumps(images, indent=2))
        return 0
    print(f"{'IMAGE':16} {'LAYERS':>6} {'SIZE':>10}  TOP")
    for im in images:
        top = im["layers"][-1][:12] if im["layers"] else "-"
        print(f"{im['name']:16} {len(im['layers']):>6} {human(im['size']):>10}  {top}")
    return 0


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _inspect(store: LayerStore, args: argparse.Namespace) -> int:
    if args.ref in store.images():
        record = store.image_record(args.ref)
        record["layer_dirs"] = store.image_layers(args.ref)
        print(json.dumps(record, indent=2))
    elif not any(str(m["digest"]).startswith(args.ref) for m in store.layers()):
        raise LayerError(f"inspect: no image or layer named {args.ref!r}")
    else:
        print(json.dumps(store.layer_meta(store.resolve(args.ref)), indent=2))
    return 0


def _rm(store: LayerStore, args: argparse.Namespace) -> int:
    with store.locked():
        for name in args.images:
            store.rm_image(name)
            print(f"removed image {name}", file=sys.stderr)
    return 0


def _gc(store: LayerStore, args: argparse.Namespace) -> int:
    with store.locked():
        plan = store.gc()
    for d in plan.layers:
        print(f"removed layer {d[:12]}", file=sys.stderr)
    for n in plan.leftovers:
        print(f"removed leftover {n}", file=sys.stderr)
    print(
        f"gc: {len(plan.layers)} layers, {len(plan.leftovers)} leftovers removed", file=sys.stderr
    )
    return 0


_COMMANDS = {
    "build": _build,
    "import": _import,
    "ls": _ls,
    "inspect": _inspect,
    "rm": _rm,
    "gc": _gc,
}
