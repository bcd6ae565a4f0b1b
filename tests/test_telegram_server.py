"""The Bot API test server is only worth trusting if the real python-telegram-bot accepts it.

Every test here drives an unmodified PTB Application (or Bot) over HTTP against the server, so a
difference between the server and Telegram shows up as a PTB failure here rather than as a
puzzling adapter bug elsewhere. Long polls use a 1 s timeout and every app is stopped by the
helper that started it. Webhooks are received by a bare aiohttp endpoint or by PTB's own webhook
server, both on plain HTTP behind the server's ``tls_proxy``.
"""

import asyncio
import contextlib
import gc
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, InvalidToken
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PollAnswerHandler,
    TypeHandler,
    filters,
)
from telegram_server import TelegramTestServer

Context = ContextTypes.DEFAULT_TYPE


@pytest.fixture
async def server() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer() as telegram:
        yield telegram


class WebhookReceiver:
    """A bare webhook endpoint: records each post and answers with ``status``."""

    def __init__(self) -> None:
        self.url = ""
        self.status = 200
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.json()))
        return web.Response(status=self.status)

    def texts(self) -> list[str]:
        return [update["message"]["text"] for _, update in self.posts if "message" in update]


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def call(
    session: aiohttp.ClientSession, server: TelegramTestServer, method: str, **params: str
) -> tuple[int, dict[str, Any]]:
    """One raw Bot API call, form-encoded as PTB sends it."""
    async with session.post(f"{server.url}/bot{server.token}/{method}", data=params) as response:
        return response.status, await response.json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def polling(app: Application) -> AsyncIterator[Application]:
    """Runs ``app`` the way ``run_polling`` does, without owning the event loop."""
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def test_start_command_and_echo(server: TelegramTestServer) -> None:
    alice = server.user("Alice")
    chat = server.private_chat(alice)

    async def start(update: Update, context: Context) -> None:
        await context.bot.send_chat_action(update.effective_chat.id, ChatAction.TYPING)
        await update.message.reply_text("Willkommen bei <b>Mitreden</b>!", parse_mode="HTML")

    async def echo(update: Update, context: Context) -> None:
        await update.message.reply_text(update.message.text)

    app = server.application_builder().build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with polling(app):
        server.send_text(chat, alice, "/start")
        [welcome] = await server.wait_for_reply(chat)
        server.send_text(chat, alice, "Hallo")
        [echoed] = await server.wait_for_reply(chat)

    assert welcome["text"] == "Willkommen bei Mitreden!"
    assert welcome["entities"] == [{"offset": 15, "length": 8, "type": "bold"}]
    assert welcome["from"]["id"] == server.bot["id"]
    assert welcome["chat"]["id"] == alice["id"]
    assert echoed["text"] == "Hallo"
    assert echoed["message_id"] > welcome["message_id"]
    methods = [request.method for request in server.requests]
    assert methods[:2] == ["getMe", "deleteWebhook"]
    assert "sendChatAction" in methods
    assert server.unknown_methods == []
    assert server.pending_updates == 0  # PTB confirmed everything on shutdown


async def test_commands_addressed_to_another_bot_are_ignored(server: TelegramTestServer) -> None:
    alice, bob = server.user("Alice"), server.user("Bob")
    group = server.group_chat("Kiezrunde", members=[alice, bob])
    seen: list[str] = []

    async def start(update: Update, context: Context) -> None:
        seen.append(update.message.text)
        await update.message.reply_text("Hallo Gruppe")

    app = server.application_builder().build()
    app.add_handler(CommandHandler("start", start))
    async with polling(app):
        server.send_text(group, bob, "/start@other_bot")
        server.send_text(group, alice, f"/start@{server.bot['username']}")
        [reply] = await server.wait_for_reply(group)

    assert seen == ["/start@mitreden_test_bot"]
    # PTB quotes in groups by default: reply_parameters arrive as a JSON string.
    assert reply["reply_to_message"]["text"] == "/start@mitreden_test_bot"
    assert reply["reply_to_message"]["from"]["id"] == alice["id"]


async def test_inline_keyboard_round_trip(server: TelegramTestServer) -> None:
    bob = server.user("Bob", language_code="en")
    chat = server.private_chat(bob)

    async def topic(update: Update, context: Context) -> None:
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Verkehr", callback_data="topic:verkehr"),
                    InlineKeyboardButton("Grün", callback_data="topic:gruen"),
                ]
            ]
        )
        await update.message.reply_text("Worum geht es?", reply_markup=keyboard)

    async def chosen(update: Update, context: Context) -> None:
        query = update.callback_query
        await query.answer("Danke!")
        await query.edit_message_text(f"Thema: {query.data.removeprefix('topic:')}")

    app = server.application_builder().build()
    app.add_handler(CommandHandler("thema", topic))
    app.add_handler(CallbackQueryHandler(chosen, pattern=r"^topic:"))
    async with polling(app):
        server.send_text(chat, bob, "/thema")
        [question] = await server.wait_for_reply(chat)
        buttons = question["reply_markup"]["inline_keyboard"][0]
        assert [b["callback_data"] for b in buttons] == ["topic:verkehr", "topic:gruen"]
        query = server.press(chat, bob, question, "topic:gruen")
        await server.wait_until(lambda: server.edits, what="the bot edits the question")

    edited = server.message(chat, question["message_id"])
    assert edited["text"] == "Thema: gruen"
    assert "edit_date" in edited
    assert "reply_markup" not in edited  # an edit without reply_markup drops the keyboard
    assert server.callback_answers[query["id"]] == {"text": "Danke!"}
    assert server.edits[0]["method"] == "editMessageText"
    assert len(server.sent(chat)) == 1
    with pytest.raises(ValueError, match="no button"):
        server.press(chat, bob, question, "topic:gruen")  # the keyboard is gone now
    assert server.unknown_methods == []


async def test_commands_are_stored_per_language(server: TelegramTestServer) -> None:
    async with server.application_builder().build() as app:
        await app.bot.set_my_commands(
            [BotCommand("start", "Beginnen"), BotCommand("idee", "Eine Idee einreichen")],
            language_code="de",
        )
        english = [("start", "Begin"), ("idea", "Submit an idea")]
        await app.bot.set_my_commands(english, language_code="en")
        german = await app.bot.get_my_commands(language_code="de")
        default = await app.bot.get_my_commands()
        with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
            await app.bot.set_my_commands([("Idee!", "Großbuchstaben gehen nicht")])
        await app.bot.delete_my_commands(language_code="en")

    assert [(c.command, c.description) for c in german] == [
        ("start", "Beginnen"),
        ("idee", "Eine Idee einreichen"),
    ]
    assert default == ()
    assert server.commands_for("de") == [
        {"command": "start", "description": "Beginnen"},
        {"command": "idee", "description": "Eine Idee einreichen"},
    ]
    assert server.commands_for("en") == []
    set_en = next(r for r in server.requests if r.params.get("language_code") == "en")
    assert set_en.params["commands"][1] == {"command": "idea", "description": "Submit an idea"}


async def test_poll_votes_and_results(server: TelegramTestServer) -> None:
    anna, ben, cem = server.user("Anna"), server.user("Ben"), server.user("Cem")
    group = server.group_chat("Nachbarschaft", members=[ben], admins=[anna], creator=cem)
    answers: list[tuple[int, tuple[int, ...]]] = []
    results: dict[str, int] = {}

    async def open_poll(update: Update, context: Context) -> None:
        chat, user = update.effective_chat, update.effective_user
        member = await context.bot.get_chat_member(chat.id, user.id)
        if member.status not in ("administrator", "creator"):
            await update.message.reply_text("Nur Admins können abstimmen lassen.")
            return
        message = await context.bot.send_poll(
            update.effective_chat.id,
            "Was soll zuerst passieren?",
            ["Radwege", "Bänke", "Bäume"],
            is_anonymous=False,
            allows_multiple_answers=True,
        )
        context.bot_data["poll_message_id"] = message.message_id

    async def close_poll(update: Update, context: Context) -> None:
        poll = await context.bot.stop_poll(
            update.effective_chat.id, context.bot_data["poll_message_id"]
        )
        results.update({option.text: option.voter_count for option in poll.options})
        results["total"] = poll.total_voter_count

    async def on_answer(update: Update, context: Context) -> None:
        answers.append((update.poll_answer.user.id, tuple(update.poll_answer.option_ids)))

    app = server.application_builder().build()
    app.add_handler(CommandHandler("umfrage", open_poll))
    app.add_handler(CommandHandler("ende", close_poll))
    app.add_handler(PollAnswerHandler(on_answer))
    async with polling(app):
        server.send_text(group, ben, "/umfrage")
        [refusal] = await server.wait_for_reply(group)
        server.send_text(group, anna, "/umfrage")
        [poll_message] = await server.wait_for_reply(group)
        server.vote(poll_message, anna, [0, 2])
        server.vote(poll_message, ben, [2])
        await server.wait_until(lambda: len(answers) == 2, what="both poll answers")
        server.send_text(group, cem, "/ende")
        await server.wait_until(lambda: results, what="the poll is stopped")

    assert refusal["text"] == "Nur Admins können abstimmen lassen."
    assert poll_message["poll"]["allows_multiple_answers"] is True
    assert poll_message["poll"]["is_anonymous"] is False
    assert answers == [(anna["id"], (0, 2)), (ben["id"], (2,))]
    assert results == {"Radwege": 1, "Bänke": 0, "Bäume": 2, "total": 2}
    assert server.message(group, poll_message["message_id"])["poll"]["is_closed"] is True
    assert server.unknown_methods == []


async def test_chat_member_roles(server: TelegramTestServer) -> None:
    anna, ben, cem, dora = (server.user(name) for name in ("Anna", "Ben", "Cem", "Dora"))
    group = server.group_chat("Rat", members=[ben], admins=[anna], creator=cem, type="group")
    async with server.application_builder().build() as app:
        statuses = [
            (await app.bot.get_chat_member(group["id"], user["id"])).status
            for user in (anna, ben, cem, dora)
        ]
        admins = await app.bot.get_chat_administrators(group["id"])
        chat = await app.bot.get_chat(group["id"])
        with pytest.raises(BadRequest, match=r"(?i)no administrators in the private chat"):
            await app.bot.get_chat_administrators(server.private_chat(dora)["id"])

    assert statuses == ["administrator", "member", "creator", "left"]
    assert sorted(member.user.first_name for member in admins) == ["Anna", "Cem"]
    assert (chat.type, chat.title) == ("group", "Rat")


async def test_redelivered_update_reaches_ptb_again(server: TelegramTestServer) -> None:
    carla = server.user("Carla")
    chat = server.private_chat(carla)
    seen: list[int] = []

    async def record(update: Update, context: Context) -> None:
        seen.append(update.update_id)

    app = server.application_builder().build()
    app.add_handler(TypeHandler(Update, record))
    async with polling(app):
        server.send_text(chat, carla, "Nur einmal geschickt")
        await server.wait_until(lambda: len(seen) == 1, what="first delivery")
        server.redeliver(seen[0])
        await server.wait_until(lambda: len(seen) == 2, what="second delivery")

    assert seen[0] == seen[1]
    assert server.pending_updates == 0


async def test_media_updates_parse_in_ptb(server: TelegramTestServer) -> None:
    emil = server.user("Emil", username="emil_b")
    chat = server.private_chat(emil)
    kinds: list[str] = []
    downloaded: list[bytes] = []

    async def record(update: Update, context: Context) -> None:
        message = update.message
        if message.photo:
            kinds.append(f"photo {message.photo[-1].width}x{message.photo[-1].height}")
        elif message.sticker:
            kinds.append(f"sticker {message.sticker.emoji}")
        elif message.voice:
            kinds.append(f"voice {message.voice.to_dict()['duration']}")
        elif message.document:
            kinds.append(f"document {message.document.file_name}")
            file = await message.document.get_file()
            downloaded.append(bytes(await file.download_as_bytearray()))
        elif message.location:
            kinds.append(f"location {message.location.latitude:.2f}")

    app = server.application_builder().build()
    app.add_handler(MessageHandler(filters.ALL, record))
    async with polling(app):
        server.send_photo(chat, emil, caption="Kaputte Bank")
        server.send_sticker(chat, emil)
        server.send_voice(chat, emil, duration=7)
        server.send_document(chat, emil, file_name="plan.pdf", content=b"%PDF-1.4 plan")
        server.send_location(chat, emil, latitude=52.52, longitude=13.40)
        await server.wait_until(lambda: len(kinds) == 5, what="five media messages")

    assert kinds == [
        "photo 1280x960",
        "sticker 👍",
        "voice 7",
        "document plan.pdf",
        "location 52.52",
    ]
    assert downloaded == [b"%PDF-1.4 plan"]


async def test_send_document_keeps_name_and_bytes(server: TelegramTestServer) -> None:
    frida = server.user("Frida")
    chat = server.private_chat(frida)
    csv = "id;titel\n1;Mehr Bänke\n".encode()
    async with server.application_builder().build() as app:
        message = await app.bot.send_document(
            chat["id"],
            InputFile(csv, filename="ideen.csv"),
            caption="Alle Ideen",
        )

    [record] = server.sent(chat)
    assert record["document"]["file_name"] == message.document.file_name == "ideen.csv"
    assert record["caption"] == "Alle Ideen"
    assert server.files[record["document"]["file_id"]].content == csv
    upload = next(r for r in server.requests if r.method == "sendDocument")
    assert upload.params["document"] == {"filename": "ideen.csv", "size": len(csv)}


async def test_reply_keyboard_is_recorded_but_not_returned(server: TelegramTestServer) -> None:
    gert = server.user("Gert")
    chat = server.private_chat(gert)
    async with server.application_builder().build() as app:
        message = await app.bot.send_message(
            chat["id"], "Wie alt bist du?", reply_markup=ReplyKeyboardMarkup([["unter 30", "30+"]])
        )
    assert message.reply_markup is None  # Telegram returns only inline keyboards
    assert server.sent(chat)[0]["reply_markup"] == {
        "keyboard": [[{"text": "unter 30"}, {"text": "30+"}]]
    }


async def test_hostile_input_is_rejected_like_telegram(server: TelegramTestServer) -> None:
    hanna, stranger = server.user("Hanna"), server.user("Fremd")
    chat = server.private_chat(hanna)
    async with server.application_builder().build() as app:
        bot = app.bot
        await bot.send_message(chat["id"], "x" * 4096)
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(chat["id"], "x" * 4097)
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(chat["id"], "  \n ")
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(-42, "Hallo?")
        with pytest.raises(Forbidden, match=r"(?i)can't initiate conversation"):
            await bot.send_message(stranger["id"], "Hallo?")
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(chat["id"], "a <b>b", parse_mode="HTML")
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="ä" * 33)]])
        with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
            await bot.send_message(chat["id"], "66 Bytes", reply_markup=too_long)
        bare = InlineKeyboardMarkup([[InlineKeyboardButton("nur Text")]])
        with pytest.raises(BadRequest, match=r"(?i)Text buttons are unallowed"):
            await bot.send_message(chat["id"], "kein Knopf", reply_markup=bare)
        group = server.group_chat("Umfrage", members=[hanna])
        with pytest.raises(BadRequest, match=r"(?i)more than 12 options"):
            await bot.send_poll(group["id"], "Welche?", [str(i) for i in range(13)])
        with pytest.raises(BadRequest, match=r"(?i)question length"):
            await bot.send_poll(group["id"], "?" * 301, ["ja", "nein"])
        sent = await bot.send_message(chat["id"], "gleich")
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("gleich", chat["id"], sent.message_id)

    failing = [r.method for r in server.errors]
    assert failing.count("sendMessage") == 7 and failing.count("sendPoll") == 2
    assert server.sent(chat)[0]["text"] == "x" * 4096
    assert server.unknown_methods == []


async def test_wrong_token_is_unauthorized(server: TelegramTestServer) -> None:
    bot = Bot("7000000001:wrong", base_url=f"{server.url}/bot")
    with pytest.raises(InvalidToken, match="rejected by the server"):
        await bot.initialize()
    # A failed initialize leaves PTB's HTTP clients open; Application.shutdown would skip them.
    await bot.shutdown()
    assert (server.requests[0].method, server.requests[0].status) == ("getMe", 401)
    assert server.requests[0].response == {
        "ok": False,
        "error_code": 401,
        "description": "Unauthorized",
    }


async def test_unknown_method_answers_404_and_is_recorded(server: TelegramTestServer) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/bot{server.token}/sendRocket"
        async with session.post(url, data={"chat_id": "1"}) as response:
            status, body = response.status, await response.json()
        async with session.post(
            f"{server.url}/bot{server.token}/sendMessage",
            data={"chat_id": "1", "text": "x", "reply_markup": "{not json"},
        ) as response:
            bad_json = response.status

    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method sendRocket"}
    assert server.unknown_methods == ["sendRocket"]
    assert server.requests[0].params == {"chat_id": 1}
    assert bad_json == 400


async def test_long_poll_waits_confirms_and_filters(server: TelegramTestServer) -> None:
    ida = server.user("Ida")
    chat = server.private_chat(ida)
    base = f"{server.url}/bot{server.token}"
    async with aiohttp.ClientSession() as session:

        async def get_updates(**params: str) -> list[dict]:
            async with session.post(f"{base}/getUpdates", data=params) as response:
                body = await response.json()
                assert body["ok"], body
                return body["result"]

        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await get_updates(timeout="0.3") == []
        assert loop.time() - started >= 0.25  # held open until the timeout

        waiting = asyncio.create_task(get_updates(timeout="5"))
        await asyncio.sleep(0.05)
        server.send_text(chat, ida, "eins")
        started = loop.time()
        [first] = await waiting
        assert loop.time() - started < 1  # woken by the update, not by the timeout

        server.send_text(chat, ida, "zwei")
        assert [u["update_id"] for u in await get_updates()] == [
            first["update_id"],
            first["update_id"] + 1,
        ]
        [second] = await get_updates(offset=str(first["update_id"] + 1))
        assert second["message"]["text"] == "zwei"
        assert await get_updates(offset=str(second["update_id"] + 1)) == []

        server.send_text(chat, ida, "drei")
        assert await get_updates(allowed_updates='["callback_query"]') == []
        assert server.pending_updates == 0  # an unwanted kind is never handed out
    assert server.unknown_methods == []


async def test_two_pollers_conflict(server: TelegramTestServer) -> None:
    base = f"{server.url}/bot{server.token}"
    async with aiohttp.ClientSession() as session:

        async def poll(timeout: str) -> int:
            async with session.post(f"{base}/getUpdates", data={"timeout": timeout}) as response:
                return response.status

        older = asyncio.create_task(poll("5"))
        await asyncio.sleep(0.05)
        newer = await poll("0.2")
        assert (await older, newer) == (409, 200)


WEBHOOK_CONFLICT = {
    "ok": False,
    "error_code": 409,
    "description": "Conflict: can't use getUpdates method while webhook is active; use "
    "deleteWebhook to delete the webhook first",
}


async def test_webhook_posts_in_order_retries_and_blocks_polling(
    server: TelegramTestServer,
) -> None:
    ida = server.user("Ida")
    chat = server.private_chat(ida)
    async with webhook_receiver() as receiver, aiohttp.ClientSession() as session:
        server.tls_proxy("https://bot.example.org", receiver.url)
        receiver.status = 500
        server.send_text(chat, ida, "eins")
        server.send_text(chat, ida, "zwei")
        hook = {"url": "https://bot.example.org/hook", "secret_token": "s3cret"}
        assert await call(session, server, "setWebhook", **hook) == (
            200,
            {"ok": True, "result": True},
        )
        await server.wait_until(lambda: len(receiver.posts) >= 2, what="a retried delivery")
        _, body = await call(session, server, "getWebhookInfo")
        info = body["result"]
        assert set(receiver.texts()) == {"eins"}  # retried, never skipped
        assert info["url"] == "https://bot.example.org/hook"
        assert info["pending_update_count"] == 2
        assert (
            info["last_error_message"]
            == "Wrong response from the webhook: 500 Internal Server Error"
        )
        assert abs(info["last_error_date"] - time.time()) < 60
        assert "secret_token" not in info
        assert await call(session, server, "getUpdates") == (409, WEBHOOK_CONFLICT)

        receiver.status = 200
        await server.wait_until(lambda: server.pending_updates == 0, what="both confirmed")
        texts = receiver.texts()
        assert texts[-2:] == ["eins", "zwei"] and set(texts[:-1]) == {"eins"}
        for headers, _ in receiver.posts:
            assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret"
            assert headers["Content-Type"] == "application/json"
        zwei = receiver.posts[-1][1]
        assert zwei["update_id"] == receiver.posts[0][1]["update_id"] + 1

        posted = len(receiver.posts)
        server.redeliver(zwei["update_id"])
        await server.wait_until(lambda: len(receiver.posts) > posted, what="the redelivery")
        assert receiver.posts[posted][1] == zwei

        receiver.status = 500
        server.send_text(chat, ida, "drei")
        await server.wait_until(lambda: receiver.texts()[-1] == "drei", what="drei is posted")
        assert await call(session, server, "deleteWebhook") == (200, {"ok": True, "result": True})
        server.send_text(chat, ida, "vier")
        status, body = await call(session, server, "getUpdates")
        _, info_body = await call(session, server, "getWebhookInfo")

    assert status == 200
    assert [update["message"]["text"] for update in body["result"]] == ["drei", "vier"]
    assert "vier" not in receiver.texts()
    assert info_body["result"] == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 2,
    }
    assert server.unknown_methods == []


async def test_webhook_needs_a_proxy_and_respects_allowed_updates(
    server: TelegramTestServer,
) -> None:
    jan = server.user("Jan")
    chat = server.private_chat(jan)
    async with webhook_receiver() as receiver, aiohttp.ClientSession() as session:
        server.tls_proxy("https://bot.example", receiver.url)  # another host, not a prefix of it
        await call(
            session,
            server,
            "setWebhook",
            url="https://bot.example.org/hook",
            allowed_updates='["message"]',
        )
        server.deliver({"poll": {"id": "1", "question": "?", "options": [], "is_closed": True}})
        server.send_text(chat, jan, "Hallo?")
        unresolved = "Failed to resolve host: Name or service not known"
        await server.wait_until(
            lambda: server.webhook_info().get("last_error_message") == unresolved,
            what="the delivery fails without a proxy",
        )
        assert server.webhook_info()["pending_update_count"] == 1  # the poll is not wanted
        assert receiver.posts == []

        server.tls_proxy("https://bot.example.org", receiver.url)
        await server.wait_until(lambda: server.pending_updates == 0, what="delivery via proxy")
        [(headers, update)] = receiver.posts
        raw = server.deliver({"update_id": update["update_id"] + 10, "message": update["message"]})
        await server.wait_until(lambda: len(receiver.posts) == 2, what="a raw update")

    assert update["message"]["text"] == "Hallo?"
    assert "X-Telegram-Bot-Api-Secret-Token" not in headers  # setWebhook got no secret
    assert receiver.posts[1][1] == raw
    assert server.webhook_info()["allowed_updates"] == ["message"]


@contextlib.asynccontextmanager
async def webhook(app: Application, port: int) -> AsyncIterator[Application]:
    """Runs ``app`` the way ``run_webhook`` does behind a proxy for https://bot.example.org."""
    async with app:
        await app.start()
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="telegram",
            webhook_url="https://bot.example.org/telegram",
            secret_token="s3cret",
        )
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def test_ptb_webhook_behind_tls_proxy(server: TelegramTestServer) -> None:
    karl = server.user("Karl")
    chat = server.private_chat(karl)

    async def echo(update: Update, context: Context) -> None:
        await update.message.reply_text(update.message.text)

    app = server.application_builder().build()
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    port = free_port()
    server.tls_proxy("https://bot.example.org", f"http://127.0.0.1:{port}")
    async with webhook(app, port):
        server.send_text(chat, karl, "Hallo per Webhook")
        [echoed] = await server.wait_for_reply(chat)

        # Someone else sets the webhook with another secret: PTB refuses what then arrives.
        await app.bot.set_webhook("https://bot.example.org/telegram", secret_token="falsch")
        server.send_text(chat, karl, "Geheim?")
        rejected = "Wrong response from the webhook: 403 Request had the wrong secret token"
        await server.wait_until(
            lambda: server.webhook_info().get("last_error_message") == rejected,
            what="PTB rejects the wrong secret",
        )
        assert server.pending_updates == 1
        assert server.sent(chat) == [echoed]

        await app.bot.set_webhook("https://bot.example.org/telegram", secret_token="s3cret")
        [second] = await server.wait_for_reply(chat)

    assert echoed["text"] == "Hallo per Webhook"
    assert second["text"] == "Geheim?"
    first_set = next(r for r in server.requests if r.method == "setWebhook")
    assert first_set.params["url"] == "https://bot.example.org/telegram"
    assert first_set.params["secret_token"] == "s3cret"
    assert "getUpdates" not in [r.method for r in server.requests]
    assert server.pending_updates == 0
    assert server.unknown_methods == []


async def test_setwebhook_ends_a_waiting_long_poll(server: TelegramTestServer) -> None:
    async with aiohttp.ClientSession() as session:
        waiting = asyncio.create_task(call(session, server, "getUpdates", timeout="5"))
        await server.wait_until(
            lambda: any(r.method == "getUpdates" for r in server.requests), what="the long poll"
        )
        await call(session, server, "setWebhook", url="https://bot.example.org/hook")
        status, body = await waiting

    assert (status, body["description"]) == (409, "Conflict: terminated by setWebhook request")


async def test_stop_ends_an_inflight_webhook_post_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hang)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        server = TelegramTestServer()
        async with server, aiohttp.ClientSession() as session:
            server.tls_proxy(
                "https://bot.example.org", f"http://127.0.0.1:{runner.addresses[0][1]}"
            )
            await call(session, server, "setWebhook", url="https://bot.example.org/hook")
            lena = server.user("Lena")
            server.send_text(server.private_chat(lena), lena, "Bist du da?")
            await asyncio.wait_for(arrived.wait(), 5)
    finally:
        release.set()
        await runner.cleanup()
    gc.collect()

    names = [task.get_name() for task in asyncio.all_tasks()]
    assert "telegram-webhook-pusher" not in names
    assert server.pending_updates == 1  # never answered, so never confirmed
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
