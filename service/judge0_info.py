"""Judge0's reference endpoints: statuses, config_info, system_info, about, version, license,
statistics, workers."""

from __future__ import annotations

import os
import platform
import time

from flask import Blueprint, Response, jsonify

from service.core import Core, core
from service.judge0_view import iso
from worker.jobs import heartbeat
from worker.jobs.model import DEFAULTS, JUDGE0_STATUSES

bp = Blueprint("judge0_info", __name__)
VERSION = "1.13.1"


@bp.get("/statuses")
def statuses() -> Response:
    return jsonify([{"id": i, "description": d} for i, d in JUDGE0_STATUSES.items()])


@bp.get("/config_info")
def config_info() -> Response:
    cfg = core().config
    m = cfg.max_limits
    compiled = [lang.name for lang in core().languages.values() if lang.compile_cmd]
    return jsonify(
        {
            "maintenance_mode": False,
            "enable_wait_result": True,
            "enable_compiler_options": True,
            "allowed_languages_for_compile_options": compiled,
            "enable_command_line_arguments": True,
            "enable_submission_delete": True,
            "enable_callbacks": True,
            "callbacks_max_tries": 3,
            "callbacks_timeout": 5.0,
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
            "max_extract_size": 10240,
            "enable_batched_submissions": True,
            "max_submission_batch_size": cfg.max_batch_size,
            "submission_cache_duration": 1.0,
            "use_docs_as_homepage": False,
            "allow_enable_network": cfg.allow_network,
            "enable_network": False,
        }
    )


@bp.get("/system_info")
def system_info() -> Response:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return jsonify(
        {
            "Architecture": platform.machine(),
            "CPU(s)": str(os.cpu_count() or 1),
            "Model name": platform.processor() or platform.machine(),
            "Kernel": platform.release(),
            "Mem": f"{pages * page_size // (1024 * 1024)}M",
        }
    )


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
    c = core()
    counts = c.store.counts()
    counts[1], counts[2] = c.store.queue_depth(), c.store.running()
    by_language = c.store.language_counts()
    return jsonify(
        {
            "now": iso(time.time()),
            "statuses": [
                {"status": {"id": i, "name": d}, "count": counts.get(i, 0)}
                for i, d in JUDGE0_STATUSES.items()
            ],
            "submissions": {"total": sum(counts.values())},
            # Finished submissions per language, most used first, as Judge0 lists them.
            "languages": [
                {"language": {"id": i, "name": _language_name(c, i)}, "count": n}
                for i, n in sorted(by_language.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
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
