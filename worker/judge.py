"""The judge: compile once in a compile box, run every case in a fresh run box, check, aggregate."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sandbox.launcher import Launcher
from sandbox.result import BoxResult, Status
from sandbox.spec import MIB, BoxSpec, FileIn, Limits, strongest
from worker import checkers
from worker.interaction import run_joined
from worker.jobs.archives import ArchiveError, decode_base64, extract_zip
from worker.jobs.budgets import runs_refused
from worker.jobs.languages import (
    IMAGE,
    Language,
    expand,
    load_languages,
    renamed,
    rootfs_for,
    with_options,
)
from worker.jobs.model import (
    CaseResult,
    CompileStats,
    JudgeResult,
    Program,
    Submission,
    TestCase,
    Verdict,
    aggregate,
)
from worker.jobs.rules import MULTI_FILE_ID
from worker.jobs.settings import (
    KEPT_OUTPUT_PER_CASE,
    KEPT_OUTPUT_TOTAL,
    MAX_RUNS_PER_SUBMISSION,
)
from worker.trim import as_text, kept_bytes

KB = 1024
# sandbox.spec.validate's floors; a Judge0 request may ask for less (see _limited).
BOX_MIN_MEMORY = 4 * MIB
BOX_MIN_STACK = 64 * KB
ARTIFACT_CAP = 64 << 20  # bytes of compiled artifacts carried from the compile box
NETWORK_REFUSED = "enable_network: not allowed on this worker (STOCKADE_ALLOW_NETWORK is off)"


class BuildError(Exception):
    """The program could not be built: CE for the submission, IE for the problem's own code."""

    def __init__(
        self,
        verdict: Verdict,
        output: str,
        output_b64: str | None = None,
        compile: CompileStats | None = None,
    ) -> None:
        super().__init__(output)
        self.verdict = verdict
        self.output = output
        self.output_b64 = output_b64  # the exact bytes, when the output is not UTF-8
        self.compile = compile


@dataclass(frozen=True)
class Compiled:
    """A program ready to run: its argv and the files of its run box (checkers.BoxedProgram)."""

    argv: tuple[str, ...]
    files: tuple[FileIn, ...]
    env: tuple[tuple[str, str], ...]
    limits: Limits
    profile: str
    rootfs: str
    args: tuple[str, ...] = ()  # the submitter's, after the language's argv
    redirect_stderr: bool = False
    tier: str = "container"
    # The submitter's enable_network, set on the submission's run boxes only (see _limited).
    network: bool = False
    compile: CompileStats | None = None  # what the compile box used, where one ran

    def box_spec(self, args: Sequence[str], files: Sequence[FileIn], stdin: bytes) -> BoxSpec:
        # Placeholders ({memory_bytes}) come from the limits of this very box; words of the
        # submitter's are never expanded.
        argv = (*expand(self.argv, self.limits), *self.args, *args)
        if self.redirect_stderr:
            argv = ("/bin/sh", "-c", 'exec "$@" 2>&1', "sh", *argv)
        return BoxSpec(
            argv=argv,
            files=(*self.files, *files),
            stdin=stdin,
            env=self.env,
            limits=self.limits,
            rootfs=self.rootfs,
            profile=self.profile,
            tier=self.tier,
            network=self.network,
        )


@dataclass
class Judge:
    """Long-lived beside a Launcher: languages loaded once, one judge() per submission."""

    launcher: Launcher
    languages: dict[int, Language] = field(default_factory=dict)
    rootfs: str = "host"
    # The operator's minimum tier: every box of every submission runs at least this strongly.
    min_tier: str = ""
    # The operator's STOCKADE_ALLOW_NETWORK. The API refuses enable_network without it, but a
    # job can reach a worker whose operator said otherwise (queued before a change, or an API
    # set up apart from its workers): such a job is refused here too, never run networked.
    allow_network: bool = False
    # Builds by (language, source, files, options): a test suite or a contest compiles each
    # distinct program once. Off (None) by default: a worker judges each submission afresh.
    build_cache: dict[tuple[object, ...], Compiled] | None = None
    # The operator's budgets (STOCKADE_MAX_RUNS_PER_SUBMISSION, STOCKADE_KEPT_OUTPUT_*): the
    # API checks the first too, but a job queued by another API, or before a change, is held
    # to this worker's.
    max_runs: int = MAX_RUNS_PER_SUBMISSION.as_int({})
    kept_output_per_case: int = KEPT_OUTPUT_PER_CASE.as_int({})
    kept_output_total: int = KEPT_OUTPUT_TOTAL.as_int({})

    def __post_init__(self) -> None:
        if not self.languages:
            self.languages = load_languages()

    def judge(self, sub: Submission) -> JudgeResult:
        if sub.enable_network and not self.allow_network:
            return JudgeResult.failed(Verdict.IE, NETWORK_REFUSED)
        too_many = runs_refused(sub, self.max_runs)
        if too_many is not None:
            return JudgeResult.failed(Verdict.IE, too_many)
        unknown = self._unknown_languages(sub)
        if unknown:  # before any box: a checker's unknown language must not cost a compile
            return JudgeResult.failed(Verdict.IE, "; ".join(unknown))
        try:
            extra = _additional_files(sub)
            program = self.build(
                sub.language_id,
                _source(sub),
                extra,
                sub.compiler_options,
                sub.tier,
                name=sub.source_name,
                compile_asked=compile_asked(sub),
            )
        except BuildError as e:
            return JudgeResult.failed(e.verdict, e.output, e.compile, e.output_b64)
        if sub.enable_network and program.tier != "container":
            # The API refuses this too, but this worker's minimum tier may be stronger than
            # the one the API knew of; the stronger tiers have no network device to grant.
            rule = f"only the container tier has a network; this submission runs in {program.tier}"
            return JudgeResult.failed(Verdict.IE, f"enable_network: {rule}")
        try:
            program = self._limited(program, sub)
            custom = sub.checker.kind == "custom"
            checker = self._helper(sub.checker.program, program.tier) if custom else None
            interactor = self._helper(sub.interactor, program.tier) if sub.interactor else None
        except (BuildError, ValueError) as e:
            return JudgeResult.failed(Verdict.IE, f"problem's own program: {e}")
        results = []
        room = self.kept_output_total
        cases = sub.cases()
        # The one case of a Judge0 submission keeps its output up to max_file_size per
        # stream, as Judge0 does (within the total budget); a suite's cases keep the per-case
        # budget each.
        own = self.kept_output_per_case
        if len(cases) == 1:
            own = max(own, 2 * sub.max_file_size * KB)
        for i, case in enumerate(cases, 1):
            name = case.name or str(i)
            if interactor is not None:
                assert sub.interactor is not None
                r = self._interact(program, interactor, sub.interactor, case, name)
            else:
                r = self._run_case(program, sub, case, name, checker)
            # Cut now, case by case: only the kept heads outlive the loop.
            out, err, cut = kept_bytes(_raw(r.stdout), _raw(r.stderr), min(own, room))
            room -= len(out) + len(err)
            points = case.points if r.verdict is Verdict.AC else 0.0
            (out_text, out_b64), (err_text, err_b64) = as_text(out), as_text(err)
            results.append(
                replace(
                    r,
                    points=points,
                    stdout=out_text,
                    stderr=err_text,
                    truncated=cut,
                    stdout_b64=out_b64,
                    stderr_b64=err_b64,
                )
            )
        result = aggregate(results, sum(c.points for c in cases))
        return replace(result, compile=program.compile)

    # --- Building -------------------------------------------------------------------------

    def build(
        self,
        language_id: int,
        source: str | bytes,
        extra: dict[str, bytes],
        options: str = "",
        tier: str = "",
        *,
        name: str = "",
        compile_asked: Limits | None = None,
    ) -> Compiled:
        """Compile once; the artifacts (regular files only, capped: the box's collect never
        follows a symlink) become the files of every run box. Compile and run boxes share
        the tier: the strongest of `tier`, the language's default and the operator's. `name`
        is the program's path in /box ("" for the language's own); `compile_asked` holds the
        compile limits asked for (0 for the language's own, never above it)."""
        key = (
            language_id,
            source,
            tuple(sorted(extra.items())),
            options,
            self.rootfs,
            tier,
            name,
            compile_asked,
        )
        if self.build_cache is not None and key in self.build_cache:
            return self.build_cache[key]
        built = self._build(language_id, source, extra, options, tier, name, compile_asked)
        if self.build_cache is not None:
            self.build_cache[key] = built
        return built

    def _build(
        self,
        language_id: int,
        source: str | bytes,
        extra: dict[str, bytes],
        options: str,
        tier: str,
        name: str = "",
        compile_asked: Limits | None = None,
    ) -> Compiled:
        lang = self._language(language_id, extra)
        if name and language_id != MULTI_FILE_ID:
            lang = renamed(lang, name)
        if compile_asked is not None:
            lang = replace(lang, compile_limits=_within(lang.compile_limits, compile_asked))
        tier = strongest(tier, lang.tier, self.min_tier)
        rootfs = self._rootfs(lang, tier)
        files = [FileIn(p, c, 0o755) for p, c in sorted(extra.items())]
        if language_id != MULTI_FILE_ID:
            data = source.encode() if isinstance(source, str) else source
            mode = 0o755 if lang.executable_source else 0o644
            files.insert(0, FileIn(lang.source_file, data, mode))
        run_files = tuple(files)
        if lang.compile:
            words = _split(options, "compiler_options") if options else []
            argv = with_options(expand(lang.compile, lang.compile_limits), words)
            spec = self._compile_spec(lang, argv, run_files, rootfs, tier)
            r = self.launcher.run(spec)
            stats = CompileStats(
                r.time, r.wall_time, r.memory, r.exit_code, r.signal, r.status.value
            )
            if r.status is Status.XX:
                raise BuildError(Verdict.IE, f"compile box failed: {r.message}")
            if r.status is not Status.OK:
                raise BuildError(Verdict.CE, *_compile_output(r), compile=stats)
            missing = [e for e in lang.executables if f"/box/{e}" not in r.files]
            if missing:
                output = f"compiler produced no {', '.join(missing)}"
                raise BuildError(Verdict.CE, output, compile=stats)
            run_files = tuple(
                FileIn(p.removeprefix("/box/"), c, 0o755) for p, c in sorted(r.files.items())
            )
            return Compiled(
                lang.run,
                run_files,
                lang.env,
                lang.limits,
                lang.run_profile,
                rootfs,
                tier=tier,
                compile=stats,
            )
        return Compiled(
            lang.run, run_files, lang.env, lang.limits, lang.run_profile, rootfs, tier=tier
        )

    def _rootfs(self, lang: Language, tier: str) -> str:
        """The worker's rootfs setting, except on a microvm: a VM boots images only (the
        host's /usr is not handed to the strongest tier)."""
        return rootfs_for(lang, IMAGE if tier == "microvm" else self.rootfs)

    def _compile_spec(
        self,
        lang: Language,
        argv: tuple[str, ...],
        files: tuple[FileIn, ...],
        rootfs: str,
        tier: str,
    ) -> BoxSpec:
        return BoxSpec(
            argv=argv,
            files=files,
            env=lang.env,
            limits=lang.compile_limits,
            rootfs=rootfs,
            tier=tier,
            profile=lang.compile_profile,
            collect=("/box/",),
            collect_max_bytes=min(lang.compile_limits.fsize_bytes, ARTIFACT_CAP),
        )

    def _language(self, language_id: int, extra: dict[str, bytes]) -> Language:
        lang = self.languages.get(language_id)
        if lang is None:
            raise BuildError(Verdict.IE, f"language_id: no language {language_id}")
        if language_id == MULTI_FILE_ID:
            return _multi_file_language(lang, "compile" in extra, "run" in extra)
        return lang

    def _unknown_languages(self, sub: Submission) -> list[str]:
        """Every program of the submission whose language this worker does not serve (not
        known here, or switched off by its self-test)."""
        wanted = [("language_id", sub.language_id)]
        if sub.checker.kind == "custom" and sub.checker.program is not None:
            wanted.append(("checker.program.language_id", sub.checker.program.language_id))
        if sub.interactor is not None:
            wanted.append(("interactor.language_id", sub.interactor.language_id))
        return [
            f"{where}: no language {lang} on this worker"
            for where, lang in wanted
            if lang not in self.languages
        ]

    def _helper(self, prog: Program | None, tier: str) -> Compiled:
        """A checker or an interactor: code the client sent, as untrusted as the program it
        judges (and it reads that program's output), so it is built and run in the
        submission's tier, or in its own language's if that is stronger."""
        assert prog is not None
        built = self.build(prog.language_id, prog.source_code, {}, tier=tier)
        lim = replace(built.limits, cpu_time_s=10.0, wall_time_s=20.0)
        return replace(built, limits=lim)

    def _limited(self, program: Compiled, sub: Submission) -> Compiled:
        """Judge0's limits (KB and seconds) on the run box; the CPU limit includes the extra
        time, and a run that used more than cpu_time_limit is still a TLE (see _verdict).
        enable_network reaches these run boxes only, as Judge0's --share-net reaches isolate's
        run and never its compile; a checker's or interactor's boxes (the problem's own code,
        from _helper) never get it either."""
        # Judge0's zero CPU or stack limit is isolate's "none": the wall time bounds the CPU
        # and the memory cgroup the stack. Below the box's floors the box gets the floor and
        # _verdict holds the program to what was asked.
        cpu = sub.cpu_time_limit or sub.wall_time_limit
        stack = max(sub.stack_limit * KB, BOX_MIN_STACK) if sub.stack_limit else None
        lim = replace(
            program.limits,
            cpu_time_s=cpu + sub.cpu_extra_time,
            wall_time_s=sub.wall_time_limit,
            memory_bytes=max(sub.memory_limit * KB, BOX_MIN_MEMORY),
            stack_bytes=stack,
            pids=max(sub.max_processes_and_or_threads, program.limits.pids),
            fsize_bytes=sub.max_file_size * KB,
            output_bytes=sub.max_file_size * KB,
        )
        args = tuple(_split(sub.command_line_arguments, "command_line_arguments"))
        return replace(
            program,
            args=args,
            limits=lim,
            redirect_stderr=sub.redirect_stderr_to_stdout,
            network=sub.enable_network,
        )

    # --- Running --------------------------------------------------------------------------

    def _run_case(
        self,
        program: Compiled,
        sub: Submission,
        case: TestCase,
        name: str,
        checker: Compiled | None,
    ) -> CaseResult:
        stdin = case.input.encode()
        times, memories = [], []
        for _ in range(max(1, sub.number_of_runs)):
            r = self.launcher.run(program.box_spec((), (), stdin))
            times.append(r.time)
            memories.append(r.memory)
            if r.status.value != "OK":
                break
        verdict, message = _verdict(r, sub.cpu_time_limit, sub.memory_limit * KB)
        if verdict is Verdict.AC and case.expected_output is not None:
            answer = case.expected_output.encode()
            if checker is not None:
                prog = sub.checker.program
                assert prog is not None
                out = checkers.run_custom(
                    self.launcher, checker, prog.convention, stdin, r.stdout, answer, prog.args
                )
            else:
                out = checkers.compare(sub.checker, r.stdout, answer)
            verdict = Verdict.IE if out.failed else Verdict.AC if out.accepted else Verdict.WA
            message = out.message
        # Judge0 reports the mean time and memory of the runs it made.
        mean_memory = sum(memories) // len(memories)
        return _case(name, verdict, r, message, sum(times) / len(times), mean_memory)

    def _interact(
        self, program: Compiled, interactor: Compiled, prog: Program, case: TestCase, name: str
    ) -> CaseResult:
        """The program and the interactor in two boxes joined by two pipes."""
        answer = (case.expected_output or "").encode()
        files = checkers.checker_files(case.input.encode(), b"", answer)
        args = (*checkers.checker_args(prog.convention), *prog.args)
        joined = run_joined(
            self.launcher, program.box_spec((), (), b""), interactor.box_spec(args, files, b"")
        )
        if joined is None:
            return _case(name, Verdict.IE, None, "a box of the interaction failed to run")
        p, i, interactor_first = joined
        outcome = checkers.exit_outcome(prog.convention, i)
        verdict, message = _verdict(p, program.limits.cpu_time_s)
        if p.status.value == "XX" or i.status.value == "XX":
            return _case(name, Verdict.IE, p, f"box failed: {p.message}; {i.message}")
        broken_pipe = p.status.value == "SG" and p.signal == signal.SIGPIPE
        # An interactor that rejected before the program ran out of time wins (WA), as in
        # problemtools and DOMjudge; a time-out before the interactor ended stays TLE.
        rejected_first = interactor_first and not outcome.accepted and not outcome.failed
        if (verdict is Verdict.TLE and not rejected_first) or (
            verdict is not Verdict.AC and not broken_pipe and not interactor_first
        ):
            return _case(name, verdict, p, message)
        if outcome.failed:
            return _case(name, Verdict.IE, p, f"interactor {outcome.message}")
        if not outcome.accepted:
            return _case(name, Verdict.WA, p, outcome.message)
        return _case(name, verdict, p, message)


# --- Pure helpers ---------------------------------------------------------------------------


def _verdict(
    r: BoxResult, cpu_time_limit: float, memory_limit_bytes: int | None = None
) -> tuple[Verdict, str]:
    """A run box's result as a verdict before checking. A box failure (XX) is never the
    program's fault: IE. A zero cpu_time_limit is none (isolate's reading); a memory limit
    below the box's floor is checked here against the peak."""
    status = r.status.value
    table = {"XX": Verdict.IE, "TO": Verdict.TLE, "MLE": Verdict.MLE, "OLE": Verdict.OLE}
    if status in table:
        return table[status], r.message
    if status in ("SG", "RE"):
        return Verdict.RE, r.message
    if cpu_time_limit and r.time > cpu_time_limit:
        return Verdict.TLE, f"Time limit exceeded ({r.time:.3f} s of CPU)"
    if memory_limit_bytes is not None and r.memory > memory_limit_bytes:
        return Verdict.MLE, f"Memory limit exceeded ({r.memory // KB} KB at peak)"
    return Verdict.AC, ""


def _case(
    name: str,
    verdict: Verdict,
    r: BoxResult | None,
    message: str,
    cpu: float | None = None,
    memory: int | None = None,
) -> CaseResult:
    if r is None:
        return CaseResult(name, verdict, 0.0, 0, message=message)
    return CaseResult(
        name=name,
        verdict=verdict,
        time=round(r.time if cpu is None else cpu, 4),
        memory=r.memory if memory is None else memory,
        message=message,
        exit_code=r.exit_code,
        signal=r.signal,
        exec_format="Exec format error" in r.message,
        wall_time=round(r.wall_time, 4),
        # Whole and exact here (the box's output limit bounds it; surrogateescape keeps
        # bytes that are not UTF-8): judge() keeps only the budgets' heads, as text and bytes.
        stdout=r.stdout.decode("utf-8", "surrogateescape"),
        stderr=r.stderr.decode("utf-8", "surrogateescape"),
    )


def _raw(text: str) -> bytes:
    """A case's output as _case() kept it: the program's exact bytes."""
    return text.encode("utf-8", "surrogateescape")


def _compile_output(r: BoxResult) -> tuple[str, str | None]:
    """The compiler's output as text, and its exact bytes in base64 when not UTF-8."""
    data = r.stdout + r.stderr
    if r.status.value != "RE" or not data:
        data = f"{data.decode('utf-8', 'surrogateescape')}\n{r.message}".strip().encode(
            "utf-8", "surrogateescape"
        )
    return as_text(data)


def compile_asked(sub: Submission) -> Limits | None:
    """The compile limits a submission asks for, as a Limits of zeros where it asks none."""
    asked = (sub.compile_cpu_time_limit, sub.compile_wall_time_limit, sub.compile_memory_limit)
    if not any(asked):
        return None
    return Limits(
        cpu_time_s=float(asked[0]),
        wall_time_s=float(asked[1]),
        memory_bytes=int(asked[2]) * KB,
    )


def _within(own: Limits, asked: Limits) -> Limits:
    """The language's compile limits, each lowered to the one asked for (0: not asked)."""
    return replace(
        own,
        cpu_time_s=min(own.cpu_time_s, asked.cpu_time_s or own.cpu_time_s),
        wall_time_s=min(own.wall_time_s, asked.wall_time_s or own.wall_time_s),
        memory_bytes=min(own.memory_bytes, asked.memory_bytes or own.memory_bytes),
    )


def _additional_files(sub: Submission) -> dict[str, bytes]:
    """The submission's zip. A refused archive is the submitter's doing, not the judge's:
    CE with the reason, like any other input that cannot be built."""
    if not sub.additional_files:
        if sub.language_id == MULTI_FILE_ID:
            raise BuildError(Verdict.CE, "additional_files: a multi-file program needs a zip")
        return {}
    try:
        return extract_zip(decode_base64(sub.additional_files))
    except ArchiveError as e:
        raise BuildError(Verdict.CE, f"additional_files refused: {e}") from None


def _split(text: str, what: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as e:
        raise BuildError(Verdict.CE, f"{what}: {e}") from None


def _multi_file_language(lang: Language, has_compile: bool, has_run: bool) -> Language:
    """Judge0's language 89 (profiles/languages/multi.toml): `bash compile` when the zip has
    that script, then `bash run`."""
    if not has_run:
        raise BuildError(Verdict.CE, "additional_files: a multi-file program needs a `run` script")
    return lang if has_compile else replace(lang, compile=(), executables=())


def _source(sub: Submission) -> bytes:
    """The submission's program as bytes; a bad base64 source is the submitter's: CE."""
    try:
        return sub.source_bytes()
    except ValueError as e:
        raise BuildError(Verdict.CE, str(e)) from None
