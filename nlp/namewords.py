"""What kind of word a token is, for finding names: a known first name or surname, a place,
an office, a function word, a common noun. German capitalises every noun, so these lists (in
data/redaction/, read once on first use) are what tells "Frau Sommer" from "im Sommer".
"""

import re
from dataclasses import dataclass
from functools import cache

from mitreden.nlp import lexicon
from mitreden.nlp.nouns import is_common_noun

TOKEN = re.compile(r"[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*")
POSSESSIVE = ("'s", "\u2019s")


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str


class NameList(frozenset[str]):
    """Names, where a double name counts when each of its parts does (Karl-Heinz,
    Müller-Lüdenscheidt)."""

    def __contains__(self, word: object) -> bool:
        has = frozenset.__contains__
        return has(self, word) or (
            isinstance(word, str) and "-" in word and all(has(self, p) for p in word.split("-"))
        )


@dataclass(frozen=True)
class Words:
    """The lists names.py consults, read once."""

    first: NameList  # unambiguous first names
    surnames: NameList
    nouns: frozenset[str]
    never: frozenset[str]  # places, organisations, streets, titles, relation words
    function: frozenset[str]
    public: frozenset[str]
    public_surnames: frozenset[str]
    street_endings: tuple[str, ...]
    place_endings: tuple[str, ...]  # Park, Garten, Platz: not a surname after a first name
    surname_endings: tuple[str, ...]
    institutions: frozenset[str]
    titles: frozenset[str]
    title_fillers: frozenset[str]
    determiners: frozenset[str]


@cache
def words() -> Words:
    """The lists, read and combined once."""
    context = lexicon.context
    public = lexicon.table("public_figures")
    first, surnames = lexicon.words("first_names"), lexicon.words("surnames")
    nouns = lexicon.words("common_nouns")
    titles = frozenset(t.rstrip(".") for t in context("titles"))
    fillers = frozenset(t.rstrip(".") for t in context("title_fillers"))
    # A place of the world that is also a name (Roth, a town in Bavaria) does not stop the
    # name; Berlin's own places do ("Wedding", "Buch").
    never = (
        lexicon.words("berlin_places")
        | (lexicon.words("toponyms") - first - surnames)
        | lexicon.words("organisations")
        | {s for s in lexicon.words("berlin_streets") if " " not in s}
        | titles | fillers | set(context("relations"))
    )
    return Words(
        first=NameList(first - set(context("ambiguous_first_names"))),
        surnames=NameList(surnames),
        nouns=nouns,
        never=frozenset(never),
        function=frozenset(context("function_words")),
        public=frozenset(public["full_names"]),
        public_surnames=frozenset(public["surnames"]),
        street_endings=tuple(context("street_endings_not_names")),
        place_endings=tuple(e for group in context("street_endings").values() for e in group),
        surname_endings=tuple(context("surname_endings")),
        institutions=frozenset(context("institution_words")),
        titles=titles,
        title_fillers=titles | fillers,
        determiners=frozenset(context("title_determiners")),
    )


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in TOKEN.finditer(text):
        start, end, word = match.start(), match.end(), match.group()
        if word.endswith(POSSESSIVE) and len(word) > 3:  # "Libeskind's" is Libeskind
            end, word = end - 2, word[:-2]
        tokens.append(Token(start, end, word))
    return tokens


def is_word(token: Token) -> bool:
    """Capitalised, not all capitals (BVG), and not a place, office or function word."""
    w, text = words(), token.text
    return (
        text[:1].isupper()
        and not (len(text) > 1 and text.isupper())
        and text.casefold() not in w.function
        and text not in w.never
        and not text.casefold().endswith(w.street_endings)
    )


def is_name(token: Token) -> bool:
    """A word that may be part of a name: a known first name or surname, a word with a
    surname's ending (Mustermann), or no common noun."""
    w, text = words(), token.text
    return is_word(token) and (
        text in w.first
        or text in w.surnames
        or (text.endswith(w.surname_endings) and text not in w.nouns)
        or not is_common_noun(text)
    )


def is_surname_after_first(token: Token) -> bool:
    """After a first name a plain noun is a surname too (Brenner, Grant, Rosen), but not a
    compound or a plural (Sommerfest, Bäume)."""
    w = words()
    return is_name(token) or (
        is_word(token)
        and token.text in w.nouns
        and not token.text.casefold().endswith(w.place_endings)
    )


def is_lower_name(token: Token) -> bool:
    """In a lower-case message: a known first name or surname ("ich heiße anna schmidt")."""
    w, cap = words(), token.text.capitalize()
    if token.text.islower():
        return token.text not in w.function and (cap in w.first or cap in w.surnames)
    return is_name(token)


def is_public(tokens: list[Token], by_surname: bool) -> bool:
    """A public figure's name, which stays: the full name, or (`by_surname`, after a title:
    "Frau Giffey") a distinctive surname alone."""
    w = words()
    name = " ".join(t.text[0].upper() + t.text[1:] for t in tokens)  # "herr wegner" too
    return name in w.public or (by_surname and len(tokens) == 1 and name in w.public_surnames)
