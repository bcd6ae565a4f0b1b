"""The browser harness itself: real headless Chromium, axe-core's WCAG 2.1 A/AA rules, the keyboard.

Two tiny pages served by aiohttp: one that should pass, one with an unlabelled input and an image
without alt text (and no landmark, which only axe's best-practice rules, not run here, flag).
"""

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from browser import (
    INSTALL,
    BrowserMissing,
    accessibility_violations,
    browser_fixture,
    chromium,
    format_violations,
    missing_browser,
    serve,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

GOOD = """<!doctype html>
<html lang="de">
<head><meta charset="utf-8"><title>Mitreden: Test</title></head>
<body>
<main>
  <h1>Mitreden</h1>
  <form>
    <label for="message">Deine Nachricht</label>
    <input id="message" name="message" type="text">
    <button type="submit">Senden</button>
  </form>
</main>
</body>
</html>
"""

BAD = """<!doctype html>
<html lang="de">
<head><meta charset="utf-8"><title>Mitreden: kaputt</title></head>
<body>
  <h1>Mitreden</h1>
  <img id="logo" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="20" height="20">
  <form>
    <input id="message" name="message" type="text">
    <button type="submit">Senden</button>
  </form>
</body>
</html>
"""

driver = browser_fixture()


def pages() -> web.Application:
    app = web.Application()

    def page(html: str):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=html, content_type="text/html")

        return handler

    app.router.add_get("/good", page(GOOD))
    app.router.add_get("/bad", page(BAD))
    return app


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve(pages) as url:
        yield url


def test_an_accessible_page_has_no_violation(driver, site: str) -> None:
    driver.get(site + "/good")
    assert driver.title == "Mitreden: Test"
    violations = accessibility_violations(driver)
    assert violations == [], format_violations(violations)


def test_an_unlabelled_input_and_an_image_without_alt_are_found(driver, site: str) -> None:
    driver.get(site + "/bad")
    violations = accessibility_violations(driver)
    by_id = {v["id"]: v for v in violations}
    # Only the WCAG rules run: the missing <main> landmark (best practice) is not reported.
    assert set(by_id) == {"label", "image-alt"}, format_violations(violations)
    assert by_id["label"]["targets"] == ["#message"]
    assert by_id["image-alt"]["targets"] == ["#logo"]
    assert by_id["image-alt"]["impact"] == "critical"
    message = format_violations(violations)
    assert "image-alt [critical]" in message
    assert "#message" in message


def test_axe_runs_again_on_the_same_page(driver, site: str) -> None:
    driver.get(site + "/bad")
    first = accessibility_violations(driver)
    assert accessibility_violations(driver) == first


def test_tab_moves_focus_to_the_input(driver, site: str) -> None:
    driver.get(site + "/good")
    field = driver.find_element(By.ID, "message")
    assert driver.switch_to.active_element != field
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element == field
    ActionChains(driver).send_keys("Hallo").perform()
    assert field.get_attribute("value") == "Hallo"
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element == driver.find_element(By.TAG_NAME, "button")


def test_a_missing_chromium_is_named_with_the_install_line(tmp_path: Path) -> None:
    absent = tmp_path / "chromium"
    hint = missing_browser(binary=absent)
    assert hint is not None
    assert str(absent) in hint
    assert INSTALL in hint
    assert "\n" not in hint
    browser = chromium(binary=absent)
    with pytest.raises(BrowserMissing, match="apt-get install -y chromium chromium-driver"):
        browser.__enter__()


def test_the_fixture_fails_rather_than_skips_without_chromium(tmp_path: Path) -> None:
    (tmp_path / "test_no_browser.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            import browser

            browser.CHROMIUM = Path({str(tmp_path / "chromium")!r})
            driver = browser.browser_fixture()


            def test_needs_a_browser(driver):
                pass
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout
    assert "skipped" not in done.stdout
    assert f"{tmp_path / 'chromium'} is missing; install it with: {INSTALL}" in done.stdout
