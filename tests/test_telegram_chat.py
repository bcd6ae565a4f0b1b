"""Private conversations over Telegram: the real python-telegram-bot Application, our adapter
and engine, and the Bot API test server playing Telegram and the residents."""

import asyncio
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TELEGRAM_SECRET, started
from isolated import environment
from telegram_server import TelegramTestServer

from mitreden.identity import Pseudonymizer


class Person:
    """A resident in a private chat with the bot; `expect` waits for what the bot says next."""

    def __init__(
        self,
        server: TelegramTestServer,
        name: str,
        language: str = "de",
        user: dict[str, Any] | None = None,
    ) -> None:
        self.server = server
        self.user = user or server.user(name, language)
        self.chat = server.private_chat(self.user)
        self.seen = 0

    def says(self, text: str) -> None:
        self.server.send_text(self.chat, self.user, text)

    def presses(self, value: str) -> None:
        self.server.press(self.chat, self.user, self.keyboard_message(), value)

    def keyboard_message(self) -> dict[str, Any]:
        return next(m for m in reversed(self.server.sent(self.chat)) if m.get("reply_markup"))

    def values(self) -> list[str]:
        rows = self.keyboard_message()["reply_markup"]["inline_keyboard"]
        return [row[0]["callback_data"] for row in rows]

    async def expect(self, text: str) -> dict[str, Any]:
        """The first new bot message containing `text`; later messages stay unread."""

        def found() -> dict[str, Any] | None:
            new = self.server.sent(self.chat)[self.seen :]
            return next((m for m in new if text in m.get("text", "")), None)

        await self.server.wait_until(found, timeout=20, what=f"a reply with {text!r}")
        message = found()
        self.seen = self.server.sent(self.chat).index(message) + 1
        return message


async def consent(person: Person, catalogue, language: str = "de") -> None:
    """/start, pick the language, agree: the bot now asks for the idea."""
    person.says("/start")
    await person.expect(catalogue.text(language, "choose_language").splitlines()[0])
    person.presses(language)
    await person.expect(catalogue.text(language, "consent_question").splitlines()[0])
    person.presses("yes")
    await person.expect(catalogue.text(language, "idea_question").splitlines()[0])


async def give_an_idea(person: Person, catalogue, language: str, idea: str) -> None:
    await consent(person, catalogue, language)
    person.says(idea)
    await person.expect(idea)
    person.presses(person.values()[0])
    for _ in range(3):
        await person.expect("")
        person.presses("skip")
    await person.expect("")
    person.presses("no")


@pytest.mark.parametrize(
    ("language", "idea"),
    [
        ("de", "Mehr Bäume pflanzen gegen die Hitze im Sommer"),
        ("en", "Plant more trees against the summer heat"),
    ],
)
async def test_a_whole_private_conversation_with_buttons(
    channel, server, catalogue, language: str, idea: str
) -> None:
    person = Person(server, "Anna", language)
    await give_an_idea(person, catalogue, language, idea)
    await person.expect(catalogue.text(language, "another_question").splitlines()[0])
    [stored] = channel.engine.store.ideas()
    assert stored["text"] == idea and stored["confirmed_field"]
    assert stored["language"] == language
    assert server.unknown_methods == [] and server.errors == []
    assert [c["command"] for c in server.commands_for("de")][:2] == ["start", "hilfe"]
    assert [c["command"] for c in server.commands_for("en")][:2] == ["start", "help"]
    assert str(person.user["id"]) not in str(
        channel.engine.store.db.execute("SELECT * FROM participants").fetchall()
    ), "platform ids never reach the store"


async def test_a_restart_mid_conversation_resumes(make_engine, server, catalogue) -> None:
    first = await started(make_engine(), server)
    person = Person(server, "Ben")
    person.says("/start")
    await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
    person.presses("de")
    await person.expect(catalogue.text("de", "consent_question").splitlines()[0])
    await first.stop()

    second = await started(make_engine(), server)
    try:
        person.presses("yes")
        await person.expect(catalogue.text("de", "idea_question").splitlines()[0])
    finally:
        await second.stop()


async def test_an_update_delivered_twice_is_answered_once(channel, server, catalogue) -> None:
    person = Person(server, "Cem")
    person.says("/start")
    await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
    answered = len(server.sent(person.chat))
    start_update = max(server._history)  # the newest update the server handed out: /start
    server.redeliver(start_update)
    person.presses("de")
    await person.expect(catalogue.text("de", "consent_question").splitlines()[0])
    texts = [m["text"] for m in server.sent(person.chat)[answered:]]
    assert not any(catalogue.text("de", "choose_language").splitlines()[0] in t for t in texts)


@pytest.mark.parametrize("send", ["send_photo", "send_sticker", "send_voice", "send_location"])
async def test_unsupported_media_is_answered_and_not_kept(
    channel, server, catalogue, send: str
) -> None:
    person = Person(server, "Dilan")
    await consent(person, catalogue)
    getattr(server, send)(person.chat, person.user)
    await person.expect(catalogue.text("de", "media_not_text")[:30])
    await person.expect(catalogue.text("de", "idea_question").splitlines()[0])
    assert channel.engine.store.ideas() == []
    [participant] = [r[0] for r in channel.engine.store.db.execute("SELECT id FROM participants")]
    assert channel.engine.store.conversation(participant).step == "idea"


async def test_an_overlong_message_is_kept_and_a_shorter_one_asked_for(
    channel, server, catalogue
) -> None:
    person = Person(server, "Eda")
    await consent(person, catalogue)
    person.says("Bäume " * 680)  # 4,080 characters: Telegram's limit, twice the bot's
    await person.expect(catalogue.messages["de"]["idea_too_long"].split("{")[0])
    assert channel.engine.store.ideas() == [] and server.errors == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("receive", ["polling", "webhook"])
async def test_mitreden_run_starts_telegram_when_a_token_is_set(
    server, catalogue, tmp_path, receive: str
) -> None:
    env = environment(
        tmp_path,
        MITREDEN_TELEGRAM_TOKEN=server.token,
        MITREDEN_TELEGRAM_API_BASE_URL=server.url,
        MITREDEN_LOG_LEVEL="INFO",
    )
    if receive == "webhook":
        # Telegram posts to https only; a TLS proxy forwards to where mitreden listens.
        port = free_port()
        server.tls_proxy("https://bot.example.org", f"http://127.0.0.1:{port}")
        env.update(
            MITREDEN_TELEGRAM_WEBHOOK_URL="https://bot.example.org/telegram/updates",
            MITREDEN_TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        )
    mitreden = str(Path(sys.executable).parent / "mitreden")
    process = await asyncio.create_subprocess_exec(
        mitreden,
        "run",
        "--db",
        str(tmp_path / "x.db"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        # Loading the model can take longer than a reply may on a busy machine.
        ready = "getUpdates" if receive == "polling" else "setWebhook"
        await server.wait_until(
            lambda: any(r.method == ready for r in server.requests), 120, "the bot listens"
        )
        person = Person(server, "Fee")
        person.says("/start")
        await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
        person.presses("de")
        await person.expect(catalogue.text("de", "consent_question").splitlines()[0])
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert server.token not in stderr.decode(), "the token never reaches the log"
    assert server.commands_for("de") and server.unknown_methods == []
    info = server.webhook_info()
    if receive == "webhook":
        assert info["url"] == "https://bot.example.org/telegram/updates"
        # mitreden listens before it registers the webhook, and answers a post only once it
        # is handled; nothing may stay undelivered.
        assert info["pending_update_count"] == 0
        secret = server.webhook.get("secret_token", "")
        assert len(secret) >= 32 and secret not in stderr.decode()
    else:
        assert info["url"] == ""


async def test_an_edited_message_is_not_a_new_answer(channel, server, catalogue) -> None:
    person = Person(server, "Gül")
    person.says("/start")
    await person.expect(catalogue.text("de", "choose_language").splitlines()[0])
    before = len(server.sent(person.chat))
    message = server.sent(person.chat)[-1]
    server.deliver(
        {
            "edited_message": {
                "message_id": message["message_id"] - 1,
                "from": person.user,
                "chat": person.chat,
                "date": message["date"],
                "edit_date": message["date"] + 1,
                "text": "2",
            }
        }
    )
    person.presses("de")
    await person.expect(catalogue.text("de", "consent_question").splitlines()[0])
    assert (
        channel.engine.store.conversation(
            Pseudonymizer(TELEGRAM_SECRET).participant("telegram", str(person.user["id"]))
        ).language
        == "de"
    )
    assert len(server.sent(person.chat)) > before
