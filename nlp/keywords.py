"""Words that set a group of ideas apart from the other groups, for its label.

Texts are split by spaCy's blank pipelines (tokenizer, lookup lemmatizer, stop words,
sentencizer): they work offline for every language spaCy knows, with no trained model.
Filler words (`data/filler_words.yaml`: "bitte", "siehe Foto") are skipped like stop words.
Weights are class-based TF-IDF as in BERTopic: a lemma's share of a group's words, times how
rare it is across all groups. A word becomes a label only when at least two ideas use it, so a
name or street that one resident wrote never labels a group.
"""

import functools
import itertools
import math
import sys
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

from mitreden.data import filler_words_path
from mitreden.yamlfile import load_yaml

if TYPE_CHECKING:
    from types import ModuleType

    from spacy.language import Language

MIN_IDEAS_PER_WORD = 2


@functools.cache
def filler_words() -> frozenset[str]:
    return frozenset(load_yaml(filler_words_path())["words"])


def _spacy_without_torch() -> "ModuleType":
    """spaCy, imported so that thinc does not import torch (when this process has not already):
    blank pipelines never use it, and it cost 180 MB and a second at the first summary.
    Torch itself stays importable for whatever needs it later; an embedder that needs it
    imports it when it is made (`App` makes it before any thread reads ideas), so no other
    thread meets the moment `import torch` is refused."""
    if "torch" in sys.modules or "spacy" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        import spacy
    finally:
        del sys.modules["torch"]
    return spacy


@functools.cache
def pipeline(language: str) -> "Language":
    """A blank pipeline for `language` ("de-simple" reads as "de"); unknown codes get "xx"."""
    spacy = _spacy_without_torch()

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
    """One idea, read once: its content lemmas as written, space-separated (a German noun
    keeps its capital; `keys` gives the lower-cased ones words are counted by), and its
    sentences. Plain strings, so that it is stored as it is (`Store.keep_readings`) and read
    back without parsing."""

    words: str
    sentences: tuple[str, ...]


def keys(words: str) -> list[str]:
    return words.lower().split()


def analyse(texts: list[str], languages: list[str]) -> list[Analysed]:
    out: list[Analysed] = [Analysed("", ()) for _ in texts]
    by_language: dict[str, list[int]] = {}
    for i, language in enumerate(languages):
        by_language.setdefault(language or "de", []).append(i)
    for language, rows in by_language.items():
        nlp = pipeline(language)
        for row, doc in zip(rows, nlp.pipe(texts[i] for i in rows), strict=True):
            lemmas: list[str] = []
            for token in doc:
                # A lookup table's lemma with a space in it would read back as two words.
                lemma = "".join((token.lemma_ or token.text).split()) or token.text
                key = lemma.lower()
                if (
                    not token.is_alpha
                    or len(key) < 3
                    or token.is_stop
                    or key in nlp.Defaults.stop_words
                    or key in filler_words()
                ):
                    continue
                lemmas.append(lemma)
            sentences = tuple(s.text.strip() for s in doc.sents if s.text.strip())
            out[row] = Analysed(" ".join(lemmas), sentences)
    return out


class Vocabulary(NamedTuple):
    """The words of every idea read: what a group's words are weighed against."""

    uses: dict[str, int]
    ideas_using: dict[str, int]
    average: float
    """words per group"""


def vocabulary(counted: list[tuple[str, int, int]], groups: int) -> Vocabulary:
    """The vocabulary of (word, uses, ideas using it) in `groups` groups (`Store.vocabulary`)."""
    uses = {word: n for word, n, _ in counted}
    return Vocabulary(
        uses, {word: ideas for word, _, ideas in counted}, sum(uses.values()) / max(groups, 1)
    )


def weights(
    members: list[str], vocabulary: Vocabulary, least_ideas: int = MIN_IDEAS_PER_WORD
) -> dict[str, float]:
    """c-TF-IDF weight of each lemma in a group's `members` (their readings' words) that at
    least `least_ideas` ideas use, weighed against all groups."""
    count = Counter(itertools.chain.from_iterable(map(keys, members)))
    size = sum(count.values()) or 1
    return {
        word: n / size * math.log(1 + vocabulary.average / max(vocabulary.uses.get(word, 0), n))
        for word, n in count.items()
        if vocabulary.ideas_using.get(word, 1) >= least_ideas
    }


def label(members: list[str], weight: dict[str, float], words: int = 3) -> list[str]:
    """The top words of a group, skipping one that repeats another (Radweg, Radwege), as the
    first of its `members` (their readings' words) wrote them."""
    chosen: list[str] = []
    for key in sorted(weight, key=lambda k: (-weight[k], k)):
        if any(key in other or other in key for other in chosen):
            continue
        chosen.append(key)
        if len(chosen) == words:
            break
    shown: dict[str, str] = {}
    for text in itertools.chain.from_iterable(map(str.split, members)):
        if text.lower() in chosen:
            shown.setdefault(text.lower(), text)
            if len(shown) == len(chosen):
                break
    return [shown[key] for key in chosen]


def sentence_score(sentence: str, words: str, weight: dict[str, float]) -> float:
    """How much of the group's vocabulary a sentence carries, per word, so length is not merit;
    `words` are the reading's of the idea it is from."""
    lower = sentence.lower()
    found = [w for w in keys(words) if w in lower]
    return sum(weight.get(w, 0.0) for w in found) / math.sqrt(len(sentence.split()) or 1)
