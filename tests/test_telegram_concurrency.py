"""Updates of different people handled side by side, each person's in order, and ideas that
arrive together embedded together: the real python-telegram-bot, our channel and engine, and
the Bot API test server."""

import asyncio
from collections import Counter
from typing import Any

from conftest import started
from telegram_server import TelegramTestServer
from test_telegram_chat import Person, consent


class HoldingServer(TelegramTestServer):
    """The test server, answering no press (answerCallbackQuery) until `release`: the bot's
    call waits as it would for a slow network."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()
        self.held = 0

    async def _answer_callback_query(self, params: dict[str, Any], uploads: Any) -> bool:
        self.held += 1
        await self.released.wait()
        return await super()._answer_callback_query(params, uploads)


def first_line(catalogue, key: str) -> str:
    return catalogue.text("de", key).splitlines()[0]


async def test_one_persons_slow_press_holds_up_no_one_else_and_their_next_message_waits(
    make_engine, catalogue
) -> None:
    async with HoldingServer() as server:
        channel = await started(make_engine(nlp=False), server)
        try:
            anna, ben = Person(server, "Anna"), Person(server, "Ben")
            for person in (anna, ben):
                person.says("/start")
                await person.expect(first_line(catalogue, "choose_language"))
            anna.presses("de")  # its answer to Telegram is held: the update stays in hand
            await server.wait_until(lambda: server.held == 1, timeout=20, what="the press")
            anna.says("/hilfe")  # asked for while her press is in hand
            ben.says("/hilfe")
            await ben.expect(first_line(catalogue, "help"))  # answered meanwhile
            # Nothing for Anna yet: Ben did not wait for her press, her text did.
            assert server.sent(anna.chat)[anna.seen :] == []

            server.released.set()
            pressed = await anna.expect(first_line(catalogue, "consent_question"))
            helped = await anna.expect(first_line(catalogue, "help"))
            order = server.sent(anna.chat)
            assert order.index(pressed) < order.index(helped)
            await anna.expect(first_line(catalogue, "consent_question"))  # asked again after help
        finally:
            await channel.stop()


async def test_ideas_that_arrive_together_are_embedded_in_one_batch(make_engine, catalogue) -> None:
    ideas = [
        "Mehr Bäume in den Straßen pflanzen gegen die Hitze",
        "Kostenloses WLAN in allen Stadtbibliotheken anbieten",
        "Sichere Radwege entlang der großen Straßen bauen",
    ]
    async with TelegramTestServer() as server:
        channel = await started(make_engine(), server)
        try:
            people = [Person(server, name) for name in ("Anna", "Ben", "Cem")]
            await asyncio.gather(*(consent(person, catalogue) for person in people))
            for person, idea in zip(people, ideas, strict=True):
                person.says(idea)  # all three before the bot asks for updates again
            for person, idea in zip(people, ideas, strict=True):
                await person.expect(idea)  # read back: each idea was filed
            assert channel.ahead.batches == Counter({3: 1})
            stored = channel.engine.store.ideas()
            assert sorted(i["text"] for i in stored) == sorted(ideas)
        finally:
            await channel.stop()
