"""Which action field an idea belongs to, learning from every confirmed idea.

Each field has a prototype vector: its description texts count as `prior_weight` examples,
and every idea a resident or moderator confirmed for that field counts as one more. With no
confirmations this is zero-shot nearest-description; as confirmations accumulate the prototype
moves towards how residents actually talk about the field.
"""

import hashlib

import numpy as np

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
        prior_weight: float = 5.0,
    ) -> None:
        self.embedder = embedder
        self.field_ids = [f.id for f in taxonomy.leaves]
        self._row = {field_id: i for i, field_id in enumerate(self.field_ids)}
        self.prior_weight = prior_weight
        described = []
        for leaf in taxonomy.leaves:
            vectors = embed_cached(embedder, store, leaf.texts())
            mean = vectors.mean(axis=0)
            described.append(mean / np.linalg.norm(mean))
        self._described = np.stack(described)
        self._sums = np.zeros_like(self._described)
        self._counts = np.zeros(len(self.field_ids))
        self._prototypes = self._described.copy()

    @property
    def dims(self) -> int:
        return self._described.shape[1]

    def learn(self, field_id: str, vector: np.ndarray, weight: float = 1.0) -> None:
        """Add (weight 1) or take back (weight -1) one confirmed idea."""
        row = self._row.get(field_id)
        if row is None:
            return
        self._sums[row] += weight * vector
        self._counts[row] += weight
        blended = self.prior_weight * self._described[row] + self._sums[row]
        self._prototypes[row] = blended / max(np.linalg.norm(blended), 1e-12)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine of each vector (rows) to each field prototype (columns)."""
        return np.atleast_2d(vectors) @ self._prototypes.T

    def description_score(self, vector: np.ndarray, field_id: str) -> float:
        """Cosine to the field's description alone: a yardstick that learning does not move."""
        return float(self._described[self._row[field_id]] @ vector)

    def suggest(self, vector: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        scores = self.scores(vector)[0]
        best = np.argsort(-scores)[:k]
        return [(self.field_ids[i], float(scores[i])) for i in best]
