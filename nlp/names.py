"""Names of private persons: found by their context, never by a capital letter alone.

Every German noun is capitalised, and many surnames are nouns too (Bäcker, Koch, Fischer,
Sommer), so a surname list alone would black out half of every idea. A name is taken only
- after a title ("Herr Müller", "Frau Dr. Aydin", "Mr Smith", "Familie Nowak"),
- after the writer introduces themself ("ich heiße Sabine Krüger", "my name is ..."),
- after a relation or a label ("mein Nachbar Klaus Wendt", "Kontoinhaberin Gisela Brandt"),
- before an office ("Schulz vom Bezirksamt", "Aydin von der Schulaufsicht"),
- before contact details ("bei Paula: 0172 ..."),
- as a known first name followed by a known surname or a capitalised word that is no common
  noun ("Gisela Brandt", "Anna Kowalczyk"), or by a plain noun that surnames are made of
  ("Lisa Brenner"); and a first name joined to such a name ("Thomas und Claudia Richter"),
- after a closing greeting ("Viele Grüße, Anna").
The span covers the name only, not the title. Public figures (data/redaction/
public_figures.yaml), places, streets and organisations stay.
"""

import re
from collections.abc import Callable, Iterator
from functools import cache

from mitreden.nlp import lexicon
from mitreden.nlp.namewords import (
    Token,
    is_lower_name,
    is_name,
    is_public,
    is_surname_after_first,
    is_word,
    tokenize,
    words,
)
from mitreden.nlp.nouns import is_common_noun

PARTICLES = frozenset({"von", "van", "de", "der", "den", "zu", "da", "di", "del", "al", "el",
                       "bin", "ibn", "ten", "ter", "vom"})
CONJUNCTIONS = frozenset({"und", "and", "oder", "or"})
# After a name: a colon or "Tel." and a phone number or an e-mail address.
CONTACT = re.compile(
    r"\s*[:,]?\s*(?:\(|(?:Tel|Telefon|Handy|Mobil|unter|at|on|via|per|phone)\.?:?\s+)?"
    r"(?:\+?\d[\d /-]{5,}|[\w.+-]+@)"
)
MAX_TOKENS = 4


def _adjacent(text: str, left: Token, right: Token) -> bool:
    return text[left.end : right.start] in (" ", "\u00a0")


def _take_name(
    text: str, tokens: list[Token], i: int, first: Callable[[Token], bool] = is_name
) -> int:
    """How many tokens from `i` on form a name (0 if none): `first` accepts the first token,
    `is_name` the others (after a first name also a plain noun: "Karl-Heinz Ober"), with
    particles such as "von" inside."""
    first_names = words().first
    j = i
    while j < len(tokens) and j - i < MAX_TOKENS:
        if j > i and not _adjacent(text, tokens[j - 1], tokens[j]):
            break
        if j == i:
            fits = first
        elif tokens[i].text.islower():
            fits = is_lower_name  # "mein nachbar klaus wendt"
        else:
            fits = is_surname_after_first if tokens[j - 1].text in first_names else is_name
        if fits(tokens[j]):
            j += 1
        elif (
            j > i
            and tokens[j].text in PARTICLES
            and j + 1 < len(tokens)
            and _adjacent(text, tokens[j], tokens[j + 1])
            and is_name(tokens[j + 1])
        ):
            j += 2
        else:
            break
    return j - i


def _starting_at(tokens: list[Token], position: int) -> int | None:
    """The index of the first token at or after `position`."""
    for i, token in enumerate(tokens):
        if token.start >= position:
            return i
    return None


@cache
def _phrase(key: str) -> re.Pattern[str]:
    """A pattern for any phrase of the context list `key` (longest first)."""
    phrases = lexicon.context(key)
    if isinstance(phrases, dict):
        phrases = [p for group in phrases.values() for p in group]
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.I)


Found = Iterator[tuple[int, int, bool]]  # first token, token count, public by surname alone


def _after_titles(text: str, tokens: list[Token]) -> Found:
    w = words()
    for i, token in enumerate(tokens):
        if token.text not in w.titles and token.text.capitalize() not in w.titles:
            continue
        k = i + 1
        while k < len(tokens) and k - i <= MAX_TOKENS and tokens[k].text in w.title_fillers:
            k += 1
        if k == len(tokens) or text[tokens[k - 1].end : tokens[k].start].strip(" .") != "":
            continue
        # "Frau Rosen" is a name, "eine Frau Anfang 40" is not; "frau müller" only with a
        # known name.
        before = tokens[i - 1].text if i else ""
        noun_title = before.casefold() in w.determiners or (
            before.islower() and before.endswith(("e", "en", "er", "es"))
        )
        if not token.text[0].islower():
            yield k, _take_name(text, tokens, k, is_name if noun_title else is_word), True
        elif not noun_title:
            yield k, _take_name(text, tokens, k, is_lower_name), True


def _after_intros(text: str, tokens: list[Token]) -> Found:
    w = words()
    strong = {p.casefold() for p in lexicon.context("intros")["strong"]}
    for match in _phrase("intros").finditer(text):
        k = _starting_at(tokens, match.end())
        if k is None or text[match.end() : tokens[k].start].strip(" :,") != "":
            continue
        if match.group().casefold() in strong:
            yield k, _take_name(text, tokens, k, is_lower_name), False
        elif tokens[k].text in w.first:
            yield k, _take_name(text, tokens, k), False
        elif (
            is_name(tokens[k])
            and k + 1 < len(tokens)
            and _adjacent(text, tokens[k], tokens[k + 1])
            and tokens[k + 1].text in w.surnames
        ):
            yield k, 2, False  # "hier ist Svenja Roth"


def _after_labels(text: str, tokens: list[Token]) -> Found:
    """After "mein Nachbar", "meine Kollegin", "Kontoinhaberin", "account holder"."""
    possessive = _phrase("possessives")
    for key in ("relations", "name_labels"):
        for match in _phrase(key).finditer(text):
            if key == "relations" and not possessive.search(
                text[max(0, match.start() - 12) : match.start()]
            ):
                continue
            k = _starting_at(tokens, match.end())
            if k is not None and text[match.end() : tokens[k].start].strip(" ,:") == "":
                yield k, _take_name(text, tokens, k, is_lower_name), False


def _before_offices(text: str, tokens: list[Token]) -> Found:
    offices = lexicon.words("organisations")
    endings = tuple(lexicon.context("office_endings"))
    for match in _phrase("from_words").finditer(text):
        office = re.match(r"\s+([\w-]+)(?:\s([\w-]+))?", text[match.end() :])
        if not office or not (
            office.group(1) in offices
            or f"{office.group(1)} {office.group(2)}" in offices
            or office.group(1).casefold().endswith(endings)
        ):
            continue
        j = _starting_at(tokens, match.start())
        if j is None or j == 0 or text[tokens[j - 1].end : match.start()].strip():
            continue
        last = tokens[j - 1]
        if last.text not in words().first and is_common_noun(last.text):
            continue  # "seit Mai beim Landesamt", "ein Schreiben vom Jobcenter"
        i = j
        while (
            i > 0
            and j - i < MAX_TOKENS
            and is_name(tokens[i - 1])
            and (i == j or _adjacent(text, tokens[i - 1], tokens[i]))
        ):
            i -= 1
        if i < j:
            yield i, j - i, True  # "Frau Giffey vom Senat" is the senator


def _full_name(text: str, tokens: list[Token], i: int) -> int:
    """How many tokens the name that starts with the first name at `i` has."""
    if i + 1 < len(tokens) and _adjacent(text, tokens[i], tokens[i + 1]):
        return 1 + _take_name(text, tokens, i + 1, is_surname_after_first)
    return 1


def _before_contacts(text: str, tokens: list[Token]) -> Found:
    w = words()
    for i, token in enumerate(tokens):
        if token.text in w.first and is_word(token):
            n = _full_name(text, tokens, i)
            if CONTACT.match(text, tokens[i + n - 1].end):
                yield i, n, False


def _pairs(text: str, tokens: list[Token]) -> Found:
    w = words()
    ambiguous = lexicon.context("ambiguous_first_names")
    for i in range(len(tokens) - 1):
        first, second = tokens[i], tokens[i + 1]
        if not is_word(first) or not _adjacent(text, first, second):
            continue
        if first.text in w.first:
            n = 1 + _take_name(text, tokens, i + 1, is_surname_after_first)
        elif first.text in ambiguous and second.text in w.surnames:
            n = 1 + _take_name(text, tokens, i + 1)  # "Juli Sommer" only as a full name
        else:
            continue
        if n == 1 or all(t.text in w.first and t.text not in w.surnames
                         for t in tokens[i + 1 : i + n]):
            continue  # no surname, or first names only ("Anna Maria")
        after = tokens[i + n] if i + n < len(tokens) else None
        if tokens[i + n - 1].text in w.institutions or (
            after and after.text in w.institutions and after.start - tokens[i + n - 1].end <= 1
        ):
            continue  # "Victoria Park", "Käthe Kollwitz Platz", "Anna Seghers Schule"
        yield i, n, False
        # "Thomas und Claudia Richter": Thomas is a name too.
        if i >= 2 and tokens[i - 1].text in CONJUNCTIONS and tokens[i - 2].text in w.first:
            yield i - 2, 1, False


def _after_greetings(text: str, tokens: list[Token]) -> Found:
    for match in _phrase("greetings").finditer(text):
        k = _starting_at(tokens, match.end())
        if k is None or text[match.end() : tokens[k].start].strip(" ,!.\n\r\t-") != "":
            continue
        if tokens[k].text in words().first:
            yield k, _take_name(text, tokens, k, is_word), False


def _signature(text: str, tokens: list[Token]) -> Found:
    """A known first name (and surname) that ends the message after a comma or a line break:
    "Grüße aus Neukölln, Fatma"."""
    if not tokens or text[tokens[-1].end :].strip(" .!\n\r\t"):
        return
    for i in range(max(0, len(tokens) - 2), len(tokens)):
        token = tokens[i]
        if (
            token.text in words().first
            and is_word(token)
            and i + _full_name(text, tokens, i) == len(tokens)
            and text[: token.start].rstrip(" ").endswith((",", "\n", "-", "\u2013"))
        ):
            yield i, len(tokens) - i, False
            return


RULES = (_after_titles, _after_intros, _after_labels, _before_offices, _before_contacts,
         _pairs, _after_greetings, _signature)


def find_names(text: str) -> list[tuple[int, int]]:
    """Spans of private persons' names in `text`."""
    tokens = tokenize(text)
    spans = set()
    for rule in RULES:
        for i, n, by_surname in rule(text, tokens):
            if n and not is_public(tokens[i : i + n], by_surname):
                spans.add((tokens[i].start, tokens[i + n - 1].end))
    return sorted(spans)
