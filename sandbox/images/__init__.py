"""Images: the content-addressed layer store, layers built from Debian packages, and OCI
image archives imported into it."""

from __future__ import annotations

from typing import Protocol


class Images(Protocol):
    """What the templates need of the layer store (sandbox.images.store.LayerStore)."""

    def images(self) -> list[str]: ...

    def image_layers(self, image: str) -> list[str]: ...
