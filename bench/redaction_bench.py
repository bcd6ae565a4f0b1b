"""How much personal data the redactor finds on the redaction test set, how often it hides what is
not personal data, and how long it takes, beside the first-cut redactor as a baseline.

The set (testing/data/redaction.yaml) and the scoring rule (testing/redaction_set.py) are
shared with tests/test_redaction_set.py, so the figures printed here are the ones the goal tests
assert.
The baseline is the first cut of nlp/redact.py (regular expressions for e-mail, URL and IBAN,
`phonenumbers` for phone numbers), copied here so it stays fixed while the redactor changes.

Run: python bench/redaction_bench.py [--show] [--json] [--repeats N]
"""

import argparse
import json
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import _common  # noqa: F401  (it puts testing/ on the path)
import phonenumbers
from redaction_set import (
    DATA,
    HOLDOUT,
    KINDS,
    MS_PER_IDEA_GOAL,
    PRECISION_GOAL,
    RECALL_GOALS,
    Finder,
    Score,
    Sentence,
    Span,
    load,
    redact_finder,
    score,
)

# ------------------------------------------------------------------ baseline: the first cut
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)


def _iban_valid(candidate: str) -> bool:
    compact = re.sub(r"\s", "", candidate).upper()
    if not 15 <= len(compact) <= 34:
        return False
    digits = "".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def baseline(text: str) -> list[Span]:
    """The first cut's findings as spans: it replaced e-mails, then URLs, then IBANs (trimmed
    back to the longest valid one), then phone numbers, each in what the earlier ones left."""
    spans: list[Span] = []

    def take(start: int, end: int, kind: str) -> None:
        if not any(start < s.end and s.start < end for s in spans):
            spans.append(Span(start, end, kind))

    for match in _EMAIL.finditer(text):
        take(match.start(), match.end(), "email")
    for match in _URL.finditer(text):
        take(match.start(), match.end(), "url")
    for match in _IBAN.finditer(text):
        candidate = match.group(0)
        for end in range(len(candidate), 14, -1):
            if not candidate[end - 1].isspace() and _iban_valid(candidate[:end]):
                take(match.start(), match.start() + end, "iban")
                break
    for match in phonenumbers.PhoneNumberMatcher(text, "DE"):
        take(match.start, match.end, "phone")
    return sorted(spans, key=lambda s: s.start)


# ------------------------------------------------------------------ measuring
def redactor() -> tuple[Finder | None, str]:
    """`mitreden.nlp.redact.find` as a Finder, or None and why not (it may not be written yet)."""
    try:
        from mitreden.nlp.redact import find
    except ImportError as error:
        return None, f"mitreden.nlp.redact.find is not available ({error}): baseline only."
    return redact_finder(find), ""


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: a time that was actually measured, no interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def timings(finder: Callable[[str], Any], sentences: list[Sentence], repeats: int) -> list[float]:
    """Milliseconds of every single call, `repeats` passes over all sentences."""
    times = []
    for _ in range(repeats):
        for sentence in sentences:
            start = time.perf_counter()
            finder(sentence.text)
            times.append((time.perf_counter() - start) * 1000)
    return times


def measure(finder: Finder, sentences: list[Sentence], repeats: int) -> dict[str, Any]:
    start = time.perf_counter()
    finder(sentences[0].text)
    first_ms = (time.perf_counter() - start) * 1000  # includes loading anything lazy
    result = score(sentences, finder)
    times = timings(finder, sentences, repeats)
    return {
        "score": result,
        "first_call_ms": first_ms,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
    }


# ------------------------------------------------------------------ reporting
def verdict(met: bool) -> str:
    return "met" if met else "missed"


def as_json(sentences: list[Sentence], runs: dict[str, dict[str, Any]], note: str) -> str:
    def one(run: dict[str, Any]) -> dict[str, Any]:
        result: Score = run["score"]
        return {
            "recall": {k: s.recall for k, s in result.kinds.items()},
            "found": {k: s.caught for k, s in result.kinds.items()},
            "predicted": result.predicted,
            "precision": result.precision,
            "false_positives": [f"{kind}: {text}" for kind, text in result.false_positives],
            "missed": [f"{kind}: {text}" for kind, text in result.missed],
            "first_call_ms": run["first_call_ms"],
            "p50_ms": run["p50_ms"],
            "p95_ms": run["p95_ms"],
        }

    expected = {k: s.expected for k, s in next(iter(runs.values()))["score"].kinds.items()}
    return json.dumps(
        {
            "sentences": len(sentences),
            "with_findings": sum(1 for s in sentences if s.spans),
            "expected": expected,
            "goals": {
                "recall": RECALL_GOALS,
                "precision": PRECISION_GOAL,
                "p95_ms": MS_PER_IDEA_GOAL,
            },
            "note": note,
            "cpus": os.cpu_count(),
            "runs": {name: one(run) for name, run in runs.items()},
        },
        indent=2,
        ensure_ascii=False,
    )


def print_table(sentences: list[Sentence], runs: dict[str, dict[str, Any]], repeats: int) -> None:
    names = list(runs)
    scores: dict[str, Score] = {name: runs[name]["score"] for name in names}
    german = sum(1 for s in sentences if s.lang == "de")
    print(
        f"{len(sentences)} sentences ({german} de, {len(sentences) - german} en), "
        f"{sum(1 for s in sentences if s.spans)} with personal data; "
        f"{repeats} timing passes, {os.cpu_count()} CPUs"
    )
    columns = "".join(f" {name + ' found':>14} {'recall':>6}" for name in names)
    print(f"{'':<18} {'expected':>8}{columns}  {'goal':>6}  verdict")
    last = names[-1]
    for kind in KINDS:
        expected = scores[last].kinds[kind].expected
        row = f"{kind:<18} {expected:>8}"
        for name in names:
            ks = scores[name].kinds[kind]
            row += f" {ks.caught:>14} {ks.recall:>6.2f}"
        goal = RECALL_GOALS[kind]
        print(row + f"  ≥{goal:>5.2f}  {verdict(scores[last].kinds[kind].recall >= goal)}")
    row = f"{'precision':<18} {'':>8}"
    for name in names:
        s = scores[name]
        row += f" {f'{len(s.false_positives)} FP / {s.predicted}':>14} {s.precision:>6.2f}"
    print(row + f"  ≥{PRECISION_GOAL:>5.2f}  {verdict(scores[last].precision >= PRECISION_GOAL)}")
    for label, key in (("ms/sentence p50", "p50_ms"), ("ms/sentence p95", "p95_ms")):
        row = f"{label:<18} {'':>8}" + "".join(f" {'':>14} {runs[n][key]:>6.3f}" for n in names)
        if key == "p95_ms":
            met = runs[last][key] < MS_PER_IDEA_GOAL
            row += f"  <{MS_PER_IDEA_GOAL:>5.1f}  {verdict(met)}"
        print(row)
    row = f"{'first call ms':<18} {'':>8}"
    print(row + "".join(f" {'':>14} {runs[n]['first_call_ms']:>6.1f}" for n in names))
    print(f"verdicts are for {last}")


def print_details(name: str, result: Score) -> None:
    print(f"\n{name}: false positives ({len(result.false_positives)})")
    for kind, text in result.false_positives:
        print(f"  {kind}: {text}")
    print(f"{name}: missed ({len(result.missed)})")
    for kind, text in result.missed:
        print(f"  {kind}: {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="list false positives and misses")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--repeats", type=int, default=20, help="timing passes over the set")
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="the held-out set (testing/data/redaction_holdout.yaml), written apart from the "
        "redactor and never used to tune it",
    )
    args = parser.parse_args()

    sentences = load(HOLDOUT if args.holdout else DATA)
    finder, note = redactor()
    runs = {"baseline": measure(baseline, sentences, args.repeats)}
    if finder is not None:
        try:
            runs["find"] = measure(finder, sentences, args.repeats)
        except Exception:  # a crash is a finding of the bench, not a reason to stop it
            traceback.print_exc()
            note = "mitreden.nlp.redact.find raised an exception (above): baseline only."
    if args.json:
        print(as_json(sentences, runs, note))
        return 0
    if note:
        print(note)
    print_table(sentences, runs, args.repeats)
    if args.show:
        last = list(runs)[-1]
        print_details(last, runs[last]["score"])
    # Missed goals are reported, not failed: tests/test_redaction_set.py is where they fail.
    return 0


if __name__ == "__main__":
    sys.exit(main())
