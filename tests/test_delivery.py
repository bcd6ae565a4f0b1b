"""Nothing lost, nothing stops the bot: the outbox, poison messages and a database that cannot
be written, in the engine and through the real Telegram and Matrix channels.

A poison message is made the way a real one would reach us: the database itself refuses it
(a trigger that raises for one marker word), so no code of ours is replaced.
"""

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TELEGRAM_SECRET, Resident, started
from isolated import environment
from matrix_people import MatrixPerson
from nio import (
    RoomGetStateEventResponse,
    RoomPutStateResponse,
    ToDeviceMessage,
    ToDeviceResponse,
)
from telegram_server import TelegramTestServer
from test_matrix import IDEA, de, posted, react, staff_room, start_bot
from test_telegram_chat import Person, consent

from mitreden.config import Settings
from mitreden.flows import Engine, Inbound
from mitreden.flows.catalogue import Catalogue
from mitreden.identity import Pseudonymizer
from mitreden.store import Store, StoreUnavailable

POISON = "Giftwort"
IDEA_TEXT = "Mehr Trinkbrunnen in den Parks von Neukölln"


def poison(store: Store) -> None:
    """Ideas holding the marker word make the step raise, as any bug deep inside it would."""
    store.db.execute(
        f"CREATE TRIGGER poison BEFORE INSERT ON ideas WHEN NEW.text LIKE '%{POISON}%' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
    )


def deliveries(store: Store) -> dict[str, str]:
    return dict(store.db.execute("SELECT key, outcome FROM deliveries").fetchall())


# the engine


def test_replies_wait_in_the_outbox_until_sent_and_survive_a_restart(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(nlp=False)
    first = engine.receive(Inbound("tg", "p-anna", text="Hallo", address="chat-1", key="1"))
    assert first and all(parcel.address == "chat-1" for parcel in first)

    again = make_engine(nlp=False)  # a new process after a crash: nothing was sent
    assert [p.id for p in again.unsent("tg")] == [p.id for p in first]
    assert again.unsent("tg")[0].message == first[0].message
    assert again.receive(Inbound("tg", "p-anna", text="Hallo", address="chat-1", key="1")) == []

    again.sent(first[0], 1, done=False)  # one piece out, then a crash
    assert again.unsent("tg")[0].parts_sent == 1
    again.sent(first[0], 2, done=True)
    assert again.unsent("tg") == []
    assert again.unsent("matrix") == []


def test_a_data_export_and_a_pressed_button_survive_the_outbox(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(nlp=False)
    person = Resident(engine, "p-ben", channel="tg")
    person.consent()
    parcels = engine.receive(Inbound("tg", "p-ben", text="/meinedaten", address="c", key="9"))
    [export] = [p for p in make_engine(nlp=False).unsent("tg") if p.message.attachment]
    [sent] = [p for p in parcels if p.id == export.id]
    assert export.message.attachment == sent.message.attachment
    assert b'"consents"' in export.message.attachment.content

    parcels = engine.receive(
        Inbound("tg", "p-ben", choice="nothing-offered", address="c", key="10", pressed="77")
    )
    assert all(p.edit_key is None for p in parcels)  # only a reply marked `edit` replaces it


def test_erasure_takes_the_persons_unsent_replies_along(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(nlp=False)
    Resident(engine, "p-cem", channel="tg").consent()
    engine.receive(Inbound("tg", "p-cem", text=IDEA_TEXT, address="c", key="20"))
    assert any(IDEA_TEXT in p.message.text for p in engine.unsent("tg"))
    engine.receive(Inbound("tg", "p-cem", text="/loeschen", address="c", key="21"))
    engine.receive(Inbound("tg", "p-cem", choice="yes", address="c", key="22"))

    left = engine.store.db.execute("SELECT participant_id, message FROM outbox").fetchall()
    assert left, "the confirmation of the erasure is still to be sent"
    assert all(owner is None and IDEA_TEXT not in message for owner, message in left)


def test_a_poison_message_is_answered_recorded_and_never_handled_again(
    make_engine: Callable[..., Engine],
    catalogue: Catalogue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(nlp=False)
    poison(engine.store)
    anna, ben = Resident(engine, "p-anna", channel="tg"), Resident(engine, "p-ben", channel="tg")
    anna.consent(language_number="2")
    words = f"Mehr Bänke im Park {POISON} bitte"
    caplog.set_level(logging.DEBUG)

    replies = engine.handle(Inbound("tg", "p-anna", text=words, key="poison-1"))

    assert [r.text for r in replies] == [
        catalogue.text("en", "sorry_failed"),
        catalogue.text("en", "idea_question"),
    ]
    assert deliveries(engine.store)["poison-1"] == "failed"
    assert engine.store.ideas() == [] and anna.step == "idea"
    assert engine.handle(Inbound("tg", "p-anna", text=words, key="poison-1")) == []
    assert "IntegrityError" in caplog.text and POISON not in caplog.text
    assert "Bänke" not in caplog.text

    ben.consent()  # everyone else is served, and so is Anna with her next message
    anna.says(IDEA_TEXT)
    assert [i["text"] for i in engine.store.ideas()] == [IDEA_TEXT]


def test_a_database_that_cannot_be_written_records_and_answers_nothing(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(nlp=False)
    engine.store.db.execute("PRAGMA query_only=1")  # as a read-only file or a full disk would
    with pytest.raises(StoreUnavailable):
        engine.receive(Inbound("tg", "p-anna", text="Hallo", address="c", key="1"))
    engine.store.db.execute("PRAGMA query_only=0")
    assert deliveries(engine.store) == {}
    assert engine.receive(Inbound("tg", "p-anna", text="Hallo", address="c", key="1"))


# Telegram


async def test_telegram_sends_after_a_restart_what_a_crash_left_in_the_outbox(
    make_engine: Callable[..., Engine], server: TelegramTestServer, catalogue: Catalogue
) -> None:
    person = Person(server, "Dana")
    pseudonym = Pseudonymizer(TELEGRAM_SECRET).participant("telegram", str(person.user["id"]))
    # The step of an update committed, then the process died before sending its replies.
    make_engine(nlp=False).receive(
        Inbound("telegram", pseudonym, text="/start", address=str(person.chat["id"]), key="1")
    )
    channel = await started(make_engine(nlp=False), server)
    try:
        await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
        await asyncio.sleep(0.5)
    finally:
        await channel.stop()
    assert len(server.sent(person.chat)) == 1, "sent once, not again at the next start"
    assert channel.engine.unsent("telegram") == []


async def test_telegram_answers_a_poison_message_and_serves_everyone_else(
    channel, server: TelegramTestServer, catalogue: Catalogue
) -> None:
    poison(channel.engine.store)
    fee, gil = Person(server, "Fee"), Person(server, "Gil")
    await consent(fee, catalogue)
    fee.says(f"Ein Park ohne {POISON} für alle")
    gil.says("/start")
    await fee.expect(catalogue.text("de", "sorry_failed"))
    await gil.expect(catalogue.text("de", "choose_language").splitlines()[0])
    fee.says(IDEA_TEXT)
    await fee.expect(IDEA_TEXT)
    assert server.pending_updates == 0


async def test_telegram_stops_on_a_database_it_cannot_write_and_confirms_nothing(
    make_engine: Callable[..., Engine], server: TelegramTestServer, catalogue: Catalogue
) -> None:
    engine = make_engine(nlp=False)
    channel = await started(engine, server)
    person = Person(server, "Hana")
    try:
        engine.store.db.execute("PRAGMA query_only=1")
        person.says("/start")
        await asyncio.wait_for(channel.failure.reported.wait(), timeout=20)
    finally:
        await channel.stop()
    assert isinstance(channel.failure.error, StoreUnavailable)
    assert server.sent(person.chat) == []

    restarted = await started(make_engine(nlp=False), server)  # the operator fixed the disk
    try:
        await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
    finally:
        await restarted.stop()


async def test_a_stop_while_telegram_is_away_keeps_the_reply_for_the_next_start(
    make_engine: Callable[..., Engine],
    server: TelegramTestServer,
    catalogue: Catalogue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mitreden.bot.telegram.STOP_SECONDS", 1.0)
    channel = await started(make_engine(nlp=False), server)
    person = Person(server, "Ida")
    pseudonym = Pseudonymizer(TELEGRAM_SECRET).participant("telegram", str(person.user["id"]))
    await server.stop()  # Telegram cannot be reached; what is queued waits
    for parcel in channel.engine.receive(
        Inbound("telegram", pseudonym, text="/start", address=str(person.chat["id"]), key="5")
    ):
        channel.outbox.put(parcel)
    await asyncio.sleep(0.5)
    await asyncio.wait_for(channel.stop(), timeout=30)
    assert len(channel.engine.unsent("telegram")) == 1

    await server.start()
    restarted = await started(make_engine(nlp=False), server)
    try:
        await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
    finally:
        await restarted.stop()


# Matrix


async def test_a_poison_event_on_matrix_delays_no_one_else(
    bot, people: Callable, catalogue: Catalogue, db_path: Path
) -> None:
    poison(bot.engine.store)
    anna, ben = await people("anna"), await people("ben")
    await anna.open_chat(bot.client.user_id)
    await ben.open_chat(bot.client.user_id)
    await anna.answer("Hallo", de(catalogue, "choose_language"))
    await anna.answer("1", de(catalogue, "consent_question"))
    await anna.answer("ja", de(catalogue, "idea_question"))

    await anna.say(f"Ein Brunnen mit {POISON} am Markt")
    await ben.say("Hallo")
    await ben.wait_for(de(catalogue, "choose_language"))
    await anna.wait_for(de(catalogue, "sorry_failed"))
    await anna.answer(IDEA, "Zu welchem Thema")

    assert list(deliveries(Store(db_path)).values()).count("failed") == 1
    assert [i["text"] for i in Store(db_path).ideas()] == [IDEA]


async def set_power_level(owner: MatrixPerson, room_id: str, user_id: str, level: int) -> None:
    current = await owner.client.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(current, RoomGetStateEventResponse), current
    content = current.content
    content.setdefault("users", {})[user_id] = level
    changed = await owner.client.room_put_state(room_id, "m.room.power_levels", content)
    assert isinstance(changed, RoomPutStateResponse), changed


async def test_a_level_50_moderator_decides_after_a_restart(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner, moderator = await people("owner"), await people("moderator")
    room_id = await staff_room(owner, bot_settings.matrix_user_id, [moderator])
    await set_power_level(owner, room_id, moderator.user_id, 50)
    settings = Settings(**{**bot_settings.__dict__, "matrix_moderator_room": room_id})
    first = await start_bot(make_engine(), settings)
    await first.stop()

    bot = await start_bot(make_engine(), settings)  # a restart: the room is known from the start
    try:
        elsewhere = Resident(make_engine(nlp=False), "p-tg-ida", channel="telegram")
        elsewhere.consent()
        elsewhere.says("Mehr Schattenplätze auf den Schulhöfen in Spandau")
        await moderator.wait_for("wartet auf Prüfung", room_id)
        await moderator.say("ja", room_id, **{"m.relates_to": ["not", "a", "reply"]})
        await react(moderator, room_id, posted(moderator, room_id, "wartet auf Prüfung"), "👍")
        await moderator.wait_for("ist angenommen", room_id)
    finally:
        await bot.stop()
    assert Store(db_path).idea(1)["review"] == "approved"
    assert "could not be handled" not in caplog.text  # an odd reply is no reply, not an error


# servers that cannot be reached


def run_cli(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = environment(
        tmp_path, MITREDEN_DB=str(tmp_path / "m.db"), MITREDEN_EMBEDDING_BACKEND="none", **settings
    )
    return subprocess.run(
        [sys.executable, "-m", "mitreden.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_telegram_server_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw-secret"
    ran = run_cli(
        tmp_path,
        MITREDEN_TELEGRAM_TOKEN=token,
        MITREDEN_TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{closed_port()}",
    )
    assert ran.returncode == 2
    assert ran.stdout == "" and len(ran.stderr.splitlines()) == 1, ran.stderr
    assert "cannot reach the Telegram Bot API" in ran.stderr and token not in ran.stderr


def test_a_homeserver_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    password = "correct horse battery staple"
    ran = run_cli(
        tmp_path,
        MITREDEN_MATRIX_HOMESERVER=f"http://127.0.0.1:{closed_port()}",
        MITREDEN_MATRIX_USER_ID="@mitreden:example.org",
        MITREDEN_MATRIX_PASSWORD=password,
    )
    assert ran.returncode == 2
    assert len(ran.stderr.splitlines()) == 1, ran.stderr
    assert "cannot reach the Matrix homeserver" in ran.stderr and password not in ran.stderr


async def test_a_broken_encrypted_to_device_message_does_not_stop_matrix(
    bot, people: Callable, catalogue: Catalogue
) -> None:
    """A pre-key message nobody can decrypt (as after a crash between claiming and saving
    one-time keys) is passed over; before, nio raised it out of every sync, for good."""
    resident = await people()
    await resident.open_chat(bot.client.user_id)
    ours = bot.client.olm.account.identity_keys["curve25519"]
    broken = {
        "algorithm": "m.olm.v1.curve25519-aes-sha2",
        "sender_key": resident.client.olm.account.identity_keys["curve25519"],
        "ciphertext": {ours: {"type": 0, "body": "AwogdW5rbm93biBvbmUtdGltZSBrZXk"}},
    }
    message = ToDeviceMessage("m.room.encrypted", bot.client.user_id, bot.client.device_id, broken)
    sent = await resident.client.to_device(message)
    assert isinstance(sent, ToDeviceResponse), sent
    await resident.answer("Hallo", de(catalogue, "choose_language"))
