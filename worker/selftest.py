"""Each language's self-test, judged as a submission is: the program is sent through the
Judge (compile box, artifacts, run box, limits and checker as the worker's Celery task
has them), and the language is served only when the verdict is AC."""

from __future__ import annotations

import base64
import io
import logging
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sandbox.errors import SandboxError, SpecError
from sandbox.launcher import Launcher
from worker.jobs.languages import Language, load_languages
from worker.jobs.model import CheckerSpec, JudgeResult, Submission, Verdict
from worker.judge import Judge

log = logging.getLogger(__name__)
_DETAIL = 400  # characters of compiler output or stderr kept in a reason
_OUTPUT = 120  # characters of stdout kept in a reason


def submission(language: Language) -> Submission:
    """The self-test program as a client would send it: Judge0's default limits, its stdin
    and the exact stdout it must print (compared byte for byte)."""
    test = language.self_test
    return Submission(
        source_code=test.source,
        language_id=language.id,
        stdin=test.stdin,
        expected_output=test.expected_stdout,
        checker=CheckerSpec(kind="exact"),
        additional_files=zipped(test.files) if test.files else "",
    )


def zipped(files: tuple[tuple[str, str], ...]) -> str:
    """Judge0's additional_files: the base64 of a zip of these files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files:
            z.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


def self_test(
    language: Language, launcher: Launcher, rootfs: str = "host", tier: str = "container"
) -> tuple[bool, str]:
    """Judge the language's self-test program: (enabled, why). `rootfs` is `host`, `image`
    (the language's own image) or the name of an image; `tier` is the minimum tier, as the
    worker's (the language's own default may be stronger, as for a submission)."""
    judge = Judge(launcher, {language.id: language}, rootfs=rootfs, min_tier=tier)
    return judge_self_test(judge, language)


def judge_self_test(judge: Judge, language: Language) -> tuple[bool, str]:
    """One language's self-test with a Judge that serves it: (enabled, why)."""
    start = time.monotonic()
    try:
        result = judge.judge(submission(language))
    except (SandboxError, SpecError, OSError) as e:
        return False, f"sandbox: {e}"
    if result.verdict is Verdict.AC:
        return True, f"self-test passed in {time.monotonic() - start:.2f}s"
    return False, reason(result, language.self_test.expected_stdout)


def self_test_all(
    launcher: Launcher,
    rootfs: str = "host",
    languages: dict[int, Language] | None = None,
    workers: int = 4,
    on_result: Callable[[Language, bool, str], None] | None = None,
    min_tier: str = "",
) -> dict[int, tuple[bool, str]]:
    """Every language's self-test, a few at a time, with one Judge built as the worker
    builds its own (`rootfs`, `min_tier`): {id: (enabled, why)}."""
    langs = languages if languages is not None else load_languages()
    judge = Judge(launcher, dict(langs), rootfs=rootfs, min_tier=min_tier)

    def one(lang: Language) -> tuple[bool, str]:
        outcome = judge_self_test(judge, lang)
        if not outcome[0]:
            log.warning("language %d %s switched off: %s", lang.id, lang.name, outcome[1])
        if on_result is not None:
            on_result(lang, *outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {i: pool.submit(one, lang) for i, lang in sorted(langs.items())}
        return {i: f.result() for i, f in futures.items()}


def reason(result: JudgeResult, expected: str) -> str:
    """Why a self-test failed, trimmed: the verdict, then the compiler's output (CE), the
    judge's message (IE before any box ran), or the case's: its message, how it ended and
    what it printed."""
    head = result.verdict.value
    if result.compile_output:
        return f"{head}: {_clip(result.compile_output.strip(), _DETAIL)}"
    case = result.deciding_case()
    if case is None:
        return f"{head}: {_clip(result.message, _DETAIL)}" if result.message else head
    parts = [case.message] if case.message else []
    if case.verdict is Verdict.WA:
        parts.append(f"printed {_clip(case.stdout, _OUTPUT)}, expected {_clip(expected, _OUTPUT)}")
    else:
        if not case.message and (case.exit_code is not None or case.signal):
            parts.append(
                f"exit {case.exit_code}" if case.signal is None else f"signal {case.signal}"
            )
        detail = (case.stderr or case.stdout).strip()
        if detail:
            parts.append(_clip(detail, _DETAIL))
    return f"{head}: {'; '.join(parts)}" if parts else head


def _clip(text: str, limit: int) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
