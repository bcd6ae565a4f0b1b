"""Words that set a group of ideas apart from the other groups, for its label.

Texts are split by spaCy's blank pipelines (tokenizer, lookup lemmatizer, stop words,
sentencizer): they work offline for every language spaCy knows, with no trained model.
Filler words (`data/filler_words.yaml`: "bitte", "siehe Foto") are skipped like stop words.
Weights are class-based TF-IDF as in BERTopic: a lemma's share of a group's words, times how
rare it is across all groups. A word becomes a label only when at least two ideas use it, so a
name or street that one resident wrote never labels a group.
"""

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from mitreden.data import filler_words_path
from mitreden.yamlfile import load_yaml

if TYPE_CHECKING:
    from spacy.language import Language

MIN_IDEAS_PER_WORD = 2


@functools.cache
def filler_words() -> frozenset[str]:
    return frozenset(load_yaml(filler_words_path())["words"])


@functools.cache
def pipeline(language: str) -> "Language":
    """A blank pipeline for `language` ("de-simple" reads as "de"); unknown codes get "xx"."""
    import spacy

    code = language.split("-")[0]
    try:
        nlp = spacy.blank(code)
    except (ImportError, ValueError):
        nlp = spacy.blank("xx")
    try:
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()
    except (ValueError, OSError):  # no lookup table for this language: words stay as written
        nlp.remove_pipe("lemmatizer")
    nlp.add_pipe("sentencizer")
    return nlp


class Analysed(NamedTuple):
    """One idea, read once: its content lemmas (lower-cased keys) and its sentences.

    Tuples and a dict of strings: the dashboard keeps one per idea, and Python's garbage
    collector stops looking at tuples and dicts of strings, where lists would each be one
    more object for every full collection to visit (two per idea)."""

    lemmas: tuple[str, ...]
    shown: dict[str, str]
    """How each lemma key is best written (a German noun keeps its capital)."""
    sentences: tuple[str, ...]


def analyse(texts: list[str], languages: list[str]) -> list[Analysed]:
    out: list[Analysed] = [Analysed((), {}, ()) for _ in texts]
    by_language: dict[str, list[int]] = {}
    for i, language in enumerate(languages):
        by_language.setdefault(language or "de", []).append(i)
    for language, rows in by_language.items():
        nlp = pipeline(language)
        for row, doc in zip(rows, nlp.pipe(texts[i] for i in rows), strict=True):
            lemmas: list[str] = []
            shown: dict[str, str] = {}
            for token in doc:
                lemma = token.lemma_ or token.text
                key = lemma.lower()
                if (
                    not token.is_alpha
                    or len(key) < 3
                    or token.is_stop
                    or key in nlp.Defaults.stop_words
                    or key in filler_words()
                ):
                    continue
                lemmas.append(key)
                shown.setdefault(key, lemma)
            sentences = tuple(s.text.strip() for s in doc.sents if s.text.strip())
            out[row] = Analysed(tuple(lemmas), shown, sentences)
    return out


@dataclass
class Words:
    """A group's lemmas: how often each is used, and by how many of its ideas."""

    count: Counter[str] = field(default_factory=Counter)
    ideas_using: Counter[str] = field(default_factory=Counter)


def words(members: list[Analysed]) -> Words:
    result = Words()
    for idea in members:
        result.count.update(idea.lemmas)
        result.ideas_using.update(set(idea.lemmas))
    return result


def weights(groups: list[Words], wanted: list[int]) -> list[dict[str, float]]:
    """c-TF-IDF weight of each eligible lemma in the groups at the indexes `wanted`, weighed
    against all `groups`."""
    ideas_using: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for group in groups:
        ideas_using.update(group.ideas_using)
        totals.update(group.count)
    average = sum(totals.values()) / max(len(groups), 1)
    result = []
    for index in wanted:
        count = groups[index].count
        size = sum(count.values()) or 1
        result.append(
            {
                word: n / size * math.log(1 + average / totals[word])
                for word, n in count.items()
                if ideas_using[word] >= MIN_IDEAS_PER_WORD
            }
        )
    return result


def label(members: list[Analysed], weight: dict[str, float], words: int = 3) -> list[str]:
    """The top words of a group, skipping one that repeats another (Radweg, Radwege)."""
    shown: dict[str, str] = {}
    for idea in members:
        for key, text in idea.shown.items():
            shown.setdefault(key, text)
    chosen: list[str] = []
    for key in sorted(weight, key=lambda k: (-weight[k], k)):
        if any(key in other or other in key for other in chosen):
            continue
        chosen.append(key)
        if len(chosen) == words:
            break
    return [shown[key] for key in chosen]


def sentence_score(sentence: str, idea: Analysed, weight: dict[str, float]) -> float:
    """How much of the group's vocabulary a sentence carries, per word, so length is not merit."""
    words = [w for w in idea.lemmas if w.lower() in sentence.lower()]
    return sum(weight.get(w, 0.0) for w in words) / math.sqrt(len(sentence.split()) or 1)
