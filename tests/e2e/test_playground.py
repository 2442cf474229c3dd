"""The playground page at `/`, driven in the system's headless Chromium through Playwright
against the real stack (Redis, a worker, the API): keyboard and clicks, verdicts read off
the page, test cases, tiers, and a screenshot in the test's tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CPP, PYTHON, Stack

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect
Page = sync_api.Page

CHROMIUM = "/usr/bin/chromium"
# No network here: nothing in the background may try to reach out (updates, sync, QUIC).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
RUN_TIMEOUT_MS = 60_000  # a first C++ compile on a loaded machine

SQUARES = "n = int(input())\nfor i in range(n):\n"
SUM_CPP = """#include <iostream>
int main() { long a, b; std::cin >> a >> b; std::cout << a + b << std::endl; }
"""
SUM_PY = "print(sum(map(int, input().split())))\n"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sync_api.BrowserContext]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir
    with sync_api.sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except sync_api.Error as e:
            pytest.skip(f"Chromium does not launch under Playwright here: {e.message[:300]}")
        yield context
        context.close()


@pytest.fixture
def page(browser: sync_api.BrowserContext, stack: Stack) -> Iterator[Page]:
    page = browser.new_page()
    page.set_default_timeout(RUN_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stack.url + "/")
    # Languages arrive from GET /api/v1/languages.
    expect(page.locator(f"#language option[value='{PYTHON}']")).to_be_attached()
    yield page
    page.close()
    assert errors == [], errors  # no uncaught script error on the page


def verdict_of(page: Page) -> str:
    summary = page.locator("#summary")
    expect(summary).not_to_have_text("Running…", timeout=RUN_TIMEOUT_MS)
    return str(page.locator("#verdict").inner_text())


def test_page_is_served_at_the_root_with_a_strict_policy(stack: Stack) -> None:
    r = httpx.get(stack.url + "/")
    assert r.status_code == 200 and "<h1>Stockade playground</h1>" in r.text
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert httpx.get(stack.url + "/playground/playground.js").status_code == 200
    # Judge0's own root endpoints still answer beside it.
    assert any(lang["id"] == PYTHON for lang in httpx.get(stack.url + "/languages").json())


def test_every_control_has_a_label(page: Page) -> None:
    page.get_by_role("button", name="Add test case").click()
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('select, textarea, input, button')]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                            && !el.textContent.trim())
            .map((el) => el.outerHTML)"""
    )
    assert unlabeled == []
    assert page.locator("[aria-live]").count() >= 1
    assert page.locator("h1").count() == 1 and page.locator("h2").count() == 2


def test_python_by_keyboard(page: Page) -> None:
    page.get_by_label("Language").select_option(str(PYTHON))
    editor = page.get_by_label("Source code")
    editor.focus()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(SQUARES)
    page.keyboard.press("Tab")  # in the editor, Tab indents
    page.keyboard.type("print(i * i)\n")
    assert editor.input_value() == SQUARES + "    print(i * i)\n"
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # Esc, then Tab: out of the editor, on to stdin
    assert page.evaluate("document.activeElement.id") == "stdin"
    page.keyboard.type("4")
    page.keyboard.press("Control+Enter")
    assert verdict_of(page) == "Accepted (AC)"
    expect(page.locator("#summary")).to_contain_text("Accepted")
    assert page.locator("#outputs pre.stdout").inner_text() == "0\n1\n4\n9\n"
    assert page.locator("#ran-tier").inner_text() == "container"


def test_cpp_by_clicks(page: Page) -> None:
    page.get_by_label("Language").select_option(str(CPP))
    page.get_by_label("Source code").fill(SUM_CPP)
    page.get_by_label("Standard input").fill("40 2")
    page.get_by_role("button", name="Run").click()
    assert verdict_of(page) == "Accepted (AC)"
    assert page.locator("#outputs pre.stdout").inner_text() == "42\n"
    assert float(page.locator("#time").inner_text().removesuffix(" s")) >= 0
    assert page.locator("#memory").inner_text().endswith("iB")


def test_cpp_compile_error_shows_the_compiler(page: Page) -> None:
    page.get_by_label("Language").select_option(str(CPP))
    page.get_by_label("Source code").fill("int main() { return undeclared; }\n")
    page.get_by_role("button", name="Run").click()
    assert verdict_of(page) == "Compilation Error (CE)"
    expect(page.locator("#compile-output")).to_contain_text("undeclared")
    assert page.locator("#compile-block").is_visible()


def test_two_test_cases_and_a_screenshot(page: Page, tmp_path: Path) -> None:
    page.get_by_label("Language").select_option(str(PYTHON))
    page.get_by_label("Source code").fill(SUM_PY)
    add = page.get_by_role("button", name="Add test case")
    add.click()
    page.keyboard.type("1 2")  # a new case takes the focus at its input
    page.get_by_label("Case 1: Expected output").fill("3")
    add.click()
    page.get_by_label("Case 2: Input").fill("2 2")
    page.get_by_label("Case 2: Expected output").fill("5")
    page.get_by_role("button", name="Run").click()
    assert verdict_of(page) == "Wrong Answer (WA)"
    expect(page.locator("#summary")).to_contain_text("1 of 2 test cases accepted")
    rows = page.locator("#case-table tbody tr")
    assert rows.nth(0).locator("td").nth(1).inner_text() == "Accepted"
    assert rows.nth(1).locator("td").nth(1).inner_text() == "Wrong Answer"
    assert page.locator("#outputs pre.stdout").all_inner_texts() == ["3\n", "4\n"]
    shot = tmp_path / "playground.png"
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # Removing case 1 renumbers the other, which keeps its values.
    page.get_by_role("button", name="Remove test case 1").click()
    assert page.get_by_label("Case 1: Input").input_value() == "2 2"
    assert page.locator("#cases li").count() == 1


def test_tiers_not_offered_are_disabled(page: Page, stack: Stack) -> None:
    offered = httpx.get(stack.url + "/api/v1/health").json()["tiers"]
    options = page.locator("#tier option")
    expect(options.first).to_be_enabled()
    for i in range(options.count()):
        option = options.nth(i)
        value = option.get_attribute("value")
        if value in offered:
            expect(option).to_be_enabled()
        else:
            expect(option).to_be_disabled()
            expect(option).to_contain_text("not offered here")
