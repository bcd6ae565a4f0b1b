"""Closing the loop: a summary forwarded from the staff side reaches the residents who asked
to hear back, through their own channel, once, and no one else.

The residents are real Telegram chats on the Bot API test server, talking to `mitreden run`'s
App; the summary is drafted, approved and forwarded by the staff service in the engine's
thread, as the dashboard does it, and `App.deliver_unsent` sends the notices."""

import asyncio
from pathlib import Path

import pytest
from telegram_server import TelegramTestServer
from test_telegram_chat import Person, consent

from mitreden.app import App
from mitreden.clock import now
from mitreden.flows.catalogue import Catalogue
from mitreden.staff import forwarding, summaries
from mitreden.staff.summaries import SummaryError

STAFF = "staff:anna"


@pytest.fixture
def app(telegram_app: App) -> App:
    return telegram_app


async def give_an_idea(person: Person, catalogue: Catalogue, idea: str, notify: str) -> None:
    """Consent, the idea, its first field, no details, and yes or no to hearing back."""
    await consent(person, catalogue)
    person.says(idea)
    await person.expect(catalogue.text("de", "readback", idea=idea))
    person.presses(person.values()[0])
    for question in ("district_question", "age_question", "group_question"):
        await person.expect(catalogue.text("de", question).splitlines()[0])
        person.presses("skip")
    await person.expect(catalogue.text("de", "notify_question"))
    person.presses(notify)
    await person.expect(catalogue.text("de", "another_question"))


def forward(app: App, lane: str) -> tuple[int, forwarding.Forwarding]:
    """What a moderator does on the dashboard: draft the field's summary, approve, forward."""
    engine, at = app.engine, now()
    store, taxonomy, catalogue = engine.store, engine.taxonomy, engine.catalogue
    summary_id = summaries.draft(store, taxonomy, catalogue, lane, "de", STAFF, at)
    summaries.approve(store, summary_id, STAFF, at)
    done = forwarding.forward(store, app.settings, taxonomy, catalogue, summary_id, STAFF, at)
    return summary_id, done


def forward_again(app: App, summary_id: int) -> None:
    engine = app.engine
    forwarding.forward(
        engine.store, app.settings, engine.taxonomy, engine.catalogue, summary_id, STAFF, now()
    )


async def test_residents_who_asked_hear_once_that_their_idea_was_forwarded(
    app: App, server: TelegramTestServer, catalogue: Catalogue, tmp_path: Path
) -> None:
    wants, declines, leaves = (Person(server, name) for name in ("Anna", "Ben", "Cem"))
    await give_an_idea(wants, catalogue, "Mehr Bänke und Schatten im Volkspark", "yes")
    await give_an_idea(declines, catalogue, "Trinkbrunnen an jedem Spielplatz", "no")
    await give_an_idea(leaves, catalogue, "Längere Öffnungszeiten der Bibliotheken", "yes")
    leaves.says("/loeschen")
    await leaves.expect(catalogue.text("de", "delete_question").split("?")[0])
    leaves.presses("yes")
    await leaves.expect("")
    store = app.engine.store
    [lane] = {i["confirmed_field"] for i in store.ideas()}
    assert len(store.ideas()) == 2

    summary_id, done = await app.in_engine(forward, app, lane)
    assert done.notified == 1 and done.matrix is False and done.mailed is None
    assert sorted(p.name.rsplit(".", 1)[1] for p in done.paths) == [
        "csv",
        "json",
        "md",
        "pdf",
        "xlsx",
    ]
    assert all(p.parent == tmp_path / "forwarded" for p in done.paths)
    # Two callers at once (the dashboard twice, say) still send each notice once.
    await asyncio.gather(app.deliver_unsent(), app.deliver_unsent())

    name = forwarding.field_name(app.engine.taxonomy, catalogue, lane, "de")
    heard = catalogue.text("de", "loop_notice").split("{")[0]

    def notices(person: Person) -> list[str]:
        return [m["text"] for m in server.sent(person.chat) if heard in m.get("text", "")]

    await server.wait_until(lambda: notices(wants), timeout=20, what="the notice")
    await server.wait_until(lambda: not store.unsent("telegram"), timeout=20, what="all sent")
    await app.deliver_unsent()
    [notice] = notices(wants)
    assert name in notice
    assert notices(declines) == [] and notices(leaves) == []

    with pytest.raises(SummaryError):
        await app.in_engine(forward_again, app, summary_id)
    await app.deliver_unsent()
    assert len(notices(wants)) == 1
    assert server.errors == []


async def test_notices_sent_beside_the_forward_are_out_before_the_app_stops(
    app: App, server: TelegramTestServer, catalogue: Catalogue
) -> None:
    """The dashboard does not wait for the notices to go out (`App.deliver_soon`); stopping
    the App right after a forward still sends them."""
    wants = Person(server, "Anna")
    await give_an_idea(wants, catalogue, "Mehr Bänke und Schatten im Volkspark", "yes")
    [lane] = {i["confirmed_field"] for i in app.engine.store.ideas()}
    _, done = await app.in_engine(forward, app, lane)
    assert done.notified == 1
    app.deliver_soon()
    await app.stop()

    heard = catalogue.text("de", "loop_notice").split("{")[0]
    assert [m for m in server.sent(wants.chat) if heard in m.get("text", "")]
    assert app.engine.store.unsent("telegram") == []
