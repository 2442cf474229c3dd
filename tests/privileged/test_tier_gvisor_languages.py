"""Every language's self-test on the gVisor tier, on its own image: the Sentry implements
Linux anew, and a runtime may find where it differs (Ruby crashed at start when its stack
limit passed the Sentry's 128 MiB ceiling)."""

from __future__ import annotations

import pytest

from sandbox.launcher import Launcher
from tests.privileged.test_language_selftests import IDS, LANGUAGES, built_images
from tests.privileged.test_tier_gvisor import gvisor_usable, nothing_left
from worker.jobs.languages import Language
from worker.selftest import self_test

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
__all__ = ["gvisor_usable", "nothing_left"]


@pytest.mark.parametrize("language", LANGUAGES, ids=IDS)
def test_self_test_on_gvisor(launcher: Launcher, language: Language) -> None:
    images = built_images()
    if images is None or language.image not in images:
        pytest.skip(f"image {language.image} not built (stockade layers build {language.image})")
    enabled, reason = self_test(language, launcher, "image", tier="gvisor")
    assert enabled, f"{language.name} on gVisor, image {language.image}: {reason}"
