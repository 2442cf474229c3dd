"""A Piston client library from PyPI (piston-rspy, bindings of the Rust piston_rs), unmodified,
pointed at Stockade's Piston API."""

from __future__ import annotations

import asyncio

import piston_rspy as piston

from tests.e2e.conftest import Stack


def runtimes(stack: Stack) -> list[piston.Runtime]:
    async def go() -> list[piston.Runtime]:
        return await piston.Client.with_url(f"{stack.url}/api/v2").fetch_runtimes()

    return asyncio.run(go())


def execute(stack: Stack, executor: piston.Executor) -> piston.ExecResponse:
    """The library's futures need a running event loop when they are made."""

    async def go() -> piston.ExecResponse:
        return await piston.Client.with_url(f"{stack.url}/api/v2").execute(executor)

    return asyncio.run(go())


def test_runtimes(stack: Stack) -> None:
    by_language = {rt.language: rt for rt in runtimes(stack)}
    assert by_language["python"].version == "3.11.2"
    assert "py" in by_language["python"].aliases
    assert {"c", "c++", "java", "javascript"} <= set(by_language)


def test_execute_with_stdin_and_args(stack: Stack) -> None:
    source = "import sys\nprint(sys.argv[1:], input())"
    executor = (
        piston.Executor()
        .set_language("python")
        .set_version("3")
        .add_file(piston.File(name="main.py", content=source))
        .set_stdin("hello")
        .add_args(["a", "b c"])
    )
    response = execute(stack, executor)
    assert response.is_ok() and response.language == "python"
    assert response.run.stdout == "['a', 'b c'] hello\n" and response.run.is_ok()
    assert response.compile is None


def test_compiled_language(stack: Stack) -> None:
    source = '#include <stdio.h>\nint main(void){int a,b;scanf("%d %d",&a,&b);printf("%d\\n",a+b);}'
    executor = (
        piston.Executor()
        .set_language("c")
        .set_version("12.x")
        .add_file(piston.File(name="sum.c", content=source))
        .set_stdin("2 40")
    )
    response = execute(stack, executor)
    assert response.compile is not None and response.compile.is_ok()
    assert response.run.stdout == "42\n" and response.version == "12.2.0"


def test_compile_error(stack: Stack) -> None:
    executor = (
        piston.Executor()
        .set_language("c++")
        .add_file(piston.File(name="main.cpp", content="int main( {"))
    )
    response = execute(stack, executor)
    assert response.compile is not None and response.compile.is_err()
    assert "error" in response.compile.stderr
    # Piston's own backward-compatible answer: run is a copy of compile.
    assert response.run.is_err() and response.run.stderr == response.compile.stderr
