"""The redaction test set (testing/data/redaction.yaml) as spans, and how a redactor is scored
on it.

One implementation for tests/test_redaction_set.py and bench/redaction_bench.py, so the test's
goals and the bench's figures cannot drift apart.

The set names each finding by its exact substring rather than by offsets: a person writing or
reviewing the sentences can see at a glance what is meant, and the loader turns the substrings
into offsets and rejects any that do not occur.

Scoring rule (the same for every kind):
- an expected finding is *caught* when one single predicted span, of any kind, overlaps at least
  half of its characters AND covers all its letters and digits except at most one at each edge.
  The kind does not matter because what counts for privacy is that the text is hidden; one span
  is required so that a name split into "Peter" and "Schmidt" counts as missed (the spec asks for
  one span), and a letter or digit left visible at an edge does not reveal the finding.
- a predicted span that overlaps no expected span at all is a *false positive*; precision is the
  share of predicted spans that overlap some expected span.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from mitreden.yamlfile import load_yaml

# The kinds agreed for nlp/redact.py; kept here too so the set can be checked before (and
# independently of) the redactor that is measured on it.
KINDS = ("email", "phone", "iban", "url", "address", "plate", "birthdate", "name")
LANGS = ("de", "en")
DATA = Path(__file__).resolve().parent / "data" / "redaction.yaml"
# Written by someone who never saw the redactor, and never used to tune it: its figures are
# the honest ones (bench/redaction_bench.py --holdout).
HOLDOUT = DATA.with_name("redaction_holdout.yaml")


class RedactionSetError(ValueError):
    """The data file is not well-formed; the message names the entry."""


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Sentence:
    text: str
    lang: str
    spans: tuple[Span, ...]


def _nth(text: str, needle: str, occurrence: int) -> int:
    """Start of the `occurrence`-th (1-based) occurrence of `needle` in `text`, or -1."""
    start = -1
    for _ in range(occurrence):
        start = text.find(needle, start + 1)
        if start < 0:
            return -1
    return start


def _sentence(number: int, entry: object) -> Sentence:
    where = f"entry {number}"
    if not isinstance(entry, dict) or set(entry) != {"text", "lang", "findings"}:
        raise RedactionSetError(f"{where}: needs exactly text, lang and findings")
    text, lang, findings = entry["text"], entry["lang"], entry["findings"]
    if not isinstance(text, str) or not text.strip():
        raise RedactionSetError(f"{where}: text must be a non-empty string")
    if lang not in LANGS:
        raise RedactionSetError(f"{where}: lang must be one of {LANGS}")
    if not isinstance(findings, list):
        raise RedactionSetError(f"{where}: findings must be a list")
    spans = []
    for finding in findings:
        if not isinstance(finding, dict) or not (
            {"kind", "text"} <= finding.keys() <= {"kind", "text", "occurrence"}
        ):
            raise RedactionSetError(f"{where}: a finding needs kind and text (and occurrence)")
        kind, needle = finding["kind"], finding["text"]
        occurrence = finding.get("occurrence", 1)
        if kind not in KINDS:
            raise RedactionSetError(f"{where}: unknown kind {kind!r}")
        if not isinstance(needle, str) or needle != needle.strip() or not needle:
            raise RedactionSetError(f"{where}: finding text must be trimmed and not empty")
        if not isinstance(occurrence, int) or isinstance(occurrence, bool) or occurrence < 1:
            raise RedactionSetError(f"{where}: occurrence must be a positive whole number")
        start = _nth(text, needle, occurrence)
        if start < 0:
            raise RedactionSetError(f"{where}: {kind} {needle!r} (#{occurrence}) does not occur")
        spans.append(Span(start, start + len(needle), kind))
    spans.sort(key=lambda span: span.start)
    for before, after in pairwise(spans):
        if after.start < before.end:
            raise RedactionSetError(f"{where}: findings overlap")
    return Sentence(text, lang, tuple(spans))


def load(path: Path = DATA) -> list[Sentence]:
    """The sentences of the set with their expected spans; raises RedactionSetError (or the
    YAML/OS error) if the file is not well-formed."""
    entries = load_yaml(path)
    if not isinstance(entries, list):
        raise RedactionSetError("the file must be a list of entries")
    return [_sentence(number, entry) for number, entry in enumerate(entries, 1)]


def _overlap(a: Span, b: Span) -> int:
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def caught(expected: Span, predicted: Iterable[Span], text: str) -> bool:
    """Whether one predicted span hides `expected` (the rule in the module docstring)."""
    inner = [i for i in range(expected.start, expected.end) if text[i].isalnum()]
    # The letters and digits that may stay visible: the outermost one on each side.
    must = inner[1:-1]
    length = expected.end - expected.start
    for span in predicted:
        if 2 * _overlap(expected, span) < length:
            continue
        if all(span.start <= i < span.end for i in must):
            return True
    return False


@dataclass
class KindScore:
    expected: int = 0
    caught: int = 0

    @property
    def recall(self) -> float:
        return self.caught / self.expected if self.expected else 1.0


@dataclass
class Score:
    kinds: dict[str, KindScore]
    predicted: int
    false_positives: list[tuple[str, str]]  # (kind, text) of spans overlapping nothing expected
    missed: list[tuple[str, str]]  # (kind, text) of expected findings not caught

    @property
    def precision(self) -> float:
        if not self.predicted:
            return 1.0
        return (self.predicted - len(self.false_positives)) / self.predicted


Finder = Callable[[str], Sequence[Span]]


def score(sentences: Iterable[Sentence], finder: Finder) -> Score:
    """Recall per kind and overall precision of `finder` (text -> predicted spans) on the set."""
    kinds = {kind: KindScore() for kind in KINDS}
    predicted_total = 0
    false_positives: list[tuple[str, str]] = []
    missed: list[tuple[str, str]] = []
    for sentence in sentences:
        predicted = list(finder(sentence.text))
        predicted_total += len(predicted)
        for expected in sentence.spans:
            kinds[expected.kind].expected += 1
            if caught(expected, predicted, sentence.text):
                kinds[expected.kind].caught += 1
            else:
                missed.append((expected.kind, sentence.text[expected.start : expected.end]))
        for span in predicted:
            if not any(_overlap(span, expected) for expected in sentence.spans):
                false_positives.append((span.kind, sentence.text[span.start : span.end]))
    return Score(kinds, predicted_total, false_positives, missed)


def redact_finder(find: Callable[[str], Iterable[object]]) -> Finder:
    """Adapts `mitreden.nlp.redact.find` (Findings with kind, start, end) to a Finder."""

    def finder(text: str) -> list[Span]:
        return [Span(f.start, f.end, f.kind) for f in find(text)]  # type: ignore[attr-defined]

    return finder


# What the redactor has to reach on this set; the bench prints the goals beside its figures.
RECALL_GOALS = {kind: 0.95 for kind in KINDS} | {"name": 0.85}
PRECISION_GOAL = 0.95
MS_PER_IDEA_GOAL = 2.0
