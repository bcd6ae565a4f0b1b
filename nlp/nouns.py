"""Is a capitalised German word a common noun?

German capitalises every noun, so a capital letter is no evidence of a name. The redactor asks
this question before it takes an unknown capitalised word for a surname ("Anna Kowalczyk" yes,
"Juli Sommerfest" no). The lexicon holds Wiktionary's noun lemmas of up to ten letters; plurals
and case endings are stripped, and a compound is judged by its last part (Bezirks|amt,
Spiel|plätze).
"""

from functools import cache

from mitreden.nlp import lexicon

ENDINGS = ("en", "n", "e", "s", "es", "er", "ern", "nen")
UMLAUTS = str.maketrans("äöü", "aou")
SHORTEST_PART = 4


@cache
def _nouns() -> frozenset[str]:
    return lexicon.words("common_nouns")


def _known(word: str) -> bool:
    nouns = _nouns()
    if word in nouns:
        return True
    for ending in ENDINGS:
        stem = word[: -len(ending)]
        if word.endswith(ending) and len(stem) >= 3 and (
            stem in nouns or stem.translate(UMLAUTS) in nouns
        ):
            return True
    return False


def is_common_noun(word: str) -> bool:
    """Whether `word` (capitalised) is a German common noun or a compound ending in one."""
    word = word.rsplit("-", 1)[-1]
    if len(word) < 3 or _known(word):
        return True
    return any(
        _known(word[i].upper() + word[i + 1 :]) for i in range(2, len(word) - SHORTEST_PART + 1)
    )
