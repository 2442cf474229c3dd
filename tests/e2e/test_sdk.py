"""The official Judge0 Python SDK (PyPI judge0), unmodified, pointed at Stockade."""

from __future__ import annotations

from collections.abc import Iterator

import judge0
import pytest

from tests.e2e.conftest import Stack

CPP_SUM = "#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}\n"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[judge0.Client]:
    yield judge0.Client(stack.url)


def test_run_python(client: judge0.Client) -> None:
    result = judge0.run(client=client, source_code='print("hello")', language=judge0.PYTHON)
    assert result.stdout == "hello\n"
    assert result.status == judge0.Status.ACCEPTED


def test_run_cpp(client: judge0.Client) -> None:
    result = judge0.run(client=client, source_code=CPP_SUM, language=judge0.CPP, stdin="2 40")
    assert result.stdout == "42\n"


def test_batch_run(client: judge0.Client) -> None:
    subs = [
        judge0.Submission(source_code=f"print({i} * 2)", language=judge0.PYTHON) for i in range(4)
    ]
    results = judge0.run(client=client, submissions=subs)
    assert [r.stdout for r in results] == ["0\n", "2\n", "4\n", "6\n"]


def test_test_cases(client: judge0.Client) -> None:
    cases = [
        judge0.TestCase(input="1 2", expected_output="3"),
        judge0.TestCase(input="5 5", expected_output="10"),
        judge0.TestCase(input="1 1", expected_output="3"),
    ]
    results = judge0.run(client=client, source_code=CPP_SUM, language=judge0.CPP, test_cases=cases)
    assert [r.status for r in results] == [
        judge0.Status.ACCEPTED,
        judge0.Status.ACCEPTED,
        judge0.Status.WRONG_ANSWER,
    ]
