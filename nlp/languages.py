"""Which of our languages a first message is written in, offline: by its script, and where
several of our languages share a script, by the words that mark each (each catalogue lists its
own under `words_language`, and names its script under `language_script`).

A person who writes "Merhaba, parkta daha çok bank olsun" instead of choosing a language is
answered in Turkish at once; one who writes in Arabic or Ukrainian letters, in Arabic or
Ukrainian. Nothing is guessed from too little: a text whose letters are mostly of no script we
speak, or whose words point to no language more than another, is asked again, as before.
"""

import re
import unicodedata
from collections import Counter
from typing import Protocol

_WORD = re.compile(r"[^\W\d_]+")


class Catalogues(Protocol):
    def text(self, language: str, key: str) -> str: ...

    def words(self, language: str, key: str) -> frozenset[str]: ...


def script(char: str) -> str | None:
    """The script a letter is written in, as Unicode names it ("LATIN", "ARABIC", …)."""
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


def detect(text: str, catalogue: Catalogues, languages: list[str]) -> str | None:
    """The one of `languages` that `text` is written in, or None if that is not clear."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return None
    found, count = Counter(script(char) for char in letters).most_common(1)[0]
    if count * 2 <= len(letters):
        return None
    written = [lang for lang in languages if catalogue.text(lang, "language_script") == found]
    if len(written) <= 1:
        return written[0] if written else None
    typed = {word.casefold() for word in _WORD.findall(text)}
    hits = {lang: len(typed & catalogue.words(lang, "words_language")) for lang in written}
    ranked = sorted(hits.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return None
    return max(hits, key=hits.__getitem__)
