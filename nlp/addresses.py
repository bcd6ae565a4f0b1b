"""Street addresses: a street name with a house number, and a postcode and city right after.

A street without a number ("in der Hauptstraße") names a place many people share and stays;
with a number it points at one house, often the writer's own. A street name is recognised by
its ending (Weserstraße, Karl-Marx-Allee, Boxhagener Straße, Am Kupfergraben) or by Berlin's
street directory (Unter den Linden, Alt-Moabit, Straße des 17. Juni). The number must look
like a house number: "am Alexanderplatz 15 Uhr" is a time, "am Bahnhof 2 Aufzüge" a count.
"""

import re
from collections import defaultdict
from functools import cache

from mitreden.nlp import lexicon
from mitreden.nlp.nouns import is_common_noun

# A house number: "12", "3a", "3 a", "12-14", "12/14"; never part of a longer number, a
# decimal, a time or a date, and never starting with 0 (that is a phone number's area code).
NUMBER = re.compile(
    r"(?<![\w,:/+-])(?<!\d\.)(?!0)\d{1,3}(?:\s?[a-zA-Z](?!\w))?"
    r"(?:\s?[-\u2013/]\s?\d{1,3}(?:\s?[a-zA-Z](?!\w))?)?(?![\w€%]|[.,:]\d)"
)
POSTCODE = re.compile(r",?\s*\d{5}(?!\d)(?:\s+([A-ZÄÖÜ][\w]*(?:-[A-ZÄÖÜ][\w]*)*))?")
NEXT_WORD = re.compile(r"\s*([\w%€'\u2019.]+)")
PREVIOUS_WORD = re.compile(r"([A-ZÄÖÜ][\w'\u2019.-]*)\s+$")
LAST_WORD = re.compile(r"[A-ZÄÖÜa-zäöüß][\w'\u2019.-]*$")
WINDOW = 80  # characters before a number in which its street name must lie
PARTICLES = ("Am", "An der", "An den", "Auf dem", "Im", "In den", "Zum", "Zur", "Unter den",
             "Alt", "Hinter der", "Vor dem")


@cache
def _berlin_by_last_word() -> dict[str, list[str]]:
    """Berlin's street names by their last word, longest first. Names that are also plain
    nouns (Freiheit, Heimat, Forum) count only with a street ending."""
    strong = tuple(lexicon.context("street_endings")["strong"])
    nouns = lexicon.words("common_nouns")
    by_last: dict[str, list[str]] = defaultdict(list)
    for name in lexicon.words("berlin_streets"):
        if name in nouns and not name.lower().endswith(strong):
            continue
        by_last[name.split()[-1]].append(name)
        short = re.sub(r"(?<=[Ss]tr)a(?:ß|ss)e\b", ".", name)  # "Str. der Pariser Kommune"
        if short != name:
            by_last[short.split()[-1]].append(short)
    for names in by_last.values():
        names.sort(key=len, reverse=True)
    return dict(by_last)


@cache
def _number_first() -> re.Pattern[str]:
    """The English order: "12 Baker Street", and "45 Reuterstraße" in an English text."""
    kinds = "|".join(re.escape(k) for k in lexicon.context("english_streets"))
    endings = "|".join(re.escape(e) for e in lexicon.context("street_endings")["strong"])
    return re.compile(
        rf"(?<![\w.,])(?!0)\d{{1,4}}[a-zA-Z]?\s+(?:(?:[A-Z][a-z]+\s+){{1,3}}(?:{kinds})(?!\w)"
        rf"|[A-ZÄÖÜ][\w-]*(?:{endings})(?!\w))"
    )


def _is_qualifier(word: str) -> bool:
    """A capitalised word that can stand before "Straße", "Allee"...: Boxhagener, Alte."""
    return word[:1].isupper() and word.casefold() not in _function_words()


@cache
def _function_words() -> frozenset[str]:
    return frozenset(lexicon.context("function_words"))


def _street_start(text: str, end: int) -> tuple[int, bool] | None:
    """Where the street name ending at `end` starts, and whether its ending is a weak one
    (Bahnhof, Markt) that is also an ordinary word; None if no street ends there."""
    offset = max(0, end - WINDOW)
    street = _street_in(text[offset:end])
    return None if street is None else (offset + street[0], street[1])


def _street_in(before: str) -> tuple[int, bool] | None:
    """`_street_start` within `before`, the few words in front of a number."""
    end = len(before)
    last = LAST_WORD.search(before)
    if not last:
        return None
    for name in _berlin_by_last_word().get(last.group().rstrip("."), []):
        start = end - len(name)
        if before.endswith(name) and (start == 0 or not before[start - 1].isalnum()):
            return start, False
    word = last.group()
    if not word[:1].isupper():
        return None
    endings = lexicon.context("street_endings")
    lower = word.casefold()
    weak = not lower.endswith(tuple(endings["strong"]))
    if weak and not lower.endswith(tuple(endings["weak"])):
        return None
    alone = lower in endings["strong"] or lower in endings["weak"]
    if not alone and word in lexicon.words("common_nouns"):
        return None  # Spielplatz, Radweg, Bahnhof: a thing, not a street
    start = last.start()
    qualifier = _word_before(before, start)
    # "Straße 5" or "Tor 3" alone is no address: it needs "Boxhagener" before it.
    if alone and not (qualifier and _is_qualifier(qualifier[0])):
        return None
    for particle in PARTICLES:
        if before[:start].endswith((particle + " ", particle + "-")):
            return start - len(particle) - 1, weak
    # "Große Hamburger Straße", "Alte Schönhauser Allee"
    while qualifier and _is_qualifier(qualifier[0]) and qualifier[0].endswith(("er", "e")):
        start = qualifier[1]
        qualifier = _word_before(before, start)
    return start, weak


def _word_before(text: str, end: int) -> tuple[str, int] | None:
    """The capitalised word right before `end` (and where it starts)."""
    match = PREVIOUS_WORD.search(text, 0, end)
    return (match.group(1), match.start(1)) if match else None


def _is_house_number(text: str, end: int, weak: bool) -> bool:
    after = NEXT_WORD.match(text, end)
    if not after:
        return True
    word = after.group(1).rstrip(".")
    if word.casefold() in lexicon.context("number_units"):
        return False
    # After a weak ending ("am Bahnhof 2 Aufzüge") a noun after the number makes it a count.
    return not (weak and word[:1].isupper() and is_common_noun(word))


def _skip_spaces_back(text: str, end: int) -> int:
    while end and text[end - 1].isspace():
        end -= 1
    return end


def find_addresses(text: str) -> list[tuple[int, int]]:
    """Spans of street addresses in `text`: street name, number, and a following postcode
    (with its city)."""
    spans = []
    for number in NUMBER.finditer(text):
        end = _skip_spaces_back(text, number.start())
        if end == number.start() and not text.endswith(".", 0, end):
            continue  # "Weserstr.17" is an address, "Weserstraße17" is no way to write one
        for word in lexicon.context("number_words"):  # "Hauptstraße Nr. 12"
            start = end - len(word)
            if text.endswith(word, 0, end) and (start == 0 or not text[start - 1].isalnum()):
                end = _skip_spaces_back(text, start)
                break
        street = _street_start(text, end) if end else None
        if street is None or not _is_house_number(text, number.end(), street[1]):
            continue
        end = number.end()
        postcode = POSTCODE.match(text, end)
        if postcode:
            city = postcode.group(1)
            end = postcode.end() if not city or not is_common_noun(city) else postcode.start(1) - 1
        spans.append((street[0], end))
    nouns = lexicon.words("common_nouns")
    spans += [
        m.span() for m in _number_first().finditer(text) if m.group().split()[-1] not in nouns
    ]
    return spans
