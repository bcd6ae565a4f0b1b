"""Which action field an idea belongs to, learning from confirmed ideas.

The suggester embeds each field's description texts once and hands the learning to a model
from `nlp/classifier.py`: by default the calibrated, class-balanced one, which starts from the
descriptions (zero-shot) and learns from confirmations and corrections without letting a large
field swallow the others; `method="prototype"` is the method before it, kept as the baseline
`mitreden eval` compares with.
"""

import hashlib

import numpy as np

from mitreden.nlp.classifier import UNSURE_BELOW, UNSURE_CHANCES, make_model
from mitreden.nlp.embedders import Embedder
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Shipped texts already embedded in this process, for engines opened on further databases.
_MEMO: dict[tuple[str, str], np.ndarray] = {}


def embed_cached(embedder: Embedder, store: Store | None, texts: list[str]) -> np.ndarray:
    """Embed shipped texts once per model: later starts read them from the store."""
    hashes = [_hash(t) for t in texts]
    cached = store.cached_vectors(embedder.name, hashes) if store else {}
    missing = [(h, t) for h, t in zip(hashes, texts, strict=True) if h not in cached]
    new = {h: _MEMO[embedder.name, h] for h, _ in missing if (embedder.name, h) in _MEMO}
    missing = [(h, t) for h, t in missing if h not in new]
    if missing:
        fresh = embedder.embed([t for _, t in missing])
        new.update({h: v for (h, _), v in zip(missing, fresh, strict=True)})
    if new:
        _MEMO.update({(embedder.name, h): v for h, v in new.items()})
        if store:
            store.cache_vectors(embedder.name, new)
        cached.update(new)
    return np.stack([cached[h] for h in hashes])


class FieldSuggester:
    def __init__(
        self,
        embedder: Embedder,
        taxonomy: Taxonomy,
        store: Store | None = None,
        method: str = "balanced",
    ) -> None:
        self.embedder = embedder
        self.method = method
        self.field_ids = [f.id for f in taxonomy.leaves]
        self._row = {field_id: i for i, field_id in enumerate(self.field_ids)}
        described = []
        for leaf in taxonomy.leaves:
            vectors = embed_cached(embedder, store, leaf.texts())
            mean = vectors.mean(axis=0)
            described.append(mean / np.linalg.norm(mean))
        self._described = np.stack(described)
        self.model = make_model(method, self._described)

    @property
    def dims(self) -> int:
        return self._described.shape[1]

    @property
    def unsure_below(self) -> float | None:
        """A suggestion's score under which an unconfirmed idea is filed under no field: the
        calibrated model's probabilities have one; the prototype method's cosines do not (the
        grouping finds each field's outliers among them instead). Lower in a large taxonomy,
        where probabilities spread thinner (see `UNSURE_BELOW`)."""
        if not self.model.calibrated:
            return None
        return min(UNSURE_BELOW, UNSURE_CHANCES / len(self.field_ids))

    def lesson_weight(self, suggested: str | None, chosen: str, corrected: bool = False) -> float:
        """How much a confirmation teaches: a resident accepting the first suggestion less than
        a choice against it or a moderator's correction (per the method)."""
        return self.model.lesson_weight(suggested == chosen and not corrected)

    def learn(
        self,
        field_id: str,
        vector: np.ndarray,
        weight: float = 1.0,
        suggested: str | None = None,
    ) -> None:
        """Add (weight > 0) or take back (the same weight, negative) one confirmed idea.

        `suggested`: the field suggested first for it, if known; which field people choose
        against which was suggested calibrates the suggestions (see `nlp/classifier.py`)."""
        row = self._row.get(field_id)
        if row is None:
            return
        self.model.learn(row, vector, weight)
        first = self._row.get(suggested) if suggested else None
        if first is not None:
            self.model.feedback(first, row, 1.0 if weight > 0 else -1.0)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Each vector's (rows) score for each field (columns): probabilities for the
        balanced method, cosines to the prototypes for the prototype method."""
        return self.model.scores(vectors)

    def description_score(self, vector: np.ndarray, field_id: str) -> float:
        """Cosine to the field's description alone: a yardstick that learning does not move."""
        return float(self._described[self._row[field_id]] @ vector)

    def suggest(self, vector: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        scores = self.scores(vector)[0]
        best = np.argsort(-scores)[:k]
        return [(self.field_ids[i], float(scores[i])) for i in best]
