"""/openapi.json (OpenAPI 3.0 of the native API) and a /docs page that renders it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)


def _op(summary: str, body: str | None = None, params: list[dict[str, Any]] | None = None,
        ok: str = "200") -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "4XX": {"$ref": "#/components/responses/FieldError"},
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if params:
        op["parameters"] = params
    return op


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_WAIT = {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": False}}
_PROGRAM = {
    "type": "object",
    "required": ["source_code", "language_id"],
    "properties": {
        "source_code": {"type": "string"},
        "language_id": {"type": "integer"},
        "convention": {"type": "string", "enum": ["testlib", "icpc"]},
        "args": {"type": "array", "items": {"type": "string"}},
    },
}
_NUM = {"type": "number"}
SUBMISSION = {
    "type": "object",
    "required": ["source_code"],
    "properties": {
        "source_code": {"type": "string"},
        "language_id": {"type": "integer", "description": "Judge0 id (see /api/v1/languages)"},
        "language": {"type": "string", "description": "or the language's key, e.g. python3"},
        "stdin": {"type": "string"},
        "expected_output": {"type": "string", "nullable": True},
        "test_cases": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "input": {"type": "string"},
                    "expected_output": {"type": "string", "nullable": True},
                    "points": _NUM,
                    "name": {"type": "string"},
                },
            },
        },
        "checker": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["exact", "judge0", "token", "float", "custom"]},
                "abs_tolerance": _NUM,
                "rel_tolerance": _NUM,
                "case_sensitive": {"type": "boolean"},
                "program": _PROGRAM,
            },
        },
        "interactor": _PROGRAM,
        "cpu_time_limit": {**_NUM, "description": "seconds"},
        "cpu_extra_time": {**_NUM, "description": "seconds"},
        "wall_time_limit": {**_NUM, "description": "seconds"},
        "memory_limit": {"type": "integer", "description": "KB"},
        "stack_limit": {"type": "integer", "description": "KB"},
        "max_processes_and_or_threads": {"type": "integer"},
        "max_file_size": {"type": "integer", "description": "KB"},
        "number_of_runs": {"type": "integer"},
        "enable_network": {"type": "boolean"},
        "command_line_arguments": {"type": "string"},
        "compiler_options": {"type": "string"},
        "additional_files": {"type": "string", "description": "base64 of a zip"},
        "redirect_stderr_to_stdout": {"type": "boolean"},
        "source_name": {
            "type": "string",
            "description": "the program's path in /box (letters, digits, _.+- per part); "
            "empty: the language's own file name",
        },
        "compile_cpu_time_limit": {**_NUM, "description": "seconds; 0: the language's own"},
        "compile_wall_time_limit": {**_NUM, "description": "seconds; 0: the language's own"},
        "compile_memory_limit": {"type": "integer", "description": "KB; 0: the language's own"},
        "tier": {
            "type": "string",
            "enum": ["container", "gvisor", "microvm"],
            "description": "isolation; raised to the language's default and the operator's"
            " minimum, never lowered; 422 when no live worker serves it",
        },
        "isolation": {"type": "string", "enum": ["container", "gvisor", "microvm"]},
        "callback_url": {"type": "string", "description": "PUT with the result when final"},
        "problem": {
            "type": "string",
            "description": "an uploaded problem package's id (POST /api/v1/problems): judged "
            "against its cases, validator and limits instead of test_cases",
        },
    },
}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Stockade native API", "version": "1"},
    "paths": {
        "/api/v1/submissions": {
            "post": _op("Create a submission", "Submission", [_WAIT], ok="201")
        },
        "/api/v1/submissions/{id}": {
            "get": _op("A submission and its result", params=[_ID, _WAIT]),
            "delete": _op("Delete a submission", params=[_ID]),
        },
        "/api/v1/submissions/batch": {
            "post": _op("Create several submissions", "Batch", ok="201"),
            "get": _op(
                "Several submissions",
                params=[
                    {"name": "ids", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
            ),
        },
        "/api/v1/problems": {
            "post": _op("Upload a problem package (201 new, 200 known)", "Problem", ok="201")
        },
        "/api/v1/problems/{id}": {
            "get": _op("A problem package's name, limits, cases and groups", params=[_ID])
        },
        "/api/v1/languages": {"get": _op("Languages and whether each is enabled")},
        "/api/v1/health": {"get": _op("Redis reachable, queue depth, live workers, tiers")},
    },
    "components": {
        "schemas": {
            "Submission": SUBMISSION,
            "Problem": {
                "type": "object",
                "required": ["package"],
                "properties": {
                    "package": {
                        "type": "string",
                        "description": "base64 of a zip of an ICPC/Kattis problem package",
                    }
                },
            },
            "Batch": {
                "type": "object",
                "properties": {
                    "submissions": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Submission"},
                    }
                },
            },
        },
        "responses": {
            "FieldError": {
                "description": "{field: [rule, ...]} or {error: text}",
                "content": {"application/json": {}},
            }
        },
    },
}
_DOCS = """<!doctype html><meta charset="utf-8"><title>Stockade API</title>
<h1>Stockade native API</h1><p>The OpenAPI 3 document: <a href="/openapi.json">/openapi.json</a>.
The Judge0 CE 1.13 API is at the root path; the Piston API under /api/v2.</p><ul id="p"></ul>
<script>fetch('/openapi.json').then(r => r.json()).then(d => {
for (const [path, ops] of Object.entries(d.paths)) for (const [m, op] of Object.entries(ops)) {
const li = document.createElement('li'); li.textContent = m.toUpperCase() + ' ' + path + ' \u2014 '
+ op.summary; document.getElementById('p').appendChild(li); } });</script>
"""


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(DOCUMENT)


@bp.get("/docs")
def docs() -> Response:
    return Response(_DOCS, mimetype="text/html")
