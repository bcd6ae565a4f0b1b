"""Similar ideas by other people, from an in-memory matrix of stored idea vectors.

Built once from the store at start, then kept current by the engine after each commit,
so a lookup is one matrix-vector product and never re-embeds anything.
"""

from collections.abc import Iterable

import numpy as np


class IdeaIndex:
    def __init__(self, dims: int) -> None:
        self._ids: list[int] = []
        self._owners: list[str] = []
        self._fields: list[str | None] = []
        self._vectors = np.zeros((0, dims), dtype=np.float32)
        self._pending: list[np.ndarray] = []
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, idea_id: int, owner: str, field: str | None, vector: np.ndarray) -> None:
        self._row[idea_id] = len(self._ids)
        self._ids.append(idea_id)
        self._owners.append(owner)
        self._fields.append(field)
        self._pending.append(np.asarray(vector, dtype=np.float32))

    def extend(self, ideas: Iterable[tuple[int, str, str | None, np.ndarray]], count: int) -> None:
        """Add about `count` ideas (id, owner, field, vector) at once, each vector copied
        straight into the matrix: at 100,000 ideas, holding them one by one until they were
        stacked left the process 300 MB larger than the matrix itself."""
        matrix = self._matrix()
        grown = np.empty((len(matrix) + max(count, 1), matrix.shape[1]), dtype=np.float32)
        grown[: len(matrix)] = matrix
        row = len(matrix)
        for idea_id, owner, field, vector in ideas:
            if row == len(grown):  # more than counted: ideas came in meanwhile
                grown = np.concatenate([grown, np.empty_like(grown)])
            grown[row] = vector
            self._row[idea_id] = row
            self._ids.append(idea_id)
            self._owners.append(owner)
            self._fields.append(field)
            row += 1
        self._vectors = grown[:row]

    def set_field(self, idea_id: int, field: str | None) -> None:
        if idea_id in self._row:
            self._fields[self._row[idea_id]] = field

    def vectors(self, idea_ids: list[int]) -> dict[int, np.ndarray]:
        """The vectors of those ideas this index holds."""
        matrix = self._matrix()
        return {i: matrix[self._row[i]] for i in idea_ids if i in self._row}

    def remove(self, idea_ids: set[int]) -> None:
        self._matrix()
        keep = [i for i, idea_id in enumerate(self._ids) if idea_id not in idea_ids]
        self._ids = [self._ids[i] for i in keep]
        self._owners = [self._owners[i] for i in keep]
        self._fields = [self._fields[i] for i in keep]
        self._vectors = self._vectors[keep]
        self._row = {idea_id: row for row, idea_id in enumerate(self._ids)}

    def _matrix(self) -> np.ndarray:
        if self._pending:
            self._vectors = np.vstack([self._vectors, *self._pending])
            self._pending = []
        return self._vectors

    def similar(
        self,
        vector: np.ndarray,
        *,
        exclude_owner: str,
        field: str | None = None,
        exclude_ids: frozenset[int] = frozenset(),
        k: int = 2,
        min_score: float = 0.0,
    ) -> list[tuple[int, float]]:
        """Up to k ideas of other people, in the same field when one is given, best first."""
        if not self._ids:
            return []
        scores = self._matrix() @ vector
        ranked = []
        for i in np.argsort(-scores):
            if scores[i] < min_score:
                break
            if self._owners[i] == exclude_owner or self._ids[i] in exclude_ids:
                continue
            if field is not None and self._fields[i] != field:
                continue
            ranked.append((self._ids[i], float(scores[i])))
            if len(ranked) == k:
                break
        return ranked
