"""Redaction of personal data in any text shown to someone other than its author.

`find()` returns where personal data is (kind and span), `apply()` puts the reader's
placeholders there, `strip()` removes it (so a placeholder never becomes a keyword or a summary
sentence). Kinds: e-mail addresses (also "peter (at) mueller (dot) de"), web addresses (also
bare "berlin.de" and "t.me/x"), phone numbers (validated with `phonenumbers`), IBANs (validated
with the ISO 13616 mod-97 check, so an order number is not blacked out), licence plates,
dates of birth (only with a birth word), street addresses (nlp/addresses.py) and private
persons' names (nlp/names.py). Overlapping findings become one span, named after the
longest of them, so that no part of either is left readable.

Invisible format characters go first: bidi overrides and isolates can make a text read
differently than it is written, and zero-width characters can hide an address from the patterns.
Word lists live in data/redaction/ and are read on first use (nlp/lexicon.py).
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import phonenumbers

from mitreden.nlp import lexicon
from mitreden.nlp.addresses import find_addresses
from mitreden.nlp.names import find_names

KINDS = ("email", "phone", "iban", "url", "address", "plate", "birthdate", "name")


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    start: int  # span in the text given to find(), end exclusive
    end: int


def _position(finding: Finding) -> tuple[int, int]:
    return finding.start, finding.end


EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
AT = r"\s*[(\[{<]\s*(?:at|ät|@)\s*[)\]}>]\s*"
DOT = r"(?:\s*[(\[{<]\s*(?:dot|punkt|\.)\s*[)\]}>]\s*|\.)"
BRACKETED_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w.+-]+{AT}[\w-]+(?:{DOT}[\w-]+)*{DOT}[^\W\d_]{{2,}}(?![\w-])", re.I
)
URL = re.compile(r"(?<![\w@])(?:https?://|www\.)[^\s<>\"]+", re.I)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.I)
DIGITS = re.compile(r"\d(?:[\s()/.-]?\d){4}")
TRAILING = ".,;:!?)]}'\"\u2019\u201d"
DAY_MONTH_YEAR = r"\d{1,2}\.\s?\d{1,2}\.\s?(?:\d{4}|\d{2})(?!\d)"
ISO_DATE = r"\d{4}-\d{2}-\d{2}"
SLASH_DATE = r"\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})(?!\d)"
DATE = re.compile(rf"{DAY_MONTH_YEAR}|{ISO_DATE}|{SLASH_DATE}")
# Of two overlapping findings of the same length, the more specific kind names the span
# ("geb. 03.04.1985" is a date of birth, not a phone number).
PRIORITY = ("birthdate", "iban", "email", "url", "plate", "address", "phone", "name")


def visible(text: str) -> str:
    """`text` without invisible format characters (Unicode category Cf: bidi embeddings,
    overrides, isolates and marks, zero-width spaces and joiners, word joiner, byte-order mark,
    tag characters), which could reorder or hide what someone else reads."""
    if text.isascii():
        return text
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return _invisible().sub("", text)
    # Latin-1 holds one format character, the soft hyphen; most German texts are Latin-1,
    # and this is fifteen times faster than the pattern (forwarding reads every idea).
    return text.replace(SOFT_HYPHEN, "")


SOFT_HYPHEN = "\u00ad"
# Where format characters can be: planes 0 to 3, and plane 14 (tags, variation selectors).
# Planes 4 to 13 hold no character in any Unicode version so far, 15 and 16 only private use
# (tests/test_redact.py checks this against the Unicode of the Python that runs it).
FORMAT_PLANES = (range(0, 0x40000), range(0xE0000, 0xF0000))


@cache
def _invisible() -> re.Pattern[str]:
    """Every format character (category Cf) as ranges of one character class, built once
    from `unicodedata` (25 ms, in the planes where they can be): five times faster than
    asking per character, which forwarding 100,000 ideas did 17 million times."""
    ranges: list[list[int]] = []
    for plane in FORMAT_PLANES:
        for code in plane:
            if unicodedata.category(chr(code)) == "Cf":
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1][1] = code
                else:
                    ranges.append([code, code])
    return re.compile(
        "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]"
    )


def iban_valid(candidate: str) -> bool:
    compact = re.sub(r"\s", "", candidate).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


@cache
def _patterns() -> dict[str, re.Pattern[str]]:
    """The patterns built from data/redaction/ (top-level domains, plate codes, months...)."""
    context = lexicon.context
    tlds = "|".join(sorted(lexicon.words("tlds"), key=len, reverse=True))
    providers = "|".join(re.escape(p) for p in context("mail_providers"))
    months = "|".join(sorted(context("months"), key=len, reverse=True))
    before = "|".join(re.escape(w) for w in sorted(context("birth_before"), key=len, reverse=True))
    after = "|".join(re.escape(w) for w in context("birth_after"))
    word_date = (
        rf"\d{{1,2}}(?:\.|st|nd|rd|th)?\s+(?:of\s+)?(?:{months})\.?\s+\d{{4}}"
        rf"|(?:{months})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    )
    date = rf"(?:{DAY_MONTH_YEAR}|{ISO_DATE}|{SLASH_DATE}|{word_date})"
    return {
        # "peter at mueller dot de", "peter.m at gmx.de": only with a known ending.
        "spoken_email": re.compile(
            rf"(?<![\w.+-])[\w.+-]+(?:\s+(?:dot|punkt)\s+[\w+-]+){{0,3}}\s+(?:at|ät)\s+[\w-]+"
            rf"(?:\s+(?:dot|punkt)\s+[\w-]+){{0,3}}"
            rf"\s+(?:dot|punkt)\s+(?:{tlds})(?![\w-])"
            rf"|(?<![\w.+-])(?:[\w+-]*[._\d][\w.+-]*|[\w.+-]+(?=\s+(?:at|ät)\s+(?:{providers})\.))"
            rf"\s+(?:at|ät)\s+[\w-]+(?:\.[\w-]+)*\.(?:{tlds})(?![\w-])",
            re.I,
        ),
        "domain": re.compile(
            rf"(?<![\w@./-])(?:[a-zA-Z0-9](?:[\w-]*[a-zA-Z0-9])?\.)+(?:{tlds})(?![\w-])"
            r"(?:[/:][^\s<>\"]*)?"
        ),
        # "B-AB 1234", "B AB 1234", "M-XY 99H"; in a lower-case message only with the hyphen.
        # The district code is checked against the list afterwards (faster than 722 branches).
        "plate": re.compile(
            r"(?<![\w-])(?:(?P<code>[A-ZÄÖÜ]{1,3})(?:-|\s|-\s)[A-Z]{1,2}[\s-]?\d{1,4}[EH]?"
            r"|(?P<lower>[a-zäöü]{1,3})-[a-z]{1,2}[\s-]?\d{1,4}[eh]?)(?![\w-])"
        ),
        "birthdate": re.compile(
            rf"(?:(?<![\w])(?:{before})[\s:]*(?:(?:ist|is|war|am|on|der|the|den)\s+)*"
            rf"(?P<date>{date}))|(?P<date2>{date})(?=\s+(?:in\s+\w+\s+)?(?:{after})\b)",
            re.I,
        ),
    }


def _trimmed(kind: str, start: int, url: str) -> Finding:
    """A URL without the punctuation that ends the sentence around it (a closing bracket
    stays when the URL opened it: "wiki/Berlin_(Begriffsklärung)")."""
    while url and url[-1] in TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return Finding(kind, start, start + len(url))


def _ibans(text: str) -> Iterable[Finding]:
    for match in IBAN.finditer(text):
        candidate = match.group()
        # Letters alone after the bank code are the next word ("... 0130 00 mit Betreff").
        parts = candidate.split(" ")
        for k, part in enumerate(parts[2:], 2):
            if not any(ch.isdigit() for ch in part):
                candidate = " ".join(parts[:k])
                break
        # The greedy pattern may run into a following word; trim back to the longest valid IBAN.
        for end in range(len(candidate), 14, -1):
            if not candidate[end - 1].isspace() and iban_valid(candidate[:end]):
                yield Finding("iban", match.start(), match.start() + end)
                break


def _candidates(text: str, region: str) -> Iterable[Finding]:
    patterns = _patterns()
    for pattern in (EMAIL, BRACKETED_EMAIL, patterns["spoken_email"]):
        yield from (Finding("email", *m.span()) for m in pattern.finditer(text))
    for pattern in (URL, patterns["domain"]):
        yield from (_trimmed("url", m.start(), m.group()) for m in pattern.finditer(text))
    yield from _ibans(text)
    if DIGITS.search(text):  # the matcher is the slowest step; most texts have no number
        for number in phonenumbers.PhoneNumberMatcher(text, region):
            if not DATE.fullmatch(number.raw_string):  # "am 03.04.2024" is a day
                yield Finding("phone", number.start, number.end)
    codes = lexicon.words("plate_codes")
    for match in patterns["plate"].finditer(text):
        if (match.group("code") or match.group("lower").upper()) in codes:
            yield Finding("plate", *match.span())
    for match in patterns["birthdate"].finditer(text):
        group = "date" if match.group("date") else "date2"
        yield Finding("birthdate", *match.span(group))
    yield from (Finding("address", *span) for span in find_addresses(text))
    yield from (Finding("name", *span) for span in find_names(text))


def find(text: str, region: str = "DE") -> list[Finding]:
    """Personal data in `text` (already passed through visible()), sorted by start and not
    overlapping: overlapping findings become one, of the kind of the longest (so that no part
    of either is left visible)."""
    merged: list[tuple[int, int, Finding]] = []  # start, end, the longest finding inside
    for finding in sorted(_candidates(text, region), key=_position):
        if finding.end <= finding.start:
            continue
        if merged and finding.start < merged[-1][1]:
            start, end, longest = merged[-1]
            if _rank(finding) < _rank(longest):
                longest = finding
            merged[-1] = (start, max(end, finding.end), longest)
        else:
            merged.append((finding.start, finding.end, finding))
    return [Finding(longest.kind, start, end) for start, end, longest in merged]


def _rank(finding: Finding) -> tuple[int, int]:
    """Longer first; of the same length, the more specific kind."""
    return finding.start - finding.end, PRIORITY.index(finding.kind)


def _spans(findings: Iterable[Finding]) -> list[Finding]:
    """Sorted, and without a finding that overlaps an earlier one."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=_position):
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept


def apply(text: str, findings: Iterable[Finding], labels: Mapping[str, str]) -> str:
    """`text` with each finding replaced by labels[finding.kind]."""
    pieces, last = [], 0
    for finding in _spans(findings):
        pieces += [text[last : finding.start], labels[finding.kind]]
        last = finding.end
    return "".join(pieces) + text[last:]


def strip(text: str, findings: Iterable[Finding]) -> str:
    """`text` without the findings' spans (and without the double space a removal leaves)."""
    pieces, last = [], 0
    for finding in _spans(findings):
        piece = text[last : finding.start]
        if piece.endswith(" ") and text[finding.end : finding.end + 1] in (" ", ""):
            piece = piece[:-1]
        pieces.append(piece)
        last = finding.end
    return "".join(pieces) + text[last:]


def redact(text: str, labels: Mapping[str, str], region: str = "DE") -> str:
    """What someone other than the author may read of `text`: visible characters only, and
    personal data replaced with the viewer-language placeholder `labels[kind]`."""
    text = visible(text)
    return apply(text, find(text, region), labels)
