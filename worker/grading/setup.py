"""[setup] apt = [...]: the assignment's image, a layer of Debian packages over the language's,
built once by the layer store's own builder and found again by its content."""

from __future__ import annotations

import hashlib

from sandbox.images.build import Progress, Recipe, build_images, load_recipes
from sandbox.images.store import LayerError, LayerStore
from worker.grading.assignment import Assignment
from worker.jobs.languages import Language

PREFIX = "assignment-"


class SetupError(Exception):
    """The assignment's setup cannot be built; the message names the field."""


def image_name(parent: str, packages: tuple[str, ...]) -> str:
    """One name per (parent, package set): assignments that ask for the same share it."""
    text = "\0".join((parent, *sorted(set(packages))))
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def parent_image(assignment: Assignment, lang: Language | None) -> str:
    return assignment.image or (lang.image if lang is not None else "debian")


def build_setup(
    store: LayerStore, assignment: Assignment, lang: Language | None, progress: Progress
) -> str | None:
    """The image name the tests run on, built if missing; None when there is no setup.
    Packages come from the host's Debian mirror, installed the way `stockade layers build`
    installs a language's (Debian's maintainer scripts, no code of the course's)."""
    setup = assignment.setup
    if setup.empty:
        return None
    if setup.pip or setup.script:
        what = "setup.pip" if setup.pip else "setup.script"
        raise SetupError(f"{what}: not supported yet (only setup.apt: Debian packages)")
    recipes = load_recipes()
    parent = parent_image(assignment, lang)
    if parent not in recipes:
        raise SetupError(
            f"setup.apt: the image {parent!r} has no recipe in profiles/images.toml to build on"
        )
    name = image_name(parent, setup.apt)
    try:
        recipe = Recipe(name, parent=parent, packages=tuple(sorted(set(setup.apt))))
        build_images(store, {**recipes, name: recipe}, [name], progress)
    except LayerError as e:
        raise SetupError(f"setup.apt: {e}") from None
    return name
