"""Browser tests: Debian's headless Chromium driven by Selenium, and axe-core for accessibility.

Nothing here downloads: the browser and its driver come from Debian (`chromium`,
`chromium-driver`), Selenium is given the driver's path so Selenium Manager never runs, and
axe-core is the copy in tests/vendor/axe-core/ (see tests/vendor/README.md).

    driver = browser_fixture()  # in a test module: a module-scoped `driver` fixture

    def test_page(driver, site):
        driver.get(site + "/")
        violations = accessibility_violations(driver)
        assert not violations, format_violations(violations)

Selenium's calls block, so a page's server must not share the test's event loop: `serve()` runs
an aiohttp app on 127.0.0.1 in a thread of its own, and `LoopThread` runs any servers a test
needs there. `press`, `tab_to`, `choose` and `new_page` are a person at the keyboard; `narrow`
is a phone's width, or a desktop at 400 % zoom.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"

# Headless, no sandbox (we run as root in a container), and nothing that talks to the network
# on its own: this machine reaches no host but the package registries.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
# How long a page may take to load before a test counts it as stuck (not a speed limit: a page
# normally loads within a fraction of a second).
STUCK = 60
T = TypeVar("T")


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed where the harness looks for it."""


def missing_browser(binary: Path | None = None, driver_path: Path | None = None) -> str | None:
    """A one-line hint when Chromium or its driver is not installed, else None."""
    for path in (binary or CHROMIUM, driver_path or CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing; install it with: {INSTALL}"
    return None


@contextmanager
def chromium(*, binary: Path | None = None, driver_path: Path | None = None) -> Iterator[WebDriver]:
    """Start headless Chromium with a fresh profile; quit it and remove the profile afterwards."""
    binary, driver_path = binary or CHROMIUM, driver_path or CHROMEDRIVER
    if hint := missing_browser(binary, driver_path):
        raise BrowserMissing(hint)
    with tempfile.TemporaryDirectory(prefix="mitreden-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(binary)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        # An explicit driver path: Selenium Manager (which would download a driver) is skipped.
        service = Service(executable_path=str(driver_path))
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()


def browser_fixture(name: str = "driver", scope: str = "module") -> Any:
    """A pytest fixture that yields a running browser; a missing Chromium fails, never skips."""

    def fixture() -> Iterator[WebDriver]:
        if hint := missing_browser():
            pytest.fail(hint, pytrace=False)
        with chromium() as driver:
            yield driver

    return pytest.fixture(scope=scope, name=name)(fixture)


@cache
def _axe_source() -> str:
    data = AXE_JS.read_bytes()
    if hashlib.sha256(data).hexdigest() != AXE_SHA256:
        raise RuntimeError(f"{AXE_JS} is not axe-core {AXE_VERSION} as vendored")
    return data.decode("utf-8")


_RUN_AXE = """
return axe.run(document, {runOnly: {type: 'tag', values: arguments[0]},
                          resultTypes: ['violations']})
  .then(results => results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.map(t => [].concat(t).join(' >>> ')).join(' / '))})));
"""


def accessibility_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """Run axe-core's WCAG 2.1 A/AA rules on the current page and return its violations.

    Each is {"id", "impact", "help", "targets"}: one CSS selector per failing element (" >>> "
    steps into a shadow root, " / " into a frame). The elements' HTML and text are left out on
    purpose: on the chat page they would hold what a resident wrote.
    """
    if driver.execute_script("return typeof window.axe") == "undefined":
        driver.execute_script(_axe_source())
    version = driver.execute_script("return window.axe.version")
    if version != AXE_VERSION:
        raise RuntimeError(f"the page has axe-core {version}, expected {AXE_VERSION}")
    return driver.execute_script(_RUN_AXE, list(WCAG_TAGS))


def format_violations(violations: list[dict[str, Any]]) -> str:
    """One line per violation, for an assert message."""
    if not violations:
        return "no accessibility violations"
    lines = [f"{len(violations)} accessibility violation(s) (axe-core {AXE_VERSION}, WCAG 2.1 AA):"]
    for v in violations:
        lines.append(f"  {v['id']} [{v['impact']}] {v['help']}: {', '.join(v['targets'])}")
    return "\n".join(lines)


class LoopThread:
    """An event loop in a thread of its own, for the servers a test talks to through the browser:
    Selenium's calls block, and would hold up a server on the test's own loop."""

    def __init__(self, name: str = "browser-test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@contextmanager
def serve(make_app: Callable[[], web.Application]) -> Iterator[str]:
    """Serve an aiohttp app on 127.0.0.1 (a free port) from a thread; yield its base URL.

    The app is built inside the server's own event loop, so its startup hooks run there.
    """
    thread = LoopThread("browser-test-server")

    async def start() -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(make_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return runner, f"http://{host}:{port}"

    try:
        runner, url = thread.run(start())
        try:
            yield url
        finally:
            thread.run(runner.cleanup())
    finally:
        thread.close()


# the keyboard


def press(driver: WebDriver, *keys: str) -> None:
    """Type `keys` into whatever has the focus (the page itself when nothing has)."""
    ActionChains(driver).send_keys(*keys).perform()


def tab_to(driver: WebDriver, selector: str, limit: int = 150) -> WebElement:
    """Press Tab until the element with the focus matches the CSS `selector`; return it."""
    matches = "return !!document.activeElement && document.activeElement.matches(arguments[0]);"
    for _ in range(limit):
        if driver.execute_script(matches, selector):
            return driver.switch_to.active_element
        press(driver, Keys.TAB)
    raise AssertionError(f"{limit} presses of Tab never reached {selector}")


def choose(driver: WebDriver, value: str) -> None:
    """Pick the option with `value` in the focused (closed) select with the arrow keys."""
    select = driver.switch_to.active_element
    assert select.tag_name == "select", f"the focus is on a {select.tag_name}, not a select"
    values = [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")]
    assert value in values, f"{value!r} is not one of the options {values}"
    steps = values.index(value) - values.index(select.get_attribute("value"))
    press(driver, *([Keys.ARROW_DOWN if steps > 0 else Keys.ARROW_UP] * abs(steps)))
    assert select.get_attribute("value") == value, "the arrow keys did not pick the option"


def new_page(driver: WebDriver, *keys: str) -> None:
    """Press keys that send a form or follow a link, and wait until the next page has loaded."""
    before = driver.find_element(By.TAG_NAME, "html")
    press(driver, *keys)
    waiting = WebDriverWait(driver, STUCK, ignored_exceptions=(WebDriverException,))
    waiting.until(staleness_of(before))
    waiting.until(lambda d: d.execute_script("return document.readyState") == "complete")


# the window


@contextmanager
def narrow(driver: WebDriver, width: int = 320, height: int = 800) -> Iterator[None]:
    """The window `width` CSS px wide inside the block, as a phone is, or a 1280 px screen at
    400 % zoom (WCAG 1.4.10 asks that nothing then scrolls sideways); restored afterwards."""
    size = driver.get_window_size()
    driver.set_window_size(width, height)
    try:
        inner = driver.execute_script("return window.innerWidth;")
        assert inner == width, f"the window is {inner} CSS px wide, not {width}"
        yield
    finally:
        driver.set_window_size(size["width"], size["height"])


def scroll_width(driver: WebDriver) -> int:
    """How wide the page is in CSS px; wider than the window means it scrolls sideways."""
    return driver.execute_script("return document.documentElement.scrollWidth;")
