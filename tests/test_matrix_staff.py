"""The Matrix staff rooms beside the dashboard's staff service, against a real Synapse:
decisions show on both sides, and an approved summary reaches the strategy room word for word.

Moderators and the strategy team are real matrix-nio clients; the staff service's steps run
in the bot's engine thread, as the dashboard runs them, or on another connection to the same
database while the bot is away."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Clock, Resident, start_bot
from matrix_people import MatrixPerson
from nio import DownloadResponse, RoomEncryptedFile, RoomMessageNotice
from nio.crypto import decrypt_attachment
from test_matrix import posted, reply_to, staff_room

from mitreden.clock import now
from mitreden.config import Settings
from mitreden.flows import Engine
from mitreden.flows.catalogue import Catalogue
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.staff import files, forwarding, review, summaries
from mitreden.store import Store

ANNA = "staff:anna"


def give_ideas(engine: Engine, clock: Clock, key: str, channel: str, ideas: list[str]) -> None:
    """A resident on another channel gives ideas, each filed under the first field offered,
    a minute apart (the engine slows down who writes faster)."""
    resident = Resident(engine, key, channel=channel)
    resident.consent()
    for idea in ideas:
        clock.advance(minutes=1)
        resident.says(idea)
        resident.presses(resident.values()[0])
        resident.skip_details()
        resident.presses("yes")  # another idea


def answering(person: MatrixPerson, room_id: str, event_id: str, text: str) -> list[Any]:
    """Notices in the room that reply to `event_id` and contain `text`."""
    found = []
    for event in person.received.get(room_id, []):
        relation = event.source["content"].get("m.relates_to", {})
        target = relation.get("m.in_reply_to", {}).get("event_id")
        if isinstance(event, RoomMessageNotice) and target == event_id and text in event.body:
            found.append(event)
    return found


async def test_decisions_show_in_the_moderator_room_and_on_the_dashboard(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    catalogue: Catalogue,
    db_path: Path,
    clock: Clock,
) -> None:
    moderator = await people("moderator")
    room_id = await staff_room(moderator, bot_settings.matrix_user_id, [])
    settings = Settings(**{**bot_settings.__dict__, "matrix_moderator_room": room_id})
    ideas = [
        "Mehr Sitzbänke im Volkspark Friedrichshain",
        "Trinkbrunnen an allen Spielplätzen in Pankow",
        "Digitale Bürgerämter mit Terminen am Abend",
    ]
    give_ideas(make_engine(nlp=False), clock, "p-tg-dora", "telegram", ideas)
    dashboard = Store(db_path)
    # Decided on the dashboard before the bot ever ran: history, neither posted nor told.
    review.review(dashboard, 3, "approved", ANNA, now())

    bot = await start_bot(make_engine(nlp=False), settings)
    try:
        await moderator.wait_for("Pankow", room_id)
        bench, fountain = (posted(moderator, room_id, word) for word in ("Volkspark", "Pankow"))
        store = bot.engine.store
        await bot.in_engine(review.review, store, 1, "rejected", ANNA, now(), "spam")
        who = catalogue.text("de", "review_from_dashboard", name="anna")
        rejected = catalogue.text("de", "review_rejected", id=1, who=who)
        await moderator.until(
            lambda: answering(moderator, room_id, bench, rejected), "the dashboard's rejection"
        )
        await moderator.say("nein", room_id, **reply_to(fountain))
        await moderator.wait_for("Idee 2 ist abgelehnt", room_id)
    finally:
        await bot.stop()

    # Undone on the dashboard while the bot is away: told after the restart, and nothing else
    # is told again.
    review.undo(dashboard, 1, ANNA, now())
    bot = await start_bot(make_engine(nlp=False), settings)
    try:
        undone = catalogue.text("de", "review_undone", id=1, who=who)
        await moderator.until(lambda: answering(moderator, room_id, bench, undone), "the undo")
        parts = ["Sitzbänke im Volkspark", "Schattenspender im Volkspark"]
        await bot.in_engine(review.split, bot.engine.store, None, 1, parts, ANNA, now())
        split = catalogue.text("de", "review_split", id=1, ids="4, 5", who=who)
        await moderator.until(lambda: answering(moderator, room_id, bench, split), "the split")
        await moderator.wait_for("Schattenspender", room_id)  # the parts wait for review
    finally:
        await bot.stop()

    bodies = [getattr(e, "body", "") for e in moderator.received[room_id]]
    assert [b for b in bodies if who in b] == [rejected, undone, split]
    assert sum("Idee 2 ist abgelehnt" in b for b in bodies) == 1
    assert not any("Bürgerämter" in b for b in bodies), "decided before it was posted"
    decided = [
        (e["actor"], e["action"], e["subject"])
        for e in dashboard.audit_entries(action="idea.")
        if e["action"] in (*review.AUDITED_AS.values(), "idea.undone", "idea.split")
    ]
    assert decided[::-1] == [
        (ANNA, "idea.approved", "idea:3"),
        (ANNA, "idea.rejected", "idea:1"),
        (f"matrix:{moderator.user_id}", "idea.rejected", "idea:2"),
        (ANNA, "idea.undone", "idea:1"),
        (ANNA, "idea.split", "idea:1"),
    ]
    assert [i["id"] for i in dashboard.review_queue(("rejected",))] == [1, 2]
    assert [i["id"] for i in dashboard.review_queue(("pending",))] == [4, 5]


async def test_an_approved_summary_reaches_the_strategy_room_word_for_word(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    catalogue: Catalogue,
    taxonomy: Taxonomy,
    db_path: Path,
    tmp_path: Path,
    clock: Clock,
) -> None:
    team = await people("strategy")
    room_id = await staff_room(team, bot_settings.matrix_user_id, [])
    settings = Settings(
        **{
            **bot_settings.__dict__,
            "matrix_strategy_room": room_id,
            "forward_dir": str(tmp_path / "forwarded"),
        }
    )
    give_ideas(make_engine(nlp=False), clock, "p-web-eva", "web", ["Sichere Radwege zur Schule"])
    [idea] = Store(db_path).ideas()
    text = "# Radwege\n\nDas Team hat diese Zusammenfassung geprüft und **freigegeben**."

    def approve_and_forward(engine: Engine) -> int:
        store, at = engine.store, now()
        summary_id = summaries.draft(
            store, taxonomy, catalogue, idea["confirmed_field"], "de", ANNA, at
        )
        summaries.edit(store, summary_id, text, ANNA, at)
        summaries.approve(store, summary_id, ANNA, at)
        done = forwarding.forward(store, settings, taxonomy, catalogue, summary_id, ANNA, at)
        assert done.matrix
        return summary_id

    bot = await start_bot(make_engine(nlp=False), settings)
    try:
        summary_id = await bot.in_engine(approve_and_forward, bot.engine)
        await team.wait_for("freigegeben", room_id)
        await team.until(
            lambda: sum(isinstance(e, RoomEncryptedFile) for e in team.received[room_id]) == 5,
            "all five files arrived",
        )
    finally:
        await bot.stop()

    message = next(e for e in team.received[room_id] if "freigegeben" in getattr(e, "body", ""))
    assert message.body == text + "\n\n" + catalogue.text("de", "forward_files_approved")
    assert "<strong>freigegeben</strong>" in message.source["content"]["formatted_body"]
    attached = {}
    for event in team.received[room_id]:
        if isinstance(event, RoomEncryptedFile):
            got = await team.client.download(mxc=event.url)
            assert isinstance(got, DownloadResponse), got
            key, digest = event.key["k"], event.hashes["sha256"]
            attached[event.body] = decrypt_attachment(got.body, key, digest, event.iv)
    store = Store(db_path)
    content = forwarding.forwarded(store, taxonomy, catalogue, store.summary(summary_id))
    stem = files.stem(content)
    assert sorted(attached) == sorted(f"{stem}.{ext}" for ext in files.FORMATS)
    assert attached[f"{stem}.md"].decode("utf-8") == text
    assert attached[f"{stem}.pdf"].startswith(b"%PDF")
    posts = store.audit_entries(action="summary.posted")
    assert [(e["actor"], e["subject"]) for e in posts] == [(ANNA, f"summary:{summary_id}")]
    assert store.dispatch(posts[0]["detail"]["dispatch"])["summary_id"] == summary_id
