"""What every part of the store shares: the connection, transactions, reading rows as dicts,
the audit log, and vectors as bytes. `Store` (store.py) combines the parts of store/ that
each hold one concern; each is a subclass of `Records`, so it can read and write on its own.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mitreden.errors import OperatorError

if TYPE_CHECKING:  # imported where a vector is made or read: `mitreden ideas` reads none
    import numpy as np


class StoreError(OperatorError):
    """The database cannot be opened or is from a newer mitreden."""


class StoreUnavailable(StoreError):
    """The database cannot be written just now (full disk, read-only, locked, I/O error).

    No message is at fault, so none is answered or acknowledged: the platform delivers it
    again once the operator has fixed the database."""


class Records:
    """The connection and how it is used; `Store.__init__` opens it."""

    db: Any
    _lock: threading.RLock

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _one(self, sql: str, params: tuple = ()) -> dict[str, Any] | None:
        cursor = self.db.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def _all(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def audit(self, at: str, actor: str, action: str, subject: str = "", /, **detail: Any) -> None:
        self.db.execute(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
            (at, actor, action, subject, json.dumps(detail, ensure_ascii=False)),
        )


def to_blob(vector: "np.ndarray") -> bytes:
    import numpy as np

    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> "np.ndarray":
    import numpy as np

    return np.frombuffer(blob, dtype=np.float32)
