"""Abuse signals in a resident's text, offline and without a model.

`gibberish` spots key mashing and nonsense ("asdf", "hjkhjkhjk", "....") so the chat can ask
again instead of storing it as an idea. A short, misspelt or foreign idea ("wlan in der
bibliotek", "Kita Plätze", "M29") must never be turned away, so a word is junk only by a few
narrow tests, never when spaCy's German or English lemma tables know it, and text in other
scripts is judged on repetition alone; the text is gibberish when junk makes up most of it.

`insult_kinds` matches the curated list in `data/abuse/insults.yaml` (insults, slurs, obscene
words, hate slogans) on whole words, after undoing the usual ways round a filter: case, umlaut
spellings, leetspeak, look-alike letters, repeated and spaced-out letters. A matching idea goes
to moderator review instead of being shown to other residents. A wrong match only delays an
idea, so the list leans to flagging, but never on part of an innocent word ("Arschbombe",
"Analyse", "Schwimmbad"); the file's header says what is left out and why.

Both load their data on first use: importing this module reads no file.
"""

import functools
import gzip
import itertools
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from mitreden.nlp.redact import visible
from mitreden.yamlfile import load_yaml

TOKEN = re.compile(r"[^\W_]+")
GERMAN_OR_ENGLISH = re.compile(r"[a-zäöüß]+")
VOWELS = frozenset("aeiouyäöü")
# A run of neighbouring keys typed in one direction ("asdf", "poiu"); shorter runs are common
# in words ("wer", "tre", "rew" in "Rewe").
MIN_KEY_RUN = 4
# Share of a word's letters that key runs of three or more must cover ("asdfjklö", not "Werk").
KEY_RUN_SHARE = 0.75
MIN_WITHOUT_VOWELS = 5  # "gjfkd"; "BVG", "bzgl" and "ggfs" are shorter or written in capitals
MIN_HOME_ROW_MASH = 6  # "fjdksla": fingers resting on the home row, with hardly a vowel
HOME_ROW_VOWEL_SHARE = 0.2
# Gibberish when junk tokens hold at least twice as many characters as all other words.
JUNK_TO_WORDS = 2
# "Arsch loch": two neighbours are read as one word when each has at least this many letters.
MIN_SPLIT_PART = 3
SPACED_LETTERS = re.compile(r"(?<![^\W_])[^\W_](?:[\s.\-_*·•/|+]{1,2}[^\W_](?![^\W_])){2,}")
SEPARATORS = re.compile(r"[\s.\-_*·•/|+]")
SYMBOLS = re.compile(r"(?<=[^\W_])[@$]|[@$](?=[^\W_])")
UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})


def _data(name: str) -> Any:
    return load_yaml(Path(str(files("mitreden.data") / "abuse" / name)))


@functools.cache
def vocabulary() -> frozenset[str]:
    """German and English word forms, case-folded: the keys and lemmas of spaCy's lookup
    lemmatizer tables from `spacy-lookups-data` (MIT licence; the English ones from WordNet),
    which the project installs anyway. About 460,000 words, loaded once (about a second)."""
    from spacy_lookups_data import get_file

    def table(name: str) -> Any:
        return json.loads(gzip.decompress(get_file(f"{name}.json.gz").read_bytes()))

    words: set[str] = set()
    for name in ("de_lemma_lookup", "en_lemma_lookup"):
        for form, lemma in table(name).items():
            words.update((form, lemma))
    for group in table("en_lemma_index").values():
        words.update(group)
    return frozenset(word.casefold() for word in words if word.isalpha())


@dataclass(frozen=True)
class _Keyboard:
    rows: tuple[str, ...]
    home_row: frozenset[str]


@functools.cache
def _keyboard() -> _Keyboard:
    document = _data("keyboards.yaml")
    return _Keyboard(tuple(document["rows"]), frozenset(document["home_row"]))


def _known(word: str) -> bool:
    """`word` is in the vocabulary as written or with stretched letters shortened ("sooo")."""
    forms = {word, re.sub(r"(.)\1{2,}", r"\1", word), re.sub(r"(.)\1{2,}", r"\1\1", word)}
    return not forms.isdisjoint(vocabulary())


def _period(word: str) -> int:
    """The shortest p with word[i] == word[i + p] throughout and at least two full repeats
    ("asdasdas": 3), or 0: what a compressor would squeeze. Linear time (the KMP border), as a
    message can be one long token."""
    border = [0] * len(word)
    for i in range(1, len(word)):
        k = border[i - 1]
        while k and word[i] != word[k]:
            k = border[k - 1]
        border[i] = k + (word[i] == word[k])
    period = len(word) - (border[-1] if word else 0)
    return period if 2 * period <= len(word) else 0


def _runs(word: str, row: str) -> Iterator[range]:
    """The stretches of `word` typed along `row` one neighbouring key at a time, in one
    direction."""
    start, step = 0, 0
    for i in range(1, len(word) + 1):
        move = 0
        if i < len(word) and word[i] in row and word[i - 1] in row:
            move = row.index(word[i]) - row.index(word[i - 1])
        if move in (-1, 1) and step in (0, move):
            step = move
            continue
        yield range(start, i)
        start, step = (i - 1, move) if move in (-1, 1) else (i, 0)


def _key_mash(word: str) -> bool:
    runs = [run for row in _keyboard().rows for run in _runs(word, row) if len(run) >= 3]
    if not runs or max(map(len, runs)) < MIN_KEY_RUN:
        return False
    return len(set().union(*runs)) >= KEY_RUN_SHARE * len(word)


def _junk(token: str) -> bool:
    """`token` is mashing or nonsense by one of the narrow tests. Letters mixed with digits
    ("U8", "M29", "B96") are names of lines and roads, never junk."""
    word = token.casefold()
    if not word.isalpha():
        return False
    period = _period(word)
    if period == 1 and len(word) >= 3:  # "aaaaaaaa", "ööööö", "xxxx"
        return True
    if _known(word):
        return False
    if period > 1 or _key_mash(word):  # "hjkhjkhjk", "lkjsdflkjsdf"; "asdf", "qwertz"
        return True
    if not GERMAN_OR_ENGLISH.fullmatch(word) or token.isupper():
        return False  # other alphabets, and abbreviations ("HTTPS", "LGBTQ")
    vowels = sum(ch in VOWELS for ch in word)
    if vowels == 0:
        return len(word) >= MIN_WITHOUT_VOWELS
    return (
        len(word) >= MIN_HOME_ROW_MASH
        and set(word) <= _keyboard().home_row
        and vowels <= HOME_ROW_VOWEL_SHARE * len(word)
    )


def gibberish(text: str) -> bool:
    """`text` is mashing or nonsense rather than something said: it has no letter at all
    ("....", "👍👍", "123123123"), or junk words outweigh its other words two to one ("asdf
    jkl qwer uiop", "xxxx yyyy"). Off-topic text is not gibberish."""
    tokens = TOKEN.findall(unicodedata.normalize("NFKC", visible(text)))
    words = [token for token in tokens if not token.isdigit()]
    # Junk needs two thirds of the letters; stop at the first words that make that impossible.
    allowed = sum(map(len, words)) / (JUNK_TO_WORDS + 1)
    for word in words:
        if not _junk(word):
            allowed -= len(word)
            if allowed < 0:
                return False
    return True


def _fold_word(word: str, leet: dict[int, str], lookalikes: dict[int, str]) -> str:
    if not word.isdigit():
        word = word.translate(leet)
    if re.search(r"[a-z]", word):
        word = word.translate(lookalikes)
    return word.translate(UMLAUTS)


def _pattern(entry: str) -> str:
    """An entry as a pattern over folded words: any letter may be repeated ("Idiooot") but
    none left out, and an umlaut may be written as ä, ae or a ("Arschlöcher", "Arschloecher",
    "Arschlocher"). Other letters are left alone: folding "ue" in the text would make Spanish
    "cuenta" read as "cunta"."""
    parts = []
    for word in TOKEN.findall(entry.strip("*").casefold()):
        part = ""
        for match in re.finditer(r"(.)\1*", word):
            letter, times = match.group(1), len(match.group(0))
            if letter in "äöü":
                part += f"{letter.translate(UMLAUTS)[0]}+e*"
            else:
                part += re.escape(letter) + ("+" if times == 1 else f"{{{times},}}")
        parts.append(part)
    return " ".join(parts)


def _compile(entries: list[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The two patterns of one kind: every entry, searched in the folded words joined by
    spaces, and the single words without "*", searched in neighbours joined ("Arsch loch").
    Entries that start a word share one check for the word start, so the search tries them at
    word starts only: texts can be long."""
    starting: list[str] = []
    inside: list[str] = []
    whole: list[str] = []
    for entry in entries:
        body = _pattern(entry) + ("" if entry.endswith("*") else "(?![^ ])")
        (inside if entry.startswith("*") else starting).append(body)
        if "*" not in entry and " " not in entry:
            whole.append(body)
    anywhere = "|".join([f"(?<![^ ])(?:{'|'.join(starting)})", *inside])
    return re.compile(anywhere), re.compile(f"(?<![^ ])(?:{'|'.join(whole) or '(?!)'})")


STRETCHED = re.compile(r"(.)\1{3,}")


@dataclass(frozen=True)
class _Lexicon:
    leet: dict[int, str]
    lookalikes: dict[int, str]
    patterns: dict[str, tuple[re.Pattern[str], re.Pattern[str]]]
    """Per kind, from `_compile`."""

    def words(self, text: str) -> list[str]:
        """`text` as the folded words the patterns are matched on."""
        text = unicodedata.normalize("NFKC", visible(text)).casefold()
        text = SYMBOLS.sub(lambda m: m.group().translate(self.leet), text)
        text = SPACED_LETTERS.sub(lambda m: SEPARATORS.sub("", m.group()), text)
        # A letter stretched beyond three stays three: the patterns take any repeat, and a
        # long run ("aaaa…" in a 60,000-character message) made each search quadratic.
        text = STRETCHED.sub(r"\1\1\1", text)
        return [_fold_word(word, self.leet, self.lookalikes) for word in TOKEN.findall(text)]


@functools.cache
def _lexicon() -> _Lexicon:
    document = _data("insults.yaml")
    return _Lexicon(
        leet=str.maketrans(document["normalise"]["leet"]),
        lookalikes=str.maketrans(document["normalise"]["lookalikes"]),
        patterns={
            kind: _compile([entry for entries in languages.values() for entry in entries])
            for kind, languages in document["kinds"].items()
        },
    )


def insult_kinds(text: str) -> frozenset[str]:
    """The kinds of abusive term in `text`: "insult", "slur", "obscene" or "hate", as sorted
    in `data/abuse/insults.yaml`; empty when it has none. Quoting a term counts as using it:
    the list cannot tell the two apart, and a moderator can."""
    lexicon = _lexicon()
    words = lexicon.words(text)
    joined = " ".join(words)
    pairs = " ".join(
        a + b
        for a, b in itertools.pairwise(words)
        if len(a) >= MIN_SPLIT_PART and len(b) >= MIN_SPLIT_PART
    )
    return frozenset(
        kind
        for kind, (anywhere, whole) in lexicon.patterns.items()
        if anywhere.search(joined) or whole.search(pairs)
    )


def insulting(text: str) -> bool:
    """`text` has an insult, slur, obscene word or hate slogan: send it to review."""
    return bool(insult_kinds(text))
