"""Participants with their consent, the ideas they give (with what was derived from the words),
and moderators' decisions on them. A mixin of `Store`; every method runs inside the caller's
transaction when it writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from mitreden.store.chunks import in_chunks
from mitreden.store.records import Records, from_blob, to_blob

if TYPE_CHECKING:
    import numpy as np

# What the author's new words for an idea replace (`replace_text`).
TEXT_COLUMNS = frozenset(
    {"text", "findings", "kept", "embedding", "suggested_field", "suggested_score", "updated_at"}
)
# What the conversation may change on an idea after it was written.
IDEA_COLUMNS = frozenset(
    {"confirmed_field", "district", "age_band", "actor_group", "notify", "updated_at"}
)


class IdeaFacts(NamedTuple):
    id: int
    participant_id: str
    lane: str | None
    """the field it is filed under: confirmed, else suggested"""
    district: str | None
    age_band: str | None


_FACTS = (
    "id, participant_id, coalesce(nullif(confirmed_field, ''), suggested_field), district, age_band"
)


class IdeaRecords(Records):
    """Store methods for participants, ideas and their review."""

    # participants and consent

    def ensure_participant(self, participant_id: str, channel: str, now: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO participants (id, channel, created_at) VALUES (?, ?, ?)",
            (participant_id, channel, now),
        )

    def record_consent(
        self, participant_id: str, version: str, given: bool, language: str, now: str
    ) -> None:
        self.db.execute(
            "INSERT INTO consents (participant_id, version, given, language, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (participant_id, version, int(given), language, now),
        )

    def consented_version(self, participant_id: str) -> str | None:
        """The version of the latest consent, or None if the latest answer was no."""
        row = self._one(
            "SELECT version, given FROM consents WHERE participant_id = ? ORDER BY id DESC",
            (participant_id,),
        )
        return row["version"] if row and row["given"] else None

    def set_contact(self, participant_id: str, channel: str, address: str, now: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO contacts VALUES (?, ?, ?, ?)",
            (participant_id, channel, address, now),
        )

    # ideas

    def add_idea(self, **columns: Any) -> int:
        if not isinstance(columns.get("embedding"), bytes | None):
            columns["embedding"] = to_blob(columns["embedding"])
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        cursor = self.db.execute(
            f"INSERT INTO ideas ({names}) VALUES ({marks})", tuple(columns.values())
        )
        return cursor.lastrowid

    def update_idea(self, idea_id: int, **columns: Any) -> None:
        unknown = set(columns) - IDEA_COLUMNS
        if unknown:
            raise ValueError(f"ideas has no updatable column {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.db.execute(
            f"UPDATE ideas SET {assignments} WHERE id = ?", (*columns.values(), idea_id)
        )

    def replace_text(self, idea_id: int, **columns: Any) -> None:
        """The author changed their idea's words: the text and all that was derived from it
        (findings, embedding, suggestion) are written anew."""
        unknown = set(columns) - TEXT_COLUMNS
        if unknown:
            raise ValueError(f"replace_text cannot set {sorted(unknown)}")
        if not isinstance(columns.get("embedding"), bytes | None):
            columns["embedding"] = to_blob(columns["embedding"])
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.db.execute(
            f"UPDATE ideas SET {assignments} WHERE id = ?", (*columns.values(), idea_id)
        )

    def ideas_since(self, participant_id: str, since: str) -> list[dict[str, Any]]:
        """A participant's ideas written at or after `since`, oldest first (limits, repeats)."""
        return self._all(
            "SELECT id, text FROM ideas WHERE participant_id = ? AND created_at >= ? ORDER BY id",
            (participant_id, since),
        )

    def idea(self, idea_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM ideas WHERE id = ?", (idea_id,))

    def ideas(self, with_embedding: bool = False) -> list[dict[str, Any]]:
        """Ideas with their support count, newest last: what `mitreden ideas` lists. Without
        the embedding unless asked: SQLite keeps it on pages of its own that a scan of
        100,000 ideas would otherwise read."""
        columns = "ideas.*" if with_embedding else self._columns_but_embedding()
        return self._all(
            f"SELECT {columns}, (SELECT count(*) FROM supports WHERE idea_id = ideas.id) "
            "AS supporters FROM ideas ORDER BY id"
        )

    def _columns_but_embedding(self) -> str:
        names = [row[1] for row in self.db.execute("PRAGMA table_info(ideas)")]
        return ", ".join(f"ideas.{name}" for name in names if name != "embedding")

    def revision(self) -> tuple[str, int]:
        """(this database's token, a number every change to ideas, supports and groups moves)."""
        return self.db.execute("SELECT token, n FROM revision").fetchone()

    def idea_vectors(self) -> list[tuple[int, str, str | None, str | None, np.ndarray]]:
        """(id, participant, suggested, confirmed field, vector) of every embedded idea."""
        return list(self.each_idea_vector())

    def each_idea_vector(self) -> Iterator[tuple[int, str, str | None, str | None, np.ndarray]]:
        """`idea_vectors` one at a time, for a caller that copies each vector where it keeps
        it: at 100,000 ideas the list held 200 MB at start that the process never gave back."""
        cursor = self.db.execute(
            "SELECT id, participant_id, suggested_field, confirmed_field, embedding "
            "FROM ideas WHERE embedding IS NOT NULL ORDER BY id"
        )
        for i, p, s, c, e in cursor:
            yield i, p, s, c, from_blob(e)

    def embedded_count(self) -> int:
        cursor = self.db.execute("SELECT count(*) FROM ideas WHERE embedding IS NOT NULL")
        return cursor.fetchone()[0]

    def ungrouped_ideas(self) -> list[tuple[int, str | None, str | None, np.ndarray]]:
        """(id, suggested, confirmed field, vector) of embedded ideas in no group."""
        cursor = self.db.execute(
            "SELECT id, suggested_field, confirmed_field, embedding FROM ideas "
            "WHERE embedding IS NOT NULL AND id NOT IN (SELECT idea_id FROM cluster_members)"
        )
        return [(i, s, c, from_blob(e)) for i, s, c, e in cursor]

    def supported_by(self, participant_id: str) -> set[int]:
        cursor = self.db.execute(
            "SELECT idea_id FROM supports WHERE participant_id = ?", (participant_id,)
        )
        return {row[0] for row in cursor}

    def rejected(self) -> set[int]:
        """Ideas a moderator rejected."""
        return {row[0] for row in self.db.execute("SELECT id FROM ideas WHERE review = 'rejected'")}

    def idea_facts(self, idea_ids: list[int]) -> dict[int, IdeaFacts]:
        """What a summary counts of these ideas, without their words."""
        found = {}
        for chunk, marks in in_chunks(idea_ids):
            cursor = self.db.execute(f"SELECT {_FACTS} FROM ideas WHERE id IN ({marks})", chunk)
            found.update({row[0]: IdeaFacts(*row) for row in cursor})
        return found

    def ungrouped_facts(self) -> list[IdeaFacts]:
        """What a summary counts of the ideas in no group that a moderator did not reject."""
        # Their ids first: that query reads only the index on `review`, where asking for the
        # facts at once read every idea's row, vector and all (0.1 s at 100,000 ideas).
        cursor = self.db.execute(
            "SELECT id FROM ideas WHERE review != 'rejected' "
            "AND NOT EXISTS (SELECT 1 FROM cluster_members m WHERE m.idea_id = ideas.id)"
        )
        return list(self.idea_facts([row[0] for row in cursor]).values())

    def supporters(self, idea_ids: list[int] | None = None) -> dict[int, set[str]]:
        """Who pressed "me too", per idea (of every idea, or of `idea_ids`)."""
        query = "SELECT participant_id, idea_id FROM supports"
        parts = (
            [((), query)]
            if idea_ids is None
            else [
                (chunk, f"{query} WHERE idea_id IN ({marks})")
                for chunk, marks in in_chunks(idea_ids)
            ]
        )
        result: dict[int, set[str]] = {}
        for values, sql in parts:
            for participant_id, idea_id in self.db.execute(sql, values):
                result.setdefault(idea_id, set()).add(participant_id)
        return result

    def add_support(self, participant_id: str, idea_id: int, now: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO supports VALUES (?, ?, ?)", (participant_id, idea_id, now)
        )

    # review by moderators

    def set_review(self, idea_id: int, review: str, now: str) -> str | None:
        """Set an idea's review state; the state before, or None if there is no such idea."""
        row = self._one("SELECT review FROM ideas WHERE id = ?", (idea_id,))
        if row is not None:
            self.db.execute(
                "UPDATE ideas SET review = ?, updated_at = ? WHERE id = ?", (review, now, idea_id)
            )
        return None if row is None else row["review"]

    def unposted_reviews(self, channel: str, limit: int = 20) -> list[dict[str, Any]]:
        """Ideas waiting for a decision (pending, or held back as insulting) not yet shown in
        `channel`'s moderator room, oldest first."""
        return self._all(
            "SELECT id, text, findings, review, language, suggested_field, suggested_score, "
            "confirmed_field FROM ideas WHERE review IN ('pending', 'held') AND id NOT IN "
            "(SELECT idea_id FROM review_posts WHERE channel = ? AND idea_id IS NOT NULL) "
            "ORDER BY id LIMIT ?",
            (channel, limit),
        )

    def add_review_post(self, channel: str, message_key: str, idea_id: int, now: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO review_posts VALUES (?, ?, ?, ?)",
            (channel, message_key, idea_id, now),
        )

    def review_post(self, channel: str, message_key: str) -> dict[str, Any] | None:
        """The review post behind a moderator-room message, or None if it is not one; its
        `idea_id` is None once the idea was erased."""
        return self._one(
            "SELECT * FROM review_posts WHERE channel = ? AND message_key = ?",
            (channel, message_key),
        )

    def orphaned_review_posts(self, channel: str) -> list[str]:
        """Messages showing ideas that were erased since: they must be taken back."""
        cursor = self.db.execute(
            "SELECT message_key FROM review_posts WHERE channel = ? AND idea_id IS NULL",
            (channel,),
        )
        return [key for (key,) in cursor]

    def drop_review_post(self, channel: str, message_key: str) -> None:
        self.db.execute(
            "DELETE FROM review_posts WHERE channel = ? AND message_key = ?",
            (channel, message_key),
        )
