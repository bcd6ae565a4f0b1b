"""An idea's personal data as stored with it, and the idea as anyone but its author reads it.

`nlp.redact` finds the spans; this module keeps them beside the idea (`ideas.findings`, JSON
of [kind, start, end] over the idea's visible text) so that every reader sees the same spans
the author saw and agreed to, with the words the author kept ("keep this word") left out.
A NULL column (an idea from before findings were stored) is looked at afresh.

Placeholders must never become content (a group's label "entfernen, Telefonnummer"). So
summaries and labels read `marked` text, where each span is one private-use character: no
word, no lemma, nothing a sentence scorer values; `unmarked` turns them into the reader's
placeholders only when a sentence is finally shown.
"""

import json
from collections.abc import Iterable, Mapping

from mitreden.nlp.redact import KINDS, Finding, apply, find, visible

# One Unicode private-use character per kind; a resident's own such character becomes U+FFFD
# first (same length, so the spans still fit).
MARKS = {kind: chr(0xE000 + n) for n, kind in enumerate(KINDS)}
KIND_OF_MARK = {mark: kind for kind, mark in MARKS.items()}


def dump(findings: Iterable[Finding]) -> str:
    return json.dumps([[f.kind, f.start, f.end] for f in findings])


def load(stored: str | None, text: str) -> list[Finding]:
    """The findings kept with an idea; looked for now if none were kept."""
    if stored is None:
        return find(visible(text))
    if stored == "[]":  # most ideas: not worth a parse when forwarding 100,000
        return []
    return [Finding(kind, start, end) for kind, start, end in json.loads(stored)]


def for_others(idea: Mapping[str, object], labels: Mapping[str, str]) -> str:
    """An idea's text as anyone but its author may read it, placeholders in the reader's
    language (`labels`, from `Catalogue.redaction_labels`)."""
    text = str(idea["text"])
    return apply(visible(text), load(idea.get("findings"), text), labels)  # type: ignore[arg-type]


def marked(idea: Mapping[str, object]) -> str:
    """The text for analysis: each piece of personal data one mark character."""
    text = str(idea["text"])
    shown = "".join("\ufffd" if ch in KIND_OF_MARK else ch for ch in visible(text))
    return apply(shown, load(idea.get("findings"), text), MARKS)  # type: ignore[arg-type]


def unmarked(text: str, labels: Mapping[str, str]) -> str:
    """A marked text as shown: marks become the reader's placeholders."""
    return "".join(labels[KIND_OF_MARK[ch]] if ch in KIND_OF_MARK else ch for ch in text)


def mostly_marks(sentence: str) -> bool:
    """Whether personal data is most of what a sentence says ("Kontakt: … oder …, IBAN …"):
    such a sentence stands for no idea, however its words score."""
    marks = sum(ch in KIND_OF_MARK for ch in sentence)
    words = sum(1 for word in sentence.split() if any(ch.isalpha() for ch in word))
    return marks > 0 and marks >= words / 2
