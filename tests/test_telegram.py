"""The Telegram adapter's own rules; conversations over the Bot API are in test_telegram_chat."""

import asyncio
import socket

import pytest
from telegram import InputFile
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter
from telegram_server import TelegramTestServer

from mitreden.bot.telegram import MENU_LANGUAGES, AiohttpRequest, ButtonValues, split_text
from mitreden.flows import Choice, Outbound
from mitreden.flows.definition import load_flow


def test_long_replies_are_split_below_telegrams_limit_at_a_line() -> None:
    text = "\n".join(f"Zeile {n}: " + "x" * 90 for n in range(100))
    pieces = split_text(text)
    assert len(pieces) == 3 and all(len(p) <= 4096 for p in pieces)
    assert "\n".join(pieces) == text
    assert split_text("kurz") == ["kurz"]
    assert split_text("y" * 5000) == ["y" * 4096, "y" * 904]


def test_choices_become_one_button_a_row_with_their_value() -> None:
    buttons = ButtonValues()
    markup = buttons.keyboard(Outbound("Frage", (Choice("yes", "Ja"), Choice("no", "Nein"))))
    rows = markup.inline_keyboard
    assert [(r[0].text, r[0].callback_data) for r in rows] == [("Ja", "yes"), ("Nein", "no")]
    assert buttons.keyboard(Outbound("ohne Auswahl")) is None


def test_a_value_longer_than_telegram_carries_travels_as_a_hash() -> None:
    buttons = ButtonValues()
    long_id = "Foment de la cultura al Coll, Vallcarca i els Penitents i la Salut - ÄÖÜ"
    markup = buttons.keyboard(Outbound("Frage", (Choice(long_id, "Kultur"),)))
    data = markup.inline_keyboard[0][0].callback_data
    assert len(data.encode("utf-8")) <= 64 and data != long_id
    assert buttons.value(data) == long_id
    assert ButtonValues().value(data) == data, "after a restart the press reads as stale"


def test_every_menu_command_is_one_the_flow_understands(catalogue) -> None:
    flow = load_flow()
    for language in MENU_LANGUAGES:
        menu = catalogue.entries(language, "command_menu")
        assert set(menu) <= set(flow.commands), language
        assert all(name.islower() and len(name) <= 32 for name in menu)


async def test_bot_api_calls_over_aiohttp_carry_text_keyboards_and_files() -> None:
    """The channel's HTTP client: form fields, a keyboard, an upload with its name and bytes,
    and a long poll, all as PTB's own client sends them."""
    async with TelegramTestServer() as server:
        ida = server.user("Ida")
        chat = server.private_chat(ida)
        builder = server.application_builder().request(AiohttpRequest(2))
        async with builder.get_updates_request(AiohttpRequest(1)).build() as app:
            keyboard = ButtonValues().keyboard(Outbound("Frage", (Choice("yes", "Jä"),)))
            message = await app.bot.send_message(chat["id"], "Grüße & mehr", reply_markup=keyboard)
            csv = "id;titel\n1;Mehr Bänke\n".encode()
            await app.bot.send_document(chat["id"], InputFile(csv, filename="ideen.csv"))
            server.send_text(chat, ida, "hallo")
            updates = await app.bot.get_updates(timeout=1)
    text, document = server.sent(chat)
    assert text["text"] == message.text == "Grüße & mehr"
    assert text["reply_markup"]["inline_keyboard"][0][0]["text"] == "Jä"
    assert server.files[document["document"]["file_id"]].content == csv
    assert document["document"]["file_name"] == "ideen.csv"
    assert [u.message.text for u in updates] == ["hallo"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_bot_api_is_a_network_error_without_the_token() -> None:
    token = "123456:SECRET-token-never-in-an-error"
    base = f"http://127.0.0.1:{_closed_port()}/bot"
    request = AiohttpRequest(1)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await request.post(f"{base}{token}/getMe")
    finally:
        await request.shutdown()
    assert "SECRET" not in str(raised.value)


async def test_calls_beyond_the_connections_wait_and_time_out_unsent() -> None:
    """A call that finds every connection busy for longer than its pool timeout is TimedOut
    and was never sent."""
    async with TelegramTestServer() as server:
        request = AiohttpRequest(1, pool_timeout=0.05)
        await request.initialize()
        url = f"{server.url}/bot{server.token}/getUpdates"
        try:
            poll = RequestData([RequestParameter.from_input("timeout", 2)])
            held = asyncio.create_task(request.post(url, poll, read_timeout=5))
            await asyncio.sleep(0.1)  # the long poll holds the one connection
            before = len(server.requests)
            with pytest.raises(TimedOut):
                await request.post(f"{server.url}/bot{server.token}/getMe")
            assert len(server.requests) == before
            held.cancel()
        finally:
            await request.shutdown()


def test_the_proxy_comes_from_the_environment_as_httpx_reads_it(monkeypatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    api = "https://api.telegram.org/bot1:x/getMe"
    assert AiohttpRequest(1)._proxy(api) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert AiohttpRequest(1)._proxy(api) == "http://proxy.example:3128"
    assert AiohttpRequest(1)._proxy("http://127.0.0.1:8081/bot1:x/getMe") is None
    monkeypatch.setenv("ALL_PROXY", "http://all.example:3128")
    assert AiohttpRequest(1)._proxy("http://127.0.0.1:8081/bot1:x/getMe") == (
        "http://all.example:3128"
    )
    monkeypatch.setenv("NO_PROXY", "api.telegram.org")
    assert AiohttpRequest(1)._proxy(api) is None
