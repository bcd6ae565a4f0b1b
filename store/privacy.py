"""What privacy needs of the store: blocks against abuse, the retention purge, and the data
subject's rights (their data as a file, erasure). A mixin of `Store`; every method runs
inside the caller's transaction when it writes.
"""

import json
from datetime import datetime, timedelta
from typing import Any

from mitreden.store.groups import GroupRecords
from mitreden.store.records import from_blob
from mitreden.store.staff import StaffRecords

# Tables holding a participant's rows, in an order that respects the foreign keys.
PARTICIPANT_TABLES = (
    "supports",
    "contacts",
    "ideas",
    "consents",
    "conversations",
    "outbox",
    "web_lines",
    "web_codes",
    "notified",
    "participants",
)


class PrivacyRecords(GroupRecords, StaffRecords):
    """Store methods for blocks, retention and data subject rights. Erasure reaches into
    groups (a group only they made goes) and summaries (an unforwarded one with their idea)."""

    # abuse: blocks

    def block(self, participant_id: str, until: str, now: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO blocks (participant_id, until, at) VALUES (?, ?, ?)",
            (participant_id, until, now),
        )
        return cursor.lastrowid

    def blocked_until(self, participant_id: str, now: str) -> str | None:
        """Until when a participant is blocked, or None."""
        row = self._one(
            "SELECT max(until) AS until FROM blocks WHERE participant_id = ? AND until > ?",
            (participant_id, now),
        )
        return row["until"] if row else None

    def participants_starting(self, prefix: str) -> list[str]:
        """Pseudonymous ids that start with `prefix`: how an operator names one (`block`)."""
        cursor = self.db.execute(
            "SELECT id FROM participants WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 3",
            (len(prefix), prefix),
        )
        return [row[0] for row in cursor]

    # retention

    def close_round(self, now: str, actor: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO rounds (closed_at, closed_by) VALUES (?, ?)", (now, actor)
        )
        return cursor.lastrowid

    def retention_cutoff(self, now: str, retention_days: float) -> str | None:
        """Everything written before this moment is past retention: the end of the latest round
        that closed at least `retention_days` ago; None while no round is that old."""
        cutoff = (datetime.fromisoformat(now) - timedelta(days=retention_days)).isoformat()
        row = self._one(
            "SELECT max(closed_at) AS closed FROM rounds WHERE closed_at <= ?", (cutoff,)
        )
        return row["closed"] if row else None

    def ideas_to_purge(self, before: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT id, text, language, findings FROM ideas "
            "WHERE created_at <= ? AND purged_at IS NULL ORDER BY id",
            (before,),
        )

    def purge_idea(self, idea_id: int, redacted: str, now: str) -> None:
        """Keep only the redacted form of an idea past retention."""
        self.db.execute(
            "UPDATE ideas SET text = ?, findings = '[]', kept = NULL, purged_at = ? WHERE id = ?",
            (redacted, now, idea_id),
        )

    def drop_contacts(self, before: str) -> int:
        return self.db.execute("DELETE FROM contacts WHERE at <= ?", (before,)).rowcount

    def drop_stale(self, before: str) -> dict[str, int]:
        """Conversations and unsent replies untouched since `before`: they may hold a draft or
        an idea read back in its author's own words, so they go with retention too."""
        return {
            "conversations": self.db.execute(
                "DELETE FROM conversations WHERE updated_at <= ?", (before,)
            ).rowcount,
            "outbox": self.db.execute(
                "DELETE FROM outbox WHERE created_at <= ?", (before,)
            ).rowcount,
            "web_lines": self.db.execute("DELETE FROM web_lines WHERE at <= ?", (before,)).rowcount,
        }

    def drop_ended_blocks(self, now: str) -> int:
        return self.db.execute("DELETE FROM blocks WHERE until <= ?", (now,)).rowcount

    # data subject rights

    def ideas_of(self, participant_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM ideas WHERE participant_id = ?", (participant_id,))

    def export_participant(self, participant_id: str) -> dict[str, Any]:
        """Everything stored about one participant (GDPR Art. 15), embeddings as numbers."""
        ideas = self.ideas_of(participant_id)
        for idea in ideas:
            if idea["embedding"] is not None:
                idea["embedding"] = [round(float(x), 6) for x in from_blob(idea["embedding"])]
        conversation = self._one(
            "SELECT * FROM conversations WHERE participant_id = ?", (participant_id,)
        )
        if conversation:
            conversation["data"] = json.loads(conversation["data"])
        return {
            "participant": self._one("SELECT * FROM participants WHERE id = ?", (participant_id,)),
            "consents": self._all(
                "SELECT * FROM consents WHERE participant_id = ?", (participant_id,)
            ),
            "conversation": conversation,
            "ideas": ideas,
            "supports": self._all(
                "SELECT * FROM supports WHERE participant_id = ?", (participant_id,)
            ),
            "contacts": self._all(
                "SELECT * FROM contacts WHERE participant_id = ?", (participant_id,)
            ),
            "workshops_led": self._all(
                "SELECT id, title, started_at, ended_at FROM workshops WHERE facilitator = ?",
                (participant_id,),
            ),
            "rooms_added": self._all(
                "SELECT channel, added_at FROM rooms WHERE added_by = ?", (participant_id,)
            ),
            "blocks": self._all(
                "SELECT until, at FROM blocks WHERE participant_id = ?", (participant_id,)
            ),
            "told_of_forwarded_summaries": self._all(
                "SELECT summary_id, at FROM notified WHERE participant_id = ?", (participant_id,)
            ),
            "web_page": self._all(
                "SELECT at, side, message FROM web_lines WHERE participant_id = ? ORDER BY id",
                (participant_id,),
            ),
        }

    def erase_participant(self, participant_id: str) -> dict[str, int]:
        """Delete every row of a participant, and others' support of their ideas (GDPR Art. 17)."""
        counts = {}
        their_ideas = [
            row["id"]
            for row in self._all("SELECT id FROM ideas WHERE participant_id = ?", (participant_id,))
        ]
        counts["summaries_unforwarded"] = self.drop_unforwarded_summaries(their_ideas)
        counts["supports_of_their_ideas"] = self.db.execute(
            "DELETE FROM supports WHERE idea_id IN (SELECT id FROM ideas WHERE participant_id = ?)",
            (participant_id,),
        ).rowcount
        for table in PARTICIPANT_TABLES:
            column = "id" if table == "participants" else "participant_id"
            counts[table] = self.db.execute(
                f"DELETE FROM {table} WHERE {column} = ?", (participant_id,)
            ).rowcount
        # They no longer lead a workshop or count as who brought the bot into a group.
        counts["workshops_led"] = self.db.execute(
            "UPDATE workshops SET facilitator = NULL WHERE facilitator = ?", (participant_id,)
        ).rowcount
        counts["rooms_added"] = self.db.execute(
            "UPDATE rooms SET added_by = NULL WHERE added_by = ?", (participant_id,)
        ).rowcount
        # Their group memberships went with their ideas; a group they alone made goes too.
        counts["clusters"] = self._drop_empty_clusters(keep_named=False)
        return counts
