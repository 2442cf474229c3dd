"""An assignment's [setup] as image layers over the language's image, each built once and found
again by its content: `apt` by the layer store's own builder, then `pip` and `script` in a
setup box (root of a user namespace, a network that reaches only the package mirrors)."""

from __future__ import annotations

import hashlib
import json
import shlex

from sandbox.config import HostConfig
from sandbox.errors import SandboxError
from sandbox.images.build import Progress, Recipe, build_images, load_recipes
from sandbox.images.setupbox import SetupJob
from sandbox.images.setuplayer import build_setup_image
from sandbox.images.store import LayerError, LayerStore
from worker.grading.assignment import Assignment
from worker.grading.tree import digest
from worker.jobs.languages import Language

PREFIX = "assignment-"
REQUIREMENTS = ".stockade-requirements.txt"  # beside the instructor's files, in the setup box
# pip itself, when the image lacks it: Debian's, from the Debian mirror.
_PIP = (
    "python3 -m pip --version >/dev/null 2>&1 || "
    "{ apt-get -q update && apt-get -q install -y --no-install-recommends python3-pip; }"
)


class SetupError(Exception):
    """The assignment's setup cannot be built; the message names the field."""


def image_name(parent: str, packages: tuple[str, ...]) -> str:
    """One name per (parent, package set): assignments that ask for the same share it."""
    text = "\0".join((parent, *sorted(set(packages))))
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def parent_image(assignment: Assignment, lang: Language | None) -> str:
    return assignment.image or (lang.image if lang is not None else "debian")


def build_setup(
    store: LayerStore,
    config: HostConfig,
    assignment: Assignment,
    lang: Language | None,
    progress: Progress,
    wall_time_s: float = SetupJob.wall_time_s,
) -> str | None:
    """The image name the tests run on, built if missing; None when there is no setup.
    wall_time_s bounds the setup box (pip, script) that builds it."""
    setup = assignment.setup
    if setup.empty:
        return None
    image = parent_image(assignment, lang)
    if setup.apt:
        image = _build_apt(store, image, setup.apt, progress)
    if not (setup.pip or setup.script):
        return image
    check_setup(assignment)
    files = dict(assignment.files)
    steps = ["set -e"]
    recipe: dict[str, object] = {"assignment-setup": 1}
    if setup.pip:
        files[REQUIREMENTS] = "".join(f"{r}\n" for r in setup.pip).encode()
        steps += [_PIP, f"python3 -m pip install -r {REQUIREMENTS}"]
        recipe["pip"] = list(setup.pip)
    if setup.script:
        steps.append(run_script(setup.script))
        # The script may read any of the instructor's files: all of them are its content.
        recipe["script"] = setup.script
        recipe["files"] = digest(files)
    name = PREFIX + _hash(image, recipe)
    job = SetupJob(
        command="\n".join(steps), files=tuple(sorted(files.items())), wall_time_s=wall_time_s
    )
    what = "setup.script" if setup.script else "setup.pip"
    try:
        build_setup_image(store, config, image, name, recipe, job, progress)
    except (LayerError, SandboxError, ValueError, OSError) as e:
        raise SetupError(f"{what}: {e}") from None
    return name


def check_setup(assignment: Assignment) -> None:
    """SetupError, naming the field, for a [setup] pip or script that cannot run at all."""
    setup = assignment.setup
    for req in setup.pip:
        if req.lstrip().startswith("-") or "\n" in req:
            raise SetupError(f"setup.pip: {req!r} is not a requirement (options are not taken)")
    if setup.script and setup.script not in assignment.files:
        raise SetupError(f"setup.script: no file {setup.script!r} beside assignment.toml")


def run_script(path: str) -> str:
    """A shell line running a setup script as Gradescope does (bash, else sh), from its dir."""
    q = shlex.quote(path)
    return f"if [ -x /bin/bash ]; then /bin/bash {q}; else /bin/sh {q}; fi"


def _hash(parent: str, recipe: dict[str, object]) -> str:
    text = json.dumps({"parent": parent, "recipe": recipe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build_apt(
    store: LayerStore, parent: str, packages: tuple[str, ...], progress: Progress
) -> str:
    """Packages come from the host's Debian mirror, installed the way `stockade layers build`
    installs a language's (Debian's maintainer scripts, no code of the course's)."""
    recipes = load_recipes()
    if parent not in recipes:
        raise SetupError(
            f"setup.apt: the image {parent!r} has no recipe in profiles/images.toml to build on"
        )
    name = image_name(parent, packages)
    try:
        recipe = Recipe(name, parent=parent, packages=tuple(sorted(set(packages))))
        build_images(store, {**recipes, name: recipe}, [name], progress)
    except LayerError as e:
        raise SetupError(f"setup.apt: {e}") from None
    return name
