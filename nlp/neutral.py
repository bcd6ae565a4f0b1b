"""Idea vectors that say what an idea means, not which language it was written in.

A multilingual model such as e5 places a text partly by its language: the same idea in Ukrainian
and in German scored 0.89 on average (12 pairs written for tests/test_languages.py), while two
German paraphrases score 0.90-0.96. The same offset separates every Ukrainian text from its
German counterpart, so it can be measured once and taken off: the mean vector of sentences in
one language minus the mean vector of the same sentences in German (Libovický, Rosa and Fraser,
"On the Language Neutrality of Pre-trained Multilingual Representations", 2020). The sentences
are the message catalogues', which say the same thing in every language mitreden speaks.

With the offset taken off, the pairs score 0.92-0.93 and unrelated ideas across languages 0.84,
as unrelated German ideas do: a Ukrainian idea is grouped, suggested a field and offered similar
ideas as if it had been written in German. German (and Einfache Sprache, which is German) is
the reference and stays as the model made it.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from mitreden.nlp.embedders import Embedder
from mitreden.nlp.suggest import embed_cached
from mitreden.store import Store

REFERENCE = "de"


class LanguageOffsets:
    def __init__(
        self, embedder: Embedder, store: Store | None, parallel: Mapping[str, Sequence[str]]
    ) -> None:
        """`parallel`: for each language, the same sentences in the same order, the
        reference language's among them. A language left out keeps its vectors as they are."""
        self._offsets: dict[str, np.ndarray] = {}
        if REFERENCE not in parallel:
            return
        reference = embed_cached(embedder, store, list(parallel[REFERENCE])).mean(axis=0)
        for language, texts in parallel.items():
            if language != REFERENCE and len(texts) == len(parallel[REFERENCE]):
                own = embed_cached(embedder, store, list(texts)).mean(axis=0)
                self._offsets[language] = own - reference

    def neutral(self, vectors: np.ndarray, language: str | None) -> np.ndarray:
        """`vectors` (one or a matrix of unit rows) as if written in the reference language."""
        offset = self._offsets.get(language or REFERENCE)
        if offset is None:
            return vectors
        moved = vectors - offset
        return moved / np.linalg.norm(moved, axis=-1, keepdims=True)
