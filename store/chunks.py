"""Long lists of values for `IN (...)`, sent to SQLite a part at a time."""

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
# Older SQLite builds allow 999 parameters in one statement; this leaves room for the others.
CHUNK = 500


def in_chunks(values: Sequence[T]) -> Iterator[tuple[Sequence[T], str]]:
    """(part, "?, ?, …") for each part of at most CHUNK values."""
    for start in range(0, len(values), CHUNK):
        part = values[start : start + CHUNK]
        yield part, ", ".join("?" for _ in part)
