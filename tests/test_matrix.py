"""The Matrix channel against a real Synapse: residents in encrypted and plain direct chats,
restarts, keys that arrive late, rate limits, the moderator room and the strategy room.

Residents, moderators and the strategy team are real matrix-nio clients with their own
devices (tests/matrix_people.py); the bot is `MatrixChannel` on a real SQLite database.
"""

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Resident
from matrix_people import PASSWORD, MatrixPerson, fresh_localpart
from nio import (
    RoomCreateResponse,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
    ToDeviceMessage,
)
from synapse_server import SynapseServer

from mitreden.bot.matrix import MatrixChannel
from mitreden.config import Settings
from mitreden.flows import Engine
from mitreden.flows.catalogue import Catalogue
from mitreden.identity import Pseudonymizer
from mitreden.store import Store

SECRET = b"matrix-test-secret-0123456789abc"
IDEA = "Mehr Sitzbänke und Schatten im Görlitzer Park, bitte mit Trinkbrunnen"


@pytest.fixture
def bot_settings(synapse: SynapseServer, db_path: Path) -> Settings:
    user_id, _ = synapse.register(fresh_localpart("mitreden"), PASSWORD)
    return Settings(
        db=db_path,
        matrix_homeserver=synapse.base_url,
        matrix_user_id=user_id,
        matrix_password=PASSWORD,
    )


async def start_bot(engine: Engine, settings: Settings) -> MatrixChannel:
    channel = MatrixChannel(engine, Pseudonymizer(SECRET), settings, sync_timeout_ms=1_000)
    await channel.start()
    return channel


@pytest.fixture
async def bot(make_engine: Callable[..., Engine], bot_settings: Settings) -> AsyncIterator:
    channel = await start_bot(make_engine(), bot_settings)
    yield channel
    await channel.stop()


@pytest.fixture
async def people(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Callable]:
    """Makes logged-in people; closes them all at the end."""
    made: list[MatrixPerson] = []

    async def person(name: str = "resident") -> MatrixPerson:
        made.append(MatrixPerson(synapse, tmp_path / "people", name))
        return await made[-1].login()

    yield person
    for one in made:
        await one.close()


def de(catalogue: Catalogue, key: str) -> str:
    """A catalogue sentence up to its first placeholder: what a message must contain."""
    return catalogue.text("de", key).split("{")[0].strip()


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "unencrypted"])
async def test_a_resident_gives_an_idea_in_a_direct_chat(
    bot: MatrixChannel, people: Callable, catalogue: Catalogue, db_path: Path, encrypted: bool
) -> None:
    resident = await people()
    await resident.open_chat(bot.client.user_id, encrypted=encrypted)
    assert resident.client.rooms[resident.room_id].encrypted is encrypted

    asked = await resident.answer("Hallo", de(catalogue, "choose_language"))
    assert f"1. {catalogue.text('de', 'lang_de')}" in asked[-1]
    await resident.answer("1", de(catalogue, "consent_question"))
    await resident.answer("ja", de(catalogue, "idea_question"))
    readback = await resident.answer(IDEA, "Zu welchem Thema")
    assert IDEA in readback[-1] and "\n1. " in readback[-1]
    await resident.answer("1", de(catalogue, "district_question"))
    await resident.answer("Neukölln", de(catalogue, "age_question"))  # a label, not a number
    await resident.answer("überspringen", de(catalogue, "group_question"))
    await resident.answer("1", de(catalogue, "notify_question"))
    await resident.answer("nein", de(catalogue, "another_question"))
    await resident.answer("nein", de(catalogue, "goodbye")[:30])

    replies = resident.received[resident.room_id]
    assert all(isinstance(event, RoomMessageText) for event in replies)
    assert all(event.decrypted is encrypted for event in replies)
    assert all(event.source["content"]["format"] == "org.matrix.custom.html" for event in replies)
    ideas = Store(db_path).ideas()
    assert [(i["text"], i["district"], i["review"]) for i in ideas] == [
        (IDEA, "neukoelln", "pending")
    ]
    assert resident.user_id not in json.dumps(ideas)  # a keyed hash, never the Matrix id


async def test_a_restart_resumes_where_the_resident_was_and_answers_nothing_twice(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    catalogue: Catalogue,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await start_bot(make_engine(), bot_settings)
    resident = await people()
    await resident.open_chat(first.client.user_id)
    await resident.answer("Hallo", de(catalogue, "choose_language"))
    await resident.answer("1", de(catalogue, "consent_question"))
    device = first.client.device_id
    await first.stop()

    # Three answers while the bot is away, more than one sync returns: the rest is a gap.
    monkeypatch.setattr("mitreden.bot.matrix.TIMELINE_LIMIT", 2)
    for text in ("ja", IDEA, "1"):
        await resident.say(text)
    second = await start_bot(make_engine(), bot_settings)
    try:
        bodies = await resident.wait_for(de(catalogue, "district_question"))
        assert second.client.device_id == device
        await resident.answer("2", de(catalogue, "age_question"))
    finally:
        await second.stop()

    asked = "\n".join(bodies)
    assert de(catalogue, "idea_question") in asked and IDEA in asked
    for earlier in ("choose_language", "consent_question"):
        assert de(catalogue, earlier) not in asked, earlier
    ideas = Store(db_path).ideas()
    assert [(i["text"], i["district"]) for i in ideas] == [(IDEA, "friedrichshain-kreuzberg")]
    assert (bot_settings.matrix_dir / "session.json").stat().st_mode & 0o777 == 0o600


async def test_a_message_is_answered_once_its_late_key_arrives(
    bot: MatrixChannel, people: Callable, catalogue: Catalogue
) -> None:
    resident = await people()
    await resident.open_chat(bot.client.user_id)
    await resident.answer("Hallo", de(catalogue, "choose_language"))

    # The resident's next message uses a new session whose key the bot's device does not get:
    # as when the key travels slower than the message.
    client, room_id = resident.client, resident.room_id
    bot_device = client.device_store[bot.client.user_id][bot.client.device_id]
    client.blacklist_device(bot_device)
    client.olm.outbound_group_sessions.pop(room_id, None)
    await client.share_group_session(room_id, ignore_unverified_devices=True)
    session = client.olm.outbound_group_sessions[room_id]
    key = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": room_id,
        "session_id": session.id,
        "session_key": session.session_key,
    }
    await resident.answer("1", de(catalogue, "unreadable"))
    assert de(catalogue, "consent_question") not in "\n".join(
        getattr(event, "body", "") for event in resident.received[room_id]
    )

    olm_session = client.olm.session_store.get(bot_device.curve25519)
    sealed = client.olm._olm_encrypt(olm_session, bot_device, "m.room_key", key)
    await client.to_device(
        ToDeviceMessage("m.room.encrypted", bot.client.user_id, bot.client.device_id, sealed)
    )
    await resident.wait_for(de(catalogue, "consent_question"))


async def test_rate_limited_replies_wait_and_all_arrive(
    bot: MatrixChannel,
    people: Callable,
    catalogue: Catalogue,
    synapse: SynapseServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    synapse.override_ratelimit(bot.client.user_id, messages_per_second=1, burst_count=1)
    try:
        resident = await people()
        await resident.open_chat(bot.client.user_id, encrypted=False)
        await resident.answer("Hallo", de(catalogue, "choose_language"))
        # Greeting, privacy notice and question: three messages, two over the burst.
        bodies = await resident.answer("1", de(catalogue, "consent_question"))
    finally:
        synapse.override_ratelimit(bot.client.user_id)
    assert [de(catalogue, "greeting")[:20] in bodies[0], len(bodies)] == [True, 3]
    assert "Got 429 response" in caplog.text  # the server did say "too many", and nio waited


async def test_invites_to_rooms_other_than_direct_chats_are_declined(
    bot: MatrixChannel, people: Callable
) -> None:
    resident = await people()
    created = await resident.client.room_create(invite=[bot.client.user_id], name="Kiez")
    assert isinstance(created, RoomCreateResponse)
    bot_id = bot.client.user_id

    def declined() -> bool:
        room = resident.client.rooms.get(created.room_id)
        return room is not None and bot_id not in room.invited_users and bot_id not in room.users

    await resident.until(declined, "the bot declined")
    await resident.sync(0)
    assert declined()


# the moderator room


async def staff_room(owner: MatrixPerson, bot: str, members: list[MatrixPerson]) -> str:
    """An encrypted room the owner (power level 100) creates, with the bot and members in it."""
    created = await owner.client.room_create(
        name="Moderation",
        invite=[bot, *(m.user_id for m in members)],
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    assert isinstance(created, RoomCreateResponse), created
    for member in members:
        await member.sync(0)
        await member.client.join(created.room_id)
        await member.until(lambda m=member: created.room_id in m.client.rooms, "joined")
    return created.room_id


async def react(person: MatrixPerson, room_id: str, event_id: str, key: str) -> None:
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
    sent = await person.client.room_send(
        room_id, "m.reaction", content, ignore_unverified_devices=True
    )
    assert isinstance(sent, RoomSendResponse), sent


def audit(db_path: Path) -> list[tuple[str, str, str]]:
    rows = Store(db_path).db.execute("SELECT actor, action, subject FROM audit ORDER BY id")
    return [tuple(row) for row in rows if row[1].startswith("idea.") and row[1] != "idea.created"]


async def test_moderators_decide_by_reaction_or_reply_and_others_cannot(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    catalogue: Catalogue,
    db_path: Path,
) -> None:
    moderator, member = await people("moderator"), await people("member")
    room_id = await staff_room(moderator, bot_settings.matrix_user_id, [member])
    settings = Settings(**{**bot_settings.__dict__, "matrix_moderator_room": room_id})
    bot = await start_bot(make_engine(), settings)
    try:
        # An idea given on another channel, by another process on the same database.
        elsewhere = Resident(make_engine(nlp=False), "p-tg-anna", channel="telegram")
        elsewhere.consent()
        elsewhere.says("Mehr Bänke im Park, schreibt mir an anna@example.org")
        post = (await moderator.wait_for("wartet auf Prüfung", room_id))[-1]
        assert "[E-Mail entfernt]" in post and "anna@example.org" not in post
        post_id = posted(moderator, room_id, "wartet auf Prüfung")
        await member.sync(0)  # a member's client syncs all along, and so learns the bot's keys

        await react(member, room_id, post_id, "👍")
        await react(moderator, room_id, post_id, "👍🏽")
        approved = await moderator.wait_for("ist angenommen", room_id)
        await member.say("nein", room_id, **reply_to(post_id))
        refused = await moderator.wait_for(de(catalogue, "review_not_allowed")[:30], room_id)
        await moderator.say("> <@bot> Idee 1 …\n\nnein", room_id, **reply_to(post_id))
        rejected = await moderator.wait_for("ist abgelehnt", room_id)
        await moderator.say("offen", room_id, **reply_to(post_id))
        await moderator.wait_for("wieder auf Prüfung", room_id)
    finally:
        await bot.stop()

    assert all(isinstance(e, RoomMessageNotice) for e in moderator.received[room_id][-1:])
    assert moderator.user_id.split(":")[0].lstrip("@") in approved[-1]
    assert member.user_id not in " ".join(approved + refused + rejected)
    actor = f"matrix:{moderator.user_id}"
    assert audit(db_path) == [
        (actor, "idea.approved", "idea:1"),
        (actor, "idea.rejected", "idea:1"),
        (actor, "idea.reopened", "idea:1"),
    ]
    assert Store(db_path).idea(1)["review"] == "pending"


def reply_to(event_id: str) -> dict[str, Any]:
    return {"m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}


def posted(person: MatrixPerson, room_id: str, containing: str) -> str:
    """The id of the message the person got that contains some text."""
    return next(
        e.event_id for e in person.received[room_id] if containing in getattr(e, "body", "")
    )
