"""Each idea as the summaries read it, kept so that spaCy reads an idea once, not at every
summary. A mixin of `Store`; the table and the trigger that drops a reading when its idea's
words change are in `schema._readings`.
"""

from collections.abc import Iterable
from typing import Literal, NamedTuple

from mitreden.store.chunks import in_chunks
from mitreden.store.records import Records


class Unread(NamedTuple):
    """What a reading is made from; `Store.keep_readings` checks it is still what is stored."""

    id: int
    text: str
    findings: str | None
    language: str | None


class ReadingRecords(Records):
    def unread(self, idea_ids: Iterable[int]) -> list[Unread]:
        """Those of these ideas that have no reading yet (new, or their words changed since),
        but for rejected ones. Told apart in Python: a probe of `readings` per idea, whose
        rows are large, took three times as long as reading its ids."""
        read = {row[0] for row in self.db.execute("SELECT idea_id FROM readings")}
        unread = sorted(set(idea_ids) - read)
        found: list[Unread] = []
        for chunk, marks in in_chunks(unread):
            cursor = self.db.execute(
                "SELECT id, text, findings, language FROM ideas "
                f"WHERE id IN ({marks}) AND review != 'rejected' ORDER BY id",
                chunk,
            )
            found.extend(Unread(*row) for row in cursor)
        return found

    def keep_readings(self, made: Iterable[tuple[Unread, str, str, str]]) -> int:
        """Store (what was read, its words, their keys as JSON, its sentences as JSON), each
        only if the idea's text, findings and language are still what was read and it is not
        rejected: an edit that came in between already dropped the old reading and must not
        get a stale one back. Returns how many were kept."""
        cursor = self.db.executemany(
            "INSERT OR IGNORE INTO readings (idea_id, words, keys, sentences) "
            "SELECT id, ?, ?, ? FROM ideas WHERE id = ? AND text IS ? AND findings IS ? "
            "AND language IS ? AND review != 'rejected'",
            [(words, keys, sentences, *read) for read, words, keys, sentences in made],
        )
        return cursor.rowcount

    def readings(self, idea_ids: list[int], part: Literal["words", "sentences"]) -> dict[int, str]:
        """One part of these ideas' readings (of those that have one): their words, or their
        sentences as a JSON list."""
        found: dict[int, str] = {}
        for chunk, marks in in_chunks(idea_ids):
            cursor = self.db.execute(
                f"SELECT idea_id, {part} FROM readings WHERE idea_id IN ({marks})", chunk
            )
            found.update(cursor.fetchall())
        return found

    def vocabulary(self) -> list[tuple[str, int, int]]:
        """(word, how often it is used, by how many ideas) over every reading."""
        return self.db.execute("SELECT word, count, ideas FROM vocabulary").fetchall()
