"""First-cut redaction of personal data in any text shown to someone other than its author.

Covers e-mail addresses, URLs, phone numbers (validated with `phonenumbers`) and IBANs
(validated with the ISO 13616 mod-97 check, so an order number is not blacked out).
Names and street addresses come later.

Invisible format characters go first: bidi overrides and isolates can make a text read
differently than it is written, and zero-width characters can hide an address from the patterns.
"""

import re
import unicodedata
from collections.abc import Mapping

import phonenumbers

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
KINDS = ("email", "url", "iban", "phone")


def visible(text: str) -> str:
    """`text` without invisible format characters (Unicode category Cf: bidi embeddings,
    overrides, isolates and marks, zero-width spaces and joiners, word joiner, byte-order mark,
    tag characters), which could reorder or hide what someone else reads."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def iban_valid(candidate: str) -> bool:
    compact = re.sub(r"\s", "", candidate).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def _replace_ibans(text: str, label: str) -> str:
    def swap(match: re.Match[str]) -> str:
        candidate = match.group(0)
        # The greedy pattern may run into a following word; trim back to the longest valid IBAN.
        for end in range(len(candidate), 14, -1):
            if not candidate[end - 1].isspace() and iban_valid(candidate[:end]):
                return label + candidate[end:]
        return candidate

    return IBAN.sub(swap, text)


def _replace_phones(text: str, label: str, region: str) -> str:
    pieces, last = [], 0
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        pieces += [text[last : match.start], label]
        last = match.end
    return "".join(pieces) + text[last:]


def redact(text: str, labels: Mapping[str, str], region: str = "DE") -> str:
    """What someone other than the author may read of `text`: visible characters only, and
    personal data replaced with the viewer-language placeholder `labels[kind]`."""
    text = visible(text)
    text = EMAIL.sub(labels["email"], text)
    text = URL.sub(labels["url"], text)
    text = _replace_ibans(text, labels["iban"])
    return _replace_phones(text, labels["phone"], region)
