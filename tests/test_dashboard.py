"""The moderators' dashboard (bot/dashboard.py) through aiohttp's client against the real
`App`: every route, as a signed-in moderator, an admin, and someone who is neither.

Every change is a form post; each is tried without a session, without the form's token, with
another session's token, and (for admin work) as a moderator: each must be refused and change
nothing. Ideas are written straight into the database the App uses, as the chat would leave
them, so the tests need no model.
"""

import asyncio
import gc
import html
import os
import re
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from mitreden.app import App
from mitreden.config import load_settings
from mitreden.staff import accounts

NOW = "2026-12-01T10:00:00+00:00"
PASSWORD = "correct horse battery"
MARKUP = "<script>alert(1)</script><b>bold</b>"
FIELD = "smart-city-data"  # overwritten below from the taxonomy


def settings(db: Path, **overrides: Any):
    return load_settings(
        None,
        environ={},
        db=str(db),
        web_listen="127.0.0.1:0",
        embedding_backend="none",
        forward_dir=str(db.parent / "forwarded"),
        **overrides,
    )


def seed(app: App, texts: list[str]) -> list[int]:
    """Ideas as the chat leaves them: a participant each, pending review, a random unit vector
    standing in for the embedding (groups and the map need one; no model is loaded)."""
    store, ids = app.engine.store, []
    field = app.engine.taxonomy.leaves[0].id
    vectors = np.random.default_rng(len(texts)).normal(size=(len(texts), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with store.transaction():
        for n, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            pid = f"web:p{n}"
            store.ensure_participant(pid, "web", NOW)
            ids.append(
                store.add_idea(
                    participant_id=pid,
                    text=text,
                    language="de",
                    suggested_field=field,
                    suggested_score=0.9,
                    created_at=NOW,
                    updated_at=NOW,
                    embedding=vector,
                    embedding_model="test",
                )
            )
    return ids


def rows(app: App, sql: str, *args: Any) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{app.settings.db}?mode=ro", uri=True)) as db:
        return db.execute(sql, args).fetchall()


def audited(app: App, action: str) -> list[tuple]:
    return rows(app, "SELECT actor, subject, detail FROM audit WHERE action = ?", action)


class Staff:
    """A browser of a staff member: its own cookie jar, the last page's form token."""

    def __init__(self, app: App) -> None:
        self.base = app.web.address.rstrip("/")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.session.get(self.base + path, **kwargs) as response:
            body = await response.text(errors="replace")
            found = re.search(r'name="csrf" value="([^"]*)"', body)
            if found:
                self.csrf = html.unescape(found.group(1))
            return response.status, body

    async def post(
        self, path: str, data: dict[str, str] | None = None, csrf: bool = True
    ) -> tuple[int, str, str]:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        async with self.session.post(self.base + path, data=form) as response:
            return response.status, await response.text(), str(response.url.path)

    async def login(self, name: str, password: str = PASSWORD) -> tuple[int, str, str]:
        await self.get("/staff/login")
        return await self.post("/staff/login", {"name": name, "password": password})

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App(settings(tmp_path / "m.db"))
    await app.start()
    store = app.engine.store
    accounts.add(store, "mod", accounts.MODERATOR, PASSWORD, "test", NOW)
    accounts.add(store, "boss", accounts.ADMIN, PASSWORD, "test", NOW)
    yield app
    await app.stop()


@pytest.fixture
async def browsers(app: App) -> AsyncIterator[Callable[[], Staff]]:
    made: list[Staff] = []

    def make() -> Staff:
        made.append(Staff(app))
        return made[-1]

    yield make
    for browser in made:
        await browser.close()


Login = Callable[[str], Awaitable[Staff]]


@pytest.fixture
def signed_in(browsers: Callable[[], Staff]) -> Login:
    async def login(name: str) -> Staff:
        browser = browsers()
        status, _, path = await browser.login(name)
        assert (status, path) == (200, "/staff/")
        await browser.get("/staff/")
        return browser

    return login


# every state-changing route, with a form that would work for an admin
def changes(idea: int, group: int, summary: int) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/staff/ideas/{idea}/decide", {"state": "approved"}),
        (f"/staff/ideas/{idea}/undo", {}),
        (f"/staff/ideas/{idea}/field", {"field": FIELD}),
        (f"/staff/ideas/{idea}/duplicate", {"of": str(idea + 1)}),
        (f"/staff/ideas/{idea}/split", {"parts": "eins\nzwei"}),
        (f"/staff/ideas/{idea}/reveal", {"reason": "Anfrage der Polizei"}),
        (f"/staff/ideas/{idea}/move", {"to": f"new:{FIELD}"}),
        (f"/staff/groups/{group}/rename", {"label": "neu"}),
        (f"/staff/groups/{group}/merge", {"into": str(group)}),
        (f"/staff/groups/{group}/unmerge", {}),
        ("/staff/summaries", {"field": FIELD}),
        (f"/staff/summaries/{summary}", {"text": "neu"}),
        (f"/staff/summaries/{summary}/approve", {}),
        (f"/staff/summaries/{summary}/forward", {}),
        ("/staff/accounts", {"name": "eve", "role": "admin", "password": PASSWORD}),
        ("/staff/accounts/mod", {"change": "disable"}),
        ("/staff/logout", {"everywhere": "1"}),
    ]


def snapshot(app: App) -> tuple:
    """Everything a change could touch."""
    return (
        rows(app, "SELECT id, review, confirmed_field, duplicate_of FROM ideas ORDER BY id"),
        rows(app, "SELECT count(*) FROM audit"),
        rows(app, "SELECT * FROM summaries"),
        rows(app, "SELECT * FROM staff"),
        rows(app, "SELECT * FROM clusters"),
        rows(app, "SELECT * FROM cluster_members"),
    )


@pytest.fixture(autouse=True)
def field_id(app: App) -> None:
    global FIELD
    FIELD = app.engine.taxonomy.leaves[0].id


def a_group(app: App, ideas: list[int]) -> int:
    store = app.engine.store
    with store.transaction():
        group = store.new_cluster(FIELD, NOW)
        for idea in ideas:
            store.set_membership(idea, group, None)
    return group


async def test_anonymous_users_are_refused_on_every_change(app, browsers, signed_in):
    ideas = seed(app, ["Mehr Bänke im Park", "Mehr Bäume in der Straße"])
    group = a_group(app, ideas)
    admin = await signed_in("boss")
    await admin.post("/staff/summaries", {"field": FIELD})
    summary = rows(app, "SELECT max(id) FROM summaries")[0][0]
    before = snapshot(app)
    stranger = browsers()
    await stranger.get("/staff/login")
    for path, form in changes(ideas[0], group, summary):
        status, _, _ = await stranger.post(path, form, csrf=False)
        assert status == 403, path
        status, _, _ = await stranger.post(path, {**form, "csrf": admin.csrf})
        assert status == 403, path
    assert snapshot(app) == before


async def test_a_missing_or_wrong_token_is_refused(app, signed_in):
    ideas = seed(app, ["Mehr Bänke im Park", "Mehr Bäume"])
    group = a_group(app, ideas)
    admin = await signed_in("boss")
    other = await signed_in("mod")
    await admin.post("/staff/summaries", {"field": FIELD})
    summary = rows(app, "SELECT max(id) FROM summaries")[0][0]
    before = snapshot(app)
    for path, form in changes(ideas[0], group, summary):
        for token in (None, "", "x" * 64, other.csrf):
            data = dict(form) if token is None else {**form, "csrf": token}
            status, body, _ = await admin.post(path, data, csrf=False)
            assert status == 403, (path, token)
            assert app.engine.catalogue.text("de", "staff_expired") in html.unescape(body)
    assert snapshot(app) == before


async def test_moderators_are_refused_admin_work(app, signed_in):
    [idea] = seed(app, ["Ruf mich an: 0171 2345678"])
    moderator = await signed_in("mod")
    before = snapshot(app)
    for path, form in [
        (f"/staff/ideas/{idea}/reveal", {"reason": "Anfrage der Polizei"}),
        ("/staff/accounts", {"name": "eve", "role": "admin", "password": PASSWORD}),
        ("/staff/accounts/boss", {"change": "disable"}),
    ]:
        status, body, _ = await moderator.post(path, form)
        assert status == 403, path
        assert "0171" not in body
    assert (await moderator.get("/staff/accounts"))[0] == 403
    assert snapshot(app) == before


async def test_pages_need_a_session(app, browsers):
    stranger = browsers()
    for path in (
        "/staff/",
        "/staff/groups",
        "/staff/summaries",
        "/staff/audit",
        "/staff/ideas/1",
        "/staff/map.svg",
        "/staff/reach",
        "/staff/reach/map.svg",
        "/staff/files/x.md",
    ):
        status, body = await stranger.get(path)
        assert status == 200 and 'action="/staff/login"' in body, path


async def test_markup_in_an_idea_is_shown_as_text_and_personal_data_redacted(app, signed_in):
    [idea] = seed(app, [MARKUP + " Schreib an anna@example.org"])
    with app.engine.store.transaction():
        app.engine.store.update_idea(idea, updated_at=NOW)
    moderator = await signed_in("mod")
    for path in ("/staff/", f"/staff/ideas/{idea}"):
        status, body = await moderator.get(path)
        assert status == 200
        assert "<script>alert(1)</script>" not in body and "<b>bold</b>" not in body
        assert html.escape("<script>alert(1)</script>", quote=False) in body
        assert "anna@example.org" not in body


async def test_ten_wrong_passwords_throttle_the_login(app, browsers):
    guesser = browsers()
    for _ in range(10):
        status, _, _ = await guesser.login("mod", "wrong password!")
        assert status == 403
    status, _, _ = await guesser.login("mod", PASSWORD)
    assert status == 429
    # the throttle is per account and per address: another account from here is held too
    status, _, _ = await browsers().login("boss", PASSWORD)
    assert status == 429
    assert not rows(app, "SELECT * FROM staff_sessions")


async def test_session_cookie_is_strict_and_httponly(app, browsers):
    browser = browsers()
    await browser.get("/staff/login")
    async with browser.session.post(
        browser.base + "/staff/login",
        data={"name": "mod", "password": PASSWORD, "csrf": browser.csrf},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        cookie = response.cookies["mitreden_staff"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/staff/"
        # the web app's guard covers the dashboard too
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
    token = cookie.value
    assert not rows(app, "SELECT * FROM staff_sessions WHERE token_hash = ?", token)


async def test_reveal_needs_a_reason_and_is_audited(app, signed_in):
    [idea] = seed(app, ["Ruf mich an: 0171 2345678"])
    admin = await signed_in("boss")
    status, body, _ = await admin.post(f"/staff/ideas/{idea}/reveal", {"reason": "  "})
    assert status == 400 and "0171" not in body
    status, body, _ = await admin.post(f"/staff/ideas/{idea}/reveal", {})
    assert status == 400 and "0171" not in body
    assert not audited(app, "idea.revealed")
    status, body, _ = await admin.post(
        f"/staff/ideas/{idea}/reveal", {"reason": "Anfrage der Polizei"}
    )
    assert status == 200 and "0171 2345678" in body
    [(actor, subject, detail)] = audited(app, "idea.revealed")
    assert (actor, subject) == ("staff:boss", f"idea:{idea}")
    assert "Anfrage der Polizei" in detail


async def test_approve_reject_with_reason_and_undo(app, signed_in):
    first, second = seed(app, ["Mehr Bänke im Park", "kaufen Sie jetzt billig"])
    moderator = await signed_in("mod")
    status, body, _ = await moderator.post(
        f"/staff/ideas/{first}/decide", {"state": "approved", "back": "/staff/"}
    )
    assert status == 200
    assert app.engine.catalogue.text("de", "staff_done_approved") in html.unescape(body)
    status, body, _ = await moderator.post(f"/staff/ideas/{second}/decide", {"state": "rejected"})
    assert status == 400  # no reason
    status, _, _ = await moderator.post(
        f"/staff/ideas/{second}/decide", {"state": "rejected", "reason": "spam", "note": "Werbung"}
    )
    assert rows(
        app, "SELECT review, review_reason, review_note FROM ideas WHERE id = ?", second
    ) == [("rejected", "spam", "Werbung")]
    status, body, _ = await moderator.post(f"/staff/ideas/{second}/undo", {})
    assert rows(app, "SELECT review FROM ideas WHERE id = ?", second) == [("pending",)]
    actions = [
        a
        for (a,) in rows(
            app, "SELECT action FROM audit WHERE subject = ? ORDER BY id", f"idea:{second}"
        )
    ]
    assert actions == ["idea.rejected", "idea.undone"]
    _, queue = await moderator.get("/staff/?state=approved")
    assert f'id="idea-{first}"' in queue and f'id="idea-{second}"' not in queue


async def test_forged_values_change_nothing(app, signed_in):
    [idea] = seed(app, ["Mehr Bänke im Park"])
    moderator = await signed_in("mod")
    before = snapshot(app)
    for path, form in [
        (f"/staff/ideas/{idea}/decide", {"state": "deleted"}),
        (f"/staff/ideas/{idea}/decide", {"state": "rejected", "reason": "because"}),
        (f"/staff/ideas/{idea}/field", {"field": "../../etc"}),
        (f"/staff/ideas/{idea}/duplicate", {"of": "-1"}),
        (f"/staff/ideas/{idea}/duplicate", {"of": str(idea)}),
        (f"/staff/ideas/{idea}/move", {"to": "new:nowhere"}),
        ("/staff/ideas/99999999999999999999/decide", {"state": "approved"}),
        ("/staff/summaries", {"field": "<script>"}),
    ]:
        status, body, _ = await moderator.post(path, form)
        assert status in (400, 404), (path, form)
        assert "<script>" not in body
    assert snapshot(app) == before


async def test_groups_rename_merge_move_and_the_map(app, signed_in):
    ideas = seed(app, ["Mehr Bänke im Park", "Bänke am Spielplatz", "Schatten im Park"])
    one, two = a_group(app, ideas[:2]), a_group(app, ideas[2:])
    moderator = await signed_in("mod")
    status, page = await moderator.get(f"/staff/groups?field={FIELD}")
    assert status == 200 and f"/staff/groups/{one}" in page
    await moderator.post(f"/staff/groups/{one}/rename", {"label": MARKUP})
    _, page = await moderator.get(f"/staff/groups/{one}")
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    await moderator.post(f"/staff/groups/{two}/merge", {"into": str(one)})
    assert rows(app, "SELECT merged_into FROM clusters WHERE id = ?", two) == [(one,)]
    await moderator.post(f"/staff/ideas/{ideas[0]}/move", {"to": f"new:{FIELD}"})
    [(moved_to,)] = rows(app, "SELECT cluster_id FROM cluster_members WHERE idea_id = ?", ideas[0])
    assert moved_to not in (one, two)
    for picture in ("map", "counts"):
        status, svg = await moderator.get(f"/staff/{picture}.svg")
        assert status == 200 and "<svg" in svg[:300], picture
        assert "<script" not in svg and "<b>" not in svg
    # The map is kept while nothing changed, and drawn again when an idea comes.
    [new] = seed(app, ["Ein Trinkbrunnen im Park"])
    _, svg = await moderator.get("/staff/map.svg")
    assert f'/staff/ideas/{new}"' in svg and f'/staff/ideas/{ideas[0]}"' in svg


async def test_the_reach_page_shows_who_took_part_and_hides_small_groups(app, signed_in):
    """Three residents, all in one district: too few to show (tests/test_reach.py has the
    figures themselves)."""
    seed(app, ["Mehr Bänke im Park", "Bänke am Spielplatz", "Schatten im Park"])
    moderator = await signed_in("mod")
    status, page = await moderator.get("/staff/reach")
    assert status == 200 and "Wer mitgemacht hat" in page
    assert "&lt;5" in page and "Amt für Statistik Berlin-Brandenburg" in page
    for picture in ("map", "district", "age_band", "week"):
        status, svg = await moderator.get(f"/staff/reach/{picture}.svg")
        assert status == 200 and svg.startswith("<svg"), picture
    status, svg = await moderator.get("/staff/reach/map.svg")
    assert svg.count("<polygon") >= 12 and "Neukölln" in svg
    status, _ = await moderator.get("/staff/reach/..%2Fsecrets.svg")
    assert status == 404


async def test_the_ideas_are_read_for_summaries_beside_the_start(app) -> None:
    """So the first groups page after a start does not wait for spaCy to read every idea."""
    ideas = seed(app, ["Mehr Bänke im Park", "Bänke am Spielplatz", "Schatten im Park"])
    a_group(app, ideas)
    for earlier in [t for t in threading.enumerate() if t.name == "staff-warm-up"]:
        await asyncio.to_thread(earlier.join)  # the app's own start's, on a busy machine
    store = app.engine.store
    with store.transaction():
        store.db.execute("DELETE FROM readings")  # as an old database has none
    app.web.dashboard.start()
    for warm_up in [t for t in threading.enumerate() if t.name == "staff-warm-up"]:
        await asyncio.to_thread(warm_up.join)  # (or it was done before this looked)
    assert store.readings(ideas, "words").keys() == set(ideas)
    assert gc.get_freeze_count() > 0, "what lives as long as the server is frozen"


async def test_summary_edit_approve_forward_writes_files_and_audits(app, signed_in):
    seed(app, ["Mehr Bänke im Park", "Bänke am Spielplatz"])
    moderator = await signed_in("mod")
    status, page, path = await moderator.post("/staff/summaries", {"field": FIELD})
    assert status == 200 and path.startswith("/staff/summaries/")
    summary = int(path.rsplit("/", 1)[1])
    text = "# Zusammenfassung\n\nBänke sind gewünscht. " + MARKUP
    await moderator.post(f"/staff/summaries/{summary}", {"text": text})
    _, page = await moderator.get(f"/staff/summaries/{summary}")
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page
    status, page, _ = await moderator.post(f"/staff/summaries/{summary}/forward", {})
    why = app.engine.catalogue.text("de", "refused_not_approved")
    assert status == 400 and html.escape(why) in page, "a draft is not forwarded, and why"
    assert not app.settings.forward_directory.exists()
    await moderator.post(f"/staff/summaries/{summary}/approve", {})
    status, page, _ = await moderator.post(f"/staff/summaries/{summary}/forward", {})
    assert status == 200
    files = sorted(p.suffix for p in (app.settings.forward_directory).iterdir())
    assert files == [".csv", ".json", ".md", ".pdf", ".xlsx"]
    status, page, _ = await moderator.post(f"/staff/summaries/{summary}/forward", {})
    assert status == 400, "forwarded once only"
    md = next(app.settings.forward_directory.glob("*.md")).read_text()
    assert "Bänke sind gewünscht." in md
    _, page = await moderator.get(f"/staff/summaries/{summary}")
    name = re.search(r'href="/staff/files/([^"]+\.pdf)"', page).group(1)
    status, _ = await moderator.get(f"/staff/files/{name}")
    assert status == 200
    assert [
        a
        for (a,) in rows(
            app, "SELECT action FROM audit WHERE subject = ? ORDER BY id", f"summary:{summary}"
        )
    ] == ["summary.drafted", "summary.edited", "summary.approved", "summary.forwarded"]
    # a forwarded summary is never changed
    status, _, _ = await moderator.post(f"/staff/summaries/{summary}", {"text": "anders"})
    assert status == 400


async def test_forwarding_makes_the_files_even_when_the_helper_process_died(app, signed_in, caplog):
    """The PDF and XLSX are made in a helper process, started when a summary is approved. If
    it is killed (out of memory, say), this forward makes its files itself and the next one
    starts another."""
    seed(app, ["Mehr Bänke im Park", "Bänke am Spielplatz"])
    moderator = await signed_in("mod")
    forwarded = []
    for _ in range(2):
        _, _, path = await moderator.post("/staff/summaries", {"field": FIELD})
        summary = int(path.rsplit("/", 1)[1])
        await moderator.post(f"/staff/summaries/{summary}/approve", {})
        helper = app.web.dashboard._helper
        os.kill(helper.submit(os.getpid).result(), signal.SIGKILL)
        status, _, _ = await moderator.post(f"/staff/summaries/{summary}/forward", {})
        assert status == 200
        forwarded.append(
            sorted(p.suffix for p in app.settings.forward_directory.glob(f"*-{summary}-*"))
        )
        assert app.web.dashboard._helper is not helper
    assert forwarded == [[".csv", ".json", ".md", ".pdf", ".xlsx"]] * 2
    assert caplog.text.count("the process that makes PDF and XLSX files stopped") == 2


async def test_files_outside_the_folder_are_not_served(app, signed_in):
    moderator = await signed_in("mod")
    (app.settings.db.parent / "secret.md").write_text("geheim")
    for name in ("..%2Fsecret.md", "%2E%2E%2Fm.db", "m.db", "secret.md", ".md"):
        status, body = await moderator.get(f"/staff/files/{name}")
        assert status == 404 and "geheim" not in body


async def test_audit_page_lists_and_filters(app, signed_in):
    first, second = seed(app, ["Mehr Bänke", "Mehr Bäume"])
    moderator = await signed_in("mod")
    await moderator.post(f"/staff/ideas/{first}/decide", {"state": "approved"})
    await moderator.post(
        f"/staff/ideas/{second}/decide", {"state": "rejected", "reason": "off_topic"}
    )
    _, page = await moderator.get("/staff/audit?action=idea.rejected")
    assert f"<td>idea:{second}</td>" in page and f"<td>idea:{first}</td>" not in page
    _, page = await moderator.get("/staff/audit?actor=staff:mod&action=%25")
    assert "<td>idea.approved</td>" not in page  # % is taken literally
    _, page = await moderator.get(f"/staff/audit?subject=idea:{first}")
    assert "<td>idea.approved</td>" in page and f"<td>idea:{second}</td>" not in page


async def test_sign_out_everywhere_ends_other_sessions(app, signed_in):
    laptop, phone = await signed_in("mod"), await signed_in("mod")
    _, _, path = await laptop.post("/staff/logout", {"everywhere": "1"})
    assert path == "/staff/login"
    _, body = await phone.get("/staff/")
    assert 'action="/staff/login"' in body
    assert audited(app, "staff.signed_out")


async def test_admin_adds_and_disables_accounts(app, signed_in, browsers):
    admin = await signed_in("boss")
    await admin.get("/staff/accounts")
    await admin.post("/staff/accounts", {"name": "eve", "role": "moderator", "password": PASSWORD})
    assert rows(app, "SELECT role FROM staff WHERE name = 'eve'") == [("moderator",)]
    status, _, _ = await admin.post(
        "/staff/accounts", {"name": "x\ny", "role": "moderator", "password": PASSWORD}
    )
    assert status == 400
    moderator = await signed_in("mod")
    await admin.post("/staff/accounts/mod", {"change": "disable"})
    status, body = await moderator.get("/staff/")
    assert 'action="/staff/login"' in body
    status, _, _ = await browsers().login("mod")
    assert status == 403


async def test_an_erasure_takes_the_words_out_of_unforwarded_summaries(app, signed_in):
    words = "Wasserpumpe am Kollwitzplatz mit Schaukeln"
    a_group(app, seed(app, [words, "Mehr Bänke im Park"]))
    moderator = await signed_in("mod")
    _, _, path = await moderator.post("/staff/summaries", {"field": FIELD})
    summary = int(path.rsplit("/", 1)[1])
    assert "Wasserpumpe" in rows(app, "SELECT text FROM summaries")[0][0]
    store = app.engine.store

    def erase() -> None:
        with store.transaction():
            store.erase_participant("web:p0")
        store.checkpoint()

    await app.in_engine(erase)
    assert rows(app, "SELECT id FROM summaries WHERE id = ?", summary) == []
    db = app.settings.db
    for name in (db.name, f"{db.name}-wal"):
        assert b"Wasserpumpe" not in (db.parent / name).read_bytes(), name
    status, _ = await moderator.get(f"/staff/summaries/{summary}")
    assert status == 404


async def test_logs_hold_no_password_name_or_resident_words(app, signed_in, browsers, caplog):
    caplog.set_level("DEBUG")
    [idea] = seed(app, ["Ruf Erika Mustermann an: 0171 2345678"])
    await browsers().login("boss", "wrong password!!")
    admin = await signed_in("boss")
    await admin.post(f"/staff/ideas/{idea}/reveal", {"reason": "Anfrage der Polizei"})
    await admin.post(f"/staff/ideas/{idea}/decide", {"state": "rejected", "reason": "spam"})
    await admin.post("/staff/summaries", {"field": FIELD})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (PASSWORD, "wrong password", "boss", "Mustermann", "0171", "Polizei"):
        assert secret not in logged, secret


async def test_mail_that_failed_is_sent_again_from_the_summary_page(tmp_path, browsers):
    """The mail server is down when the summary is forwarded, up when it is tried again."""
    from aiosmtpd.controller import Controller
    from test_dashboard_browser import free_port
    from test_staff_mail import Inbox

    port = free_port()
    app = App(
        settings(
            tmp_path / "mail.db",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_starttls=False,
            smtp_from="mitreden@example.org",
            smtp_to="strategie@example.org",
        )
    )
    await app.start()
    try:
        accounts.add(app.engine.store, "mod", accounts.MODERATOR, PASSWORD, "test", NOW)
        a_group(app, seed(app, ["Mehr Bänke im Park", "Bänke am Spielplatz"]))
        moderator = browsers_for(app, browsers)
        assert (await moderator.login("mod"))[2] == "/staff/"
        await moderator.get("/staff/")
        _, _, path = await moderator.post("/staff/summaries", {"field": FIELD})
        assert path.startswith("/staff/summaries/"), path
        await moderator.get(path)
        summary = path.rsplit("/", 1)[1]
        await moderator.post(f"/staff/summaries/{summary}/approve", {})
        _, page, _ = await moderator.post(f"/staff/summaries/{summary}/forward", {"back": path})
        assert app.engine.catalogue.text("de", "staff_mail_failed") in html.unescape(page)
        inbox = Inbox()
        server = Controller(inbox, hostname="127.0.0.1", port=port)
        server.start()
        try:
            _, page, _ = await moderator.post(f"/staff/summaries/{summary}/mail", {"back": path})
        finally:
            server.stop()
        assert app.engine.catalogue.text("de", "staff_mail_sent") in html.unescape(page)
        assert len(inbox.envelopes) == 1
        actions = [
            a for (a,) in rows(app, "SELECT action FROM audit WHERE action LIKE 'summary.mail%'")
        ]
        assert actions == ["summary.mail_failed", "summary.mailed"]
    finally:
        await app.stop()


def browsers_for(app: App, browsers: Callable[[], Staff]) -> Staff:
    """A staff browser on another App than the fixture's."""
    browser = browsers()
    browser.base = app.web.address.rstrip("/")
    return browser
