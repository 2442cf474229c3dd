"""Judge0's reference endpoints: statuses, config_info, system_info, about, version, license,
statistics, workers."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import time

from flask import Blueprint, Response, jsonify

from service.core import Core, core
from service.judge0_view import iso
from worker.jobs import heartbeat
from worker.jobs.archives import ArchiveLimits
from worker.jobs.model import DEFAULTS, JUDGE0_STATUSES

bp = Blueprint("judge0_info", __name__)
VERSION = "1.13.1"


@bp.get("/statuses")
def statuses() -> Response:
    return jsonify([{"id": i, "description": d} for i, d in JUDGE0_STATUSES.items()])


@bp.get("/config_info")
def config_info() -> Response:
    """Judge0's keys with this server's values: its settings, the model's defaults, the
    archive cap the workers extract additional_files with."""
    cfg = core().config
    m = cfg.max_limits
    compiled = [lang.name for lang in core().languages.values() if lang.compile_cmd]
    return jsonify(
        {
            "maintenance_mode": False,
            "enable_wait_result": cfg.enable_wait_result,
            "enable_compiler_options": True,
            "allowed_languages_for_compile_options": compiled,
            "enable_command_line_arguments": True,
            "enable_submission_delete": cfg.enable_submission_delete,
            "enable_callbacks": True,
            "callbacks_max_tries": cfg.callback_max_tries,
            "callbacks_timeout": cfg.callback_timeout_s,
            "enable_additional_files": True,
            "max_queue_size": cfg.max_queue_depth,
            "cpu_time_limit": DEFAULTS["cpu_time_limit"],
            "max_cpu_time_limit": m["cpu_time_limit"],
            "cpu_extra_time": DEFAULTS["cpu_extra_time"],
            "max_cpu_extra_time": m["cpu_extra_time"],
            "wall_time_limit": DEFAULTS["wall_time_limit"],
            "max_wall_time_limit": m["wall_time_limit"],
            "memory_limit": int(DEFAULTS["memory_limit"]),
            "max_memory_limit": int(m["memory_limit"]),
            "stack_limit": int(DEFAULTS["stack_limit"]),
            "max_stack_limit": int(m["stack_limit"]),
            "max_processes_and_or_threads": int(DEFAULTS["max_processes_and_or_threads"]),
            "max_max_processes_and_or_threads": int(m["max_processes_and_or_threads"]),
            "enable_per_process_and_thread_time_limit": False,
            "allow_enable_per_process_and_thread_time_limit": True,
            "enable_per_process_and_thread_memory_limit": False,
            "allow_enable_per_process_and_thread_memory_limit": True,
            "max_file_size": int(DEFAULTS["max_file_size"]),
            "max_max_file_size": int(m["max_file_size"]),
            "number_of_runs": int(DEFAULTS["number_of_runs"]),
            "max_number_of_runs": int(m["number_of_runs"]),
            "redirect_stderr_to_stdout": False,
            "max_extract_size": ArchiveLimits().max_total_bytes // 1024,  # KB, as Judge0's
            "enable_batched_submissions": True,
            "max_submission_batch_size": cfg.max_batch_size,
            "submission_cache_duration": 0.0,  # no cache: a GET reads the store
            "use_docs_as_homepage": False,
            "allow_enable_network": cfg.allow_network,
            "enable_network": False,
        }
    )


@bp.get("/system_info")
def system_info() -> Response:
    """Judge0's answer: `lscpu`'s lines and `free -h`'s totals, of the API's host."""
    return jsonify({**_cpu_info(), **_mem_info()})


@functools.cache
def _cpu_info() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=5, check=True, env={"LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    info = dict(_pair(line) for line in out.splitlines() if ":" in line)
    info.setdefault("Architecture", platform.machine())
    info.setdefault("CPU(s)", str(os.cpu_count() or 1))
    info.setdefault("Model name", platform.processor() or platform.machine())
    return info


def _pair(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def _mem_info() -> dict[str, str]:
    """Mem and Swap totals as `free -h` writes them (7.7Gi)."""
    try:
        with open("/proc/meminfo") as f:
            kb = {k: int(v.split()[0]) for k, v in map(_pair, f) if v}
    except (OSError, ValueError, IndexError):
        kb = {}
    return {
        "Mem": _human(kb.get("MemTotal", 0) * 1024),
        "Swap": _human(kb.get("SwapTotal", 0) * 1024),
    }


def _human(n: float) -> str:
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if n < 1024 or unit == "Ti":
            break
        n /= 1024
    if unit == "B":
        return f"{int(n)}B"
    return f"{n:.1f}{unit}" if n < 10 else f"{round(n)}{unit}"


@bp.get("/about")
def about() -> Response:
    return jsonify(
        {
            "version": VERSION,
            "homepage": "https://github.com/stockade",
            "source_code": "https://github.com/stockade",
            "maintainer": "Stockade (Judge0 CE 1.13-compatible API)",
        }
    )


@bp.get("/version")
def version() -> Response:
    return Response(VERSION, mimetype="text/plain")


@bp.get("/license")
def license_() -> Response:
    return Response("Apache-2.0\n", mimetype="text/plain")


@bp.get("/isolate")
def isolate() -> Response:
    return Response("Stockade box (namespaces, cgroups, seccomp)\n", mimetype="text/plain")


@bp.get("/statistics")
def statistics() -> Response:
    """Judge0's keys, computed at each request (Judge0 caches them for 10 minutes): the
    submissions by status and language, most first, per day for 30 days, and the store's
    size (Redis's memory where Judge0 has its database's)."""
    c, now = core(), time.time()
    counts = c.store.counts()
    counts[1], counts[2] = c.store.queue_depth(), c.store.running()
    by_language = c.store.language_counts()
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    days = [today - datetime.timedelta(days=n) for n in range(31)]
    per_day = c.created_per_day([d.isoformat() for d in days])
    memory = c.store.redis.info("memory")
    return jsonify(
        {
            "created_at": iso(now),
            "cached_until": iso(now),
            "submissions": {
                "total": sum(counts.values()),
                "today": per_day[0],
                # The 30 days before today, the latest first, as Judge0 lists them.
                "last_30_days": {
                    d.isoformat(): n for d, n in zip(days[1:], per_day[1:], strict=True)
                },
            },
            "languages": [
                {"language": {"id": i, "name": _language_name(c, i)}, "count": n}
                for i, n in sorted(by_language.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "statuses": [
                {"status": {"id": i, "name": JUDGE0_STATUSES[i]}, "count": n}
                for i, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                if n > 0 and i in JUDGE0_STATUSES
            ],
            "database": {
                "size_pretty": str(memory.get("used_memory_human", "")),
                "size_in_bytes": int(memory.get("used_memory", 0)),
            },
        }
    )


def _language_name(c: Core, language_id: int) -> str:
    info = c.languages.get(language_id)
    return info.name if info else f"language {language_id}"


@bp.get("/workers")
def workers() -> Response:
    """Judge0's one entry per queue (available = live worker slots, idle = those not
    working), plus each live worker host from its heartbeat."""
    c = core()
    live = c.workers()
    available = sum(b.concurrency for b in live)
    working = c.store.running()
    return jsonify(
        [
            {
                "queue": c.config.queue,
                "size": c.store.queue_depth(),
                "available": available,
                "idle": max(available - working, 0),
                "working": working,
                "paused": 0,
                "failed": c.store.counts().get(13, 0),
                "workers": [heartbeat.as_dict(b) for b in live],
            }
        ]
    )
