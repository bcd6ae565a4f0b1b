"""How easy a German text is to read: Amstad's German version of the Flesch reading ease.

    ease = 180 - (words per sentence) - 58.5 * (syllables per word)

100 is very easy, 60 to 70 is plain newspaper German, below 30 is for specialists (Amstad
1978, after Flesch 1948). The test suite holds every message of the Einfache-Sprache
catalogue above a bar (tests/test_catalogue.py; the README gives the bar and the figures).

Syllables are counted as groups of vowels ("Ei-gen-tum": ei, e, u), which is how the formula
was meant to be applied by hand and errs by a syllable now and then on loanwords. Placeholders
such as {idea} and commands such as /start are not words a reader reads, so they are left out.
"""

import re

# Vowel groups: a diphthong (ei, au, eu, äu, ie) or a double vowel is one syllable.
_VOWELS = re.compile(r"[aeiouyäöü]+", re.IGNORECASE)
_NOT_READ = re.compile(r"\{[^}]*\}|(?<!\w)/\w+")
_WORD = re.compile(r"[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*")  # with hyphens and apostrophes
# A sentence ends at . ! ? or : before a space or the end, or at a line break.
_SENTENCE_END = re.compile(r"[.!?:]+(?=\s|$)|\n+")


def syllables(word: str) -> int:
    """A German word's syllables: its vowel groups, at least one."""
    return max(1, len(_VOWELS.findall(word)))


def words(text: str) -> list[str]:
    """The words of `text` a reader reads (no placeholders, commands or numbers)."""
    return _WORD.findall(_NOT_READ.sub(" ", text))


def sentences(text: str) -> list[str]:
    """The sentences of `text` that hold at least one word."""
    return [part for part in _SENTENCE_END.split(_NOT_READ.sub(" ", text)) if words(part)]


def reading_ease(text: str) -> float | None:
    """Amstad's reading ease of `text`, or None if it holds no word to read."""
    found = words(text)
    if not found:
        return None
    per_sentence = len(found) / max(1, len(sentences(text)))
    per_word = sum(syllables(word) for word in found) / len(found)
    return 180 - per_sentence - 58.5 * per_word
