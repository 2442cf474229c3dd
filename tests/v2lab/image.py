"""The lab's root file system: built through the layer store, one erofs disk per layer."""

from __future__ import annotations

from pathlib import Path

from sandbox.backends.microvm.disks import image_disks
from sandbox.images.build import build_images, parse_recipes
from sandbox.images.store import LayerStore

IMAGE = "v2lab"
RECIPES = Path(__file__).with_name("image.toml")


def lab_disks(store: LayerStore, disk_dir: str) -> list[str]:
    """Build the lab image (cached by content like every image) and return its layer disks,
    top-most first. The first build debootstraps and installs systemd: minutes, once."""
    recipes = parse_recipes(RECIPES.read_text())
    build_images(store, recipes, [IMAGE])
    return image_disks(disk_dir, store.image_layers(IMAGE))
