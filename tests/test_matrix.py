"""The Matrix channel against a real Synapse: residents in encrypted and plain direct chats,
restarts, keys that arrive late, rate limits, the moderator room and the strategy room.

Residents, moderators and the strategy team are real matrix-nio clients with their own
devices (testing/matrix_people.py); the bot is `MatrixChannel` on a real SQLite database.
"""

import asyncio
import getpass
import json
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Resident, start_bot
from isolated import environment
from matrix_people import ENCRYPTION_STATE, PASSWORD, MatrixPerson
from nio import (
    DownloadResponse,
    RedactionEvent,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
    ToDeviceMessage,
)
from nio.crypto import decrypt_attachment
from synapse_server import SynapseServer

from mitreden.bot.matrix import MatrixChannel
from mitreden.cli import main
from mitreden.config import Settings
from mitreden.flows import Engine
from mitreden.flows.catalogue import Catalogue
from mitreden.store import Store

IDEA = "Mehr Sitzbänke und Schatten im Görlitzer Park, bitte mit Trinkbrunnen"


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


async def test_a_resident_who_writes_arabic_is_answered_in_arabic_right_to_left(
    bot: MatrixChannel, people: Callable, catalogue: Catalogue
) -> None:
    resident = await people()
    await resident.open_chat(bot.client.user_id)
    first = "مرحبا، نريد حديقة أكبر في الحي"
    await resident.answer(first, catalogue.text("ar", "consent_question"))
    await resident.answer("نعم", catalogue.text("ar", "idea_question"))
    replies = resident.received[resident.room_id]
    bodies = [event.body for event in replies]
    assert catalogue.text("ar", "language_detected") in bodies
    assert all(
        event.source["content"]["formatted_body"].startswith('<div dir="rtl">') for event in replies
    )


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
    device_files = list(bot_settings.matrix_dir.rglob("*"))
    assert any(path.suffix == ".db" for path in device_files), "nio's crypto store is there"
    for path in [bot_settings.matrix_dir, *device_files]:
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path.name


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


async def test_media_edits_notices_and_huge_text_in_a_direct_chat(
    bot: MatrixChannel, people: Callable, catalogue: Catalogue, db_path: Path
) -> None:
    """Nothing breaks the chat and nothing but consented ideas is kept."""
    resident = await people()
    await resident.open_chat(bot.client.user_id)
    first = await resident.say("Hallo")
    await resident.wait_for(de(catalogue, "choose_language"))
    # An edit of an earlier message and a bot-style notice are no answers.
    edit = {"m.relates_to": {"rel_type": "m.replace", "event_id": first}}
    await resident.say("* 2", **edit, **{"m.new_content": {"msgtype": "m.text", "body": "2"}})
    await resident.say("1", msgtype="m.notice")
    await resident.answer("1", de(catalogue, "consent_question"))
    await resident.answer("ja", de(catalogue, "idea_question"))
    image = {"msgtype": "m.image", "body": "foto.jpg", "url": "mxc://localhost/nothing"}
    sent = await resident.client.room_send(
        resident.room_id, "m.room.message", image, ignore_unverified_devices=True
    )
    assert isinstance(sent, RoomSendResponse), sent
    await resident.wait_for(de(catalogue, "media_not_text")[:40])
    huge = "Bänke " * 2_000 + "\x00\u202e"
    too_long = await resident.answer(huge, "2000")
    assert "höchstens 2000 Zeichen" in too_long[-1]
    language = Store(db_path).conversation(
        bot.pseudonymizer.participant("matrix", resident.user_id)
    )
    assert language is not None and language.language == "de"
    assert Store(db_path).ideas() == []


# the moderator room


async def staff_room(owner: MatrixPerson, bot: str, members: list[MatrixPerson]) -> str:
    """An encrypted room the owner (power level 100) creates, with the bot and members in it."""
    created = await owner.client.room_create(
        name="Moderation",
        invite=[bot, *(m.user_id for m in members)],
        initial_state=[ENCRYPTION_STATE],
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
        elsewhere.presses("ok")  # what others will read, agreed to
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


async def test_an_erased_idea_is_taken_back_from_the_moderator_room(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    db_path: Path,
) -> None:
    moderator = await people("moderator")
    room_id = await staff_room(moderator, bot_settings.matrix_user_id, [])
    settings = Settings(**{**bot_settings.__dict__, "matrix_moderator_room": room_id})
    bot = await start_bot(make_engine(), settings)
    try:
        elsewhere = Resident(make_engine(nlp=False), "p-tg-ben", channel="telegram")
        elsewhere.consent()
        elsewhere.says("Kostenloses WLAN in allen Bibliotheken von Spandau")
        await moderator.wait_for("Bibliotheken", room_id)
        post_id = posted(moderator, room_id, "Bibliotheken")
        elsewhere.says("/loeschen")
        elsewhere.says("ja")

        def taken_back() -> bool:
            return any(
                isinstance(e, RedactionEvent) and e.redacts == post_id
                for e in moderator.received[room_id]
            )

        await moderator.until(taken_back, "the post was redacted")
    finally:
        await bot.stop()
    store = Store(db_path)
    assert store.db.execute("SELECT count(*) FROM review_posts").fetchone()[0] == 0
    assert store.ideas() == []


async def test_a_forwarded_summary_arrives_with_its_files(
    make_engine: Callable[..., Engine],
    bot_settings: Settings,
    people: Callable,
    catalogue: Catalogue,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    team = await people("strategy")
    room_id = await staff_room(team, bot_settings.matrix_user_id, [])
    settings = Settings(**{**bot_settings.__dict__, "matrix_strategy_room": room_id})
    ideas = make_engine()
    for number, idea in enumerate(
        [
            "Mehr Radwege an der Sonnenallee, die Autos fahren viel zu schnell",
            "Sichere Radwege für Kinder auf dem Schulweg in Neukölln",
            "Behördentermine online buchen können, ohne stundenlang zu warten",
        ]
    ):
        resident = Resident(ideas, f"p-web-{number}", channel="web")
        resident.consent()
        resident.says(idea)
    config = tmp_path / "mitreden.toml"
    config.write_text(
        "\n".join(
            f'{name} = "{getattr(settings, name)}"'
            for name in (
                "db",
                "matrix_homeserver",
                "matrix_user_id",
                "matrix_password",
                "matrix_strategy_room",
            )
        )
    )
    bot = await start_bot(make_engine(), settings)
    try:
        # The running bot holds the device, so the command queues and waits for it to send.
        code = await asyncio.to_thread(main, ["forward", "--config", str(config)])
        assert code == 0, capsys.readouterr().err
        title = catalogue.text("de", "summary_title")
        await team.wait_for(title, room_id)
        await team.until(
            lambda: sum(isinstance(e, RoomEncryptedFile) for e in team.received[room_id]) == 2,
            "both files arrived",
        )
    finally:
        await bot.stop()

    assert f"sent to {room_id}" in capsys.readouterr().out
    message = next(e for e in team.received[room_id] if title in getattr(e, "body", ""))
    assert message.decrypted and f"<h1>{title}</h1>" in message.source["content"]["formatted_body"]
    assert "Radwege" in message.body
    files = {}
    for event in team.received[room_id]:
        if isinstance(event, RoomEncryptedFile):
            got = await team.client.download(mxc=event.url)
            assert isinstance(got, DownloadResponse), got
            files[event.body] = decrypt_attachment(
                got.body, event.key["k"], event.hashes["sha256"], event.iv
            ).decode("utf-8")
    stem = f"zusammenfassung-{datetime.now(UTC).date().isoformat()}"
    assert sorted(files) == [f"{stem}.csv", f"{stem}.md"]
    assert files[f"{stem}.md"].startswith(f"# {title}") and "Radwege" in files[f"{stem}.md"]
    assert files[f"{stem}.csv"].startswith("lane,field,group")
    forwarded = Store(db_path).db.execute(
        "SELECT actor FROM audit WHERE action = 'summary.forwarded'"
    )
    assert [actor for (actor,) in forwarded] == [f"cli:{getpass.getuser()}"]


def test_forward_without_a_strategy_room_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Store(tmp_path / "x.db").close()
    code = main(["forward", "--db", str(tmp_path / "x.db")])
    assert code == 2
    assert "set matrix_homeserver" in capsys.readouterr().err


def run_environment(tmp_path: Path, settings: Settings, **extra: str) -> dict[str, str]:
    env = environment(
        tmp_path,
        MITREDEN_DB=str(settings.db),
        MITREDEN_MATRIX_HOMESERVER=settings.matrix_homeserver,
        MITREDEN_MATRIX_USER_ID=settings.matrix_user_id,
        MITREDEN_MATRIX_PASSWORD=settings.matrix_password,
        MITREDEN_EMBEDDING_BACKEND="none",
        MITREDEN_LOG_LEVEL="INFO",
    )
    return {**env, **extra}


async def mitreden_run(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "mitreden"),
        "run",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def test_mitreden_run_starts_matrix_when_a_homeserver_is_set(
    bot_settings: Settings, people: Callable, catalogue: Catalogue, tmp_path: Path
) -> None:
    process = await mitreden_run(run_environment(tmp_path, bot_settings))
    early = b""
    try:
        # A resident who writes before the bot's new device exists gets "cannot read yet";
        # here the resident comes once the bot is listening.
        async with asyncio.timeout(60):
            while b"is listening" not in early:
                line = await process.stderr.readline()
                assert line, early.decode()
                early += line
        resident = await people()
        await resident.open_chat(bot_settings.matrix_user_id)
        await resident.answer("Hallo", de(catalogue, "choose_language"))
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    log = (early + stderr).decode()
    assert process.returncode == 0, log
    assert "is listening" in log and "Traceback" not in log
    assert PASSWORD not in log and "Hallo" not in log


async def test_mitreden_run_with_a_wrong_password_says_so(
    bot_settings: Settings, tmp_path: Path
) -> None:
    env = run_environment(tmp_path, bot_settings, MITREDEN_MATRIX_PASSWORD="wrong")
    process = await mitreden_run(env)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    last = stderr.decode().strip().splitlines()[-1]
    assert last == (
        f"mitreden: error: Matrix login as {bot_settings.matrix_user_id} failed: "
        "M_FORBIDDEN Invalid username or password"
    )
