"""What the store keeps for staff work: accounts and sessions, the review queue, the audit
log's pages, summaries moderators edit, and whom a forwarded summary was announced to.

A mixin of `Store`, kept apart so the residents' side of the store stays readable on its own.
Every method runs inside the caller's transaction when it writes.
"""

import json
from typing import Any

from mitreden.store.chunks import in_chunks
from mitreden.store.records import Records

# The columns of an idea that staff pages show: never the embedding, never the participant.
QUEUE_COLUMNS = (
    "ideas.id, ideas.text, ideas.findings, ideas.kept, ideas.language, ideas.suggested_field, "
    "ideas.suggested_score, ideas.confirmed_field, ideas.district, ideas.age_band, "
    "ideas.actor_group, ideas.created_at, ideas.updated_at, ideas.review, ideas.review_reason, "
    "ideas.review_note, ideas.duplicate_of, ideas.purged_at, ideas.workshop_id, "
    "(SELECT channel FROM participants WHERE id = ideas.participant_id) AS channel, "
    "(SELECT count(*) FROM supports WHERE idea_id = ideas.id) AS supporters, "
    "(SELECT cluster_id FROM cluster_members WHERE idea_id = ideas.id) AS cluster_id"
)


class StaffRecords(Records):
    """Store methods for the staff service (mitreden/staff/)."""

    # accounts and sessions

    def add_staff(self, name: str, role: str, password_hash: str, now: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO staff (name, role, password_hash, created_at, sessions_from) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, role, password_hash, now, now),
        )
        return cursor.lastrowid

    def staff_member(self, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM staff WHERE name = ?", (name,))

    def staff_by_id(self, staff_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM staff WHERE id = ?", (staff_id,))

    def staff_members(self) -> list[dict[str, Any]]:
        return self._all("SELECT id, name, role, created_at, disabled_at FROM staff ORDER BY name")

    def update_staff(self, staff_id: int, **columns: Any) -> None:
        allowed = {"role", "password_hash", "disabled_at", "sessions_from"}
        if not columns or set(columns) - allowed:
            raise ValueError(f"cannot update staff columns {sorted(set(columns) - allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.db.execute(
            f"UPDATE staff SET {assignments} WHERE id = ?", (*columns.values(), staff_id)
        )

    def add_session(self, token_hash: str, staff_id: int, now: str) -> None:
        self.db.execute(
            "INSERT INTO staff_sessions (token_hash, staff_id, created_at, seen_at) "
            "VALUES (?, ?, ?, ?)",
            (token_hash, staff_id, now, now),
        )

    def session(self, token_hash: str) -> dict[str, Any] | None:
        """A session with its account's name, role and state."""
        return self._one(
            "SELECT s.token_hash, s.staff_id, s.created_at, s.seen_at, st.name, st.role, "
            "st.disabled_at, st.sessions_from FROM staff_sessions s "
            "JOIN staff st ON st.id = s.staff_id WHERE s.token_hash = ?",
            (token_hash,),
        )

    def touch_session(self, token_hash: str, now: str) -> None:
        self.db.execute(
            "UPDATE staff_sessions SET seen_at = ? WHERE token_hash = ?", (now, token_hash)
        )

    def drop_session(self, token_hash: str) -> None:
        self.db.execute("DELETE FROM staff_sessions WHERE token_hash = ?", (token_hash,))

    def drop_sessions(self, staff_id: int | None = None, before: str | None = None) -> int:
        """An account's sessions (log out everywhere), or every session last seen before."""
        params: tuple[Any, ...]
        if staff_id is not None:
            sql, params = "DELETE FROM staff_sessions WHERE staff_id = ?", (staff_id,)
        else:
            sql, params = "DELETE FROM staff_sessions WHERE seen_at < ?", (before,)
        return self.db.execute(sql, params).rowcount

    # the review queue

    def review_queue(
        self, states: tuple[str, ...], lane: str | None = None, limit: int = 50, after: int = 0
    ) -> list[dict[str, Any]]:
        """Ideas in one of `states`, oldest first, from id `after` on; `lane` narrows to one
        action field (confirmed, else suggested)."""
        marks = ", ".join("?" for _ in states)
        sql = f"SELECT {QUEUE_COLUMNS} FROM ideas WHERE review IN ({marks}) AND id > ?"
        params: tuple = (*states, after)
        if lane is not None:
            sql += " AND coalesce(confirmed_field, suggested_field) = ?"
            params += (lane,)
        return self._all(sql + " ORDER BY id LIMIT ?", (*params, limit))

    def review_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT review, count(*) FROM ideas GROUP BY review"))

    def staff_idea(self, idea_id: int) -> dict[str, Any] | None:
        """One idea as staff see it (no participant, no embedding)."""
        return self._one(f"SELECT {QUEUE_COLUMNS} FROM ideas WHERE id = ?", (idea_id,))

    def forwarded_ideas(self, idea_ids: list[int]) -> list[dict[str, Any]]:
        """The ideas a forwarded summary holds, in the order of `idea_ids`, with their
        channel, supporters and group label; rejected ideas and ids with no idea are left
        out. One statement with the ids as one JSON parameter: a field can hold more ideas
        than SQLite takes parameters (see store/chunks.py), and 100,000 ideas were read in
        chunks with a lookup per group before."""
        return self._all(
            "SELECT i.id, i.text, i.findings, i.language, i.suggested_field, i.confirmed_field, "
            "i.district, i.age_band, i.actor_group, i.created_at, i.review, p.channel, "
            "(SELECT count(*) FROM supports s WHERE s.idea_id = i.id) AS supporters, "
            "m.cluster_id, c.custom_label AS group_label "
            "FROM json_each(?) AS wanted JOIN ideas i ON i.id = wanted.value "
            "LEFT JOIN participants p ON p.id = i.participant_id "
            "LEFT JOIN cluster_members m ON m.idea_id = i.id "
            "LEFT JOIN clusters c ON c.id = m.cluster_id "
            "WHERE i.review != 'rejected' ORDER BY wanted.key",
            (json.dumps(idea_ids),),
        )

    def reach_rows(self, idea_ids: list[int] | None = None) -> list[tuple]:
        """(participant, district, age band, actor group, language, day, channel) of every
        idea but the rejected ones, or of those of `idea_ids` (a summary's, as one JSON
        parameter: see store/chunks.py); no text. For the reach figures
        (mitreden/staff/reach.py), which count them in Python: one read of the ideas, where a
        GROUP BY per figure read every idea's row again."""
        sql = (
            "SELECT i.participant_id, i.district, i.age_band, i.actor_group, i.language, "
            "substr(i.created_at, 1, 10), p.channel "
            "FROM ideas i JOIN participants p ON p.id = i.participant_id "
            "WHERE i.review != 'rejected'"
        )
        if idea_ids is None:
            return self.db.execute(sql).fetchall()
        sql += " AND i.id IN (SELECT value FROM json_each(?))"
        return self.db.execute(sql, (json.dumps(idea_ids),)).fetchall()

    def ideas_in(self, cluster_ids: list[int], limit: int = 500) -> list[dict[str, Any]]:
        if not cluster_ids:
            return []
        marks = ", ".join("?" for _ in cluster_ids)
        return self._all(
            f"SELECT {QUEUE_COLUMNS} FROM ideas WHERE id IN (SELECT idea_id FROM "
            f"cluster_members WHERE cluster_id IN ({marks})) ORDER BY id LIMIT ?",
            (*cluster_ids, limit),
        )

    def decide(
        self, idea_id: int, review: str, reason: str | None, note: str | None, now: str
    ) -> dict[str, Any] | None:
        """Set an idea's review state with its reason; the idea's review columns before, or
        None if there is no such idea."""
        row = self._one(
            "SELECT review, review_reason, review_note, duplicate_of FROM ideas WHERE id = ?",
            (idea_id,),
        )
        if row is not None:
            self.db.execute(
                "UPDATE ideas SET review = ?, review_reason = ?, review_note = ?, "
                "updated_at = ? WHERE id = ?",
                (review, reason, note, now, idea_id),
            )
        return row

    def mark_duplicate(self, idea_id: int, of: int | None) -> None:
        self.db.execute("UPDATE ideas SET duplicate_of = ? WHERE id = ?", (of, idea_id))

    # the audit log

    def audit_entries(
        self,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest entries first, filtered by actor, action prefix and subject."""
        params: tuple[Any, ...]
        sql, params = "SELECT * FROM audit WHERE 1", ()
        if actor:
            sql, params = sql + " AND actor = ?", (*params, actor)
        if action:
            sql, params = sql + " AND action LIKE ? ESCAPE '\\'", (*params, _prefix(action))
        if subject:
            sql, params = sql + " AND subject = ?", (*params, subject)
        if before:
            sql, params = sql + " AND id < ?", (*params, before)
        rows = self._all(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        for row in rows:
            row["detail"] = json.loads(row["detail"] or "{}")
        return rows

    def audit_actions(self) -> list[str]:
        return [a for (a,) in self.db.execute("SELECT DISTINCT action FROM audit ORDER BY 1")]

    # summaries moderators edit, approve and forward

    def add_summary(
        self, lane: str, language: str, text: str, idea_ids: list[int], actor: str, now: str
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO summaries (lane, language, text, idea_ids, state, created_by, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'draft', ?, ?, ?)",
            (lane, language, text, json.dumps(idea_ids), actor, now, now),
        )
        return cursor.lastrowid

    def summary(self, summary_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM summaries WHERE id = ?", (summary_id,))
        if row is not None:
            row["idea_ids"] = json.loads(row["idea_ids"])
        return row

    def summaries_of(self, lane: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest summaries, of one lane or all."""
        params: tuple[Any, ...]
        sql, params = "SELECT * FROM summaries", ()
        if lane is not None:
            sql, params = sql + " WHERE lane = ?", (lane,)
        rows = self._all(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        for row in rows:
            row["idea_ids"] = json.loads(row["idea_ids"])
        return rows

    def update_summary(self, summary_id: int, **columns: Any) -> None:
        allowed = {"text", "state", "updated_at", "approved_by", "approved_at", "forwarded_at"}
        if not columns or set(columns) - allowed:
            raise ValueError(f"cannot update summary columns {sorted(set(columns) - allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.db.execute(
            f"UPDATE summaries SET {assignments} WHERE id = ?", (*columns.values(), summary_id)
        )

    def drop_unforwarded_summaries(self, idea_ids: list[int]) -> int:
        """Summaries not yet forwarded that hold one of these ideas (their author erased
        them): a moderator builds the draft again, without those words."""
        if not idea_ids:
            return 0
        marks = ", ".join("?" for _ in idea_ids)
        doomed = [
            sid
            for (sid,) in self.db.execute(
                "SELECT DISTINCT s.id FROM summaries s, json_each(s.idea_ids) j "
                f"WHERE s.forwarded_at IS NULL AND j.value IN ({marks})",
                tuple(idea_ids),
            )
        ]
        for sid in doomed:
            self.db.execute("UPDATE dispatches SET summary_id = NULL WHERE summary_id = ?", (sid,))
            self.db.execute("DELETE FROM notified WHERE summary_id = ?", (sid,))
            self.db.execute("DELETE FROM summaries WHERE id = ?", (sid,))
        return len(doomed)

    # groups, as staff see them

    def lane_idea_ids(self, lane: str) -> list[int]:
        """Ideas a summary of `lane` speaks for: those in its groups, and those of its field
        in no group yet; rejected ones never."""
        return [
            i
            for (i,) in self.db.execute(
                "SELECT id FROM ideas WHERE review != 'rejected' AND (id IN (SELECT m.idea_id "
                "FROM cluster_members m JOIN clusters c ON c.id = m.cluster_id WHERE c.lane = ?) "
                "OR (id NOT IN (SELECT idea_id FROM cluster_members) "
                "AND coalesce(confirmed_field, suggested_field) = ?)) ORDER BY id",
                (lane, lane),
            )
        ]

    def group_trend(
        self, since: str, cluster_ids: list[int] | None = None
    ) -> dict[int, tuple[int, int]]:
        """Per group (of `cluster_ids`, or all): (ideas since `since`, ideas in all), rejected
        ones left out. Asking for a field's groups only saves reading every idea's row (a
        quarter of a second at 100,000 ideas)."""
        sql = (
            "SELECT m.cluster_id, sum(i.created_at >= ?), count(*) FROM cluster_members m "
            "JOIN ideas i ON i.id = m.idea_id WHERE i.review != 'rejected' {only}"
            "GROUP BY m.cluster_id"
        )
        if cluster_ids is None:
            rows = self.db.execute(sql.format(only=""), (since,)).fetchall()
        else:
            rows = []
            for chunk, marks in in_chunks(cluster_ids):
                only = f"AND m.cluster_id IN ({marks}) "
                rows += self.db.execute(sql.format(only=only), (since, *chunk)).fetchall()
        return {cid: (recent or 0, total) for cid, recent, total in rows}

    def cluster(self, cluster_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM clusters WHERE id = ?", (cluster_id,))

    def created_lanes(self) -> list[tuple[str, str]]:
        """(created_at, lane) of every idea not rejected: counts over time."""
        return self.db.execute(
            "SELECT i.created_at, coalesce(c.lane, i.confirmed_field, i.suggested_field, '') "
            "FROM ideas i LEFT JOIN cluster_members m ON m.idea_id = i.id "
            "LEFT JOIN clusters c ON c.id = m.cluster_id WHERE i.review != 'rejected'"
        ).fetchall()

    def link_dispatch(self, dispatch_id: int, summary_id: int) -> None:
        """The strategy room gets this approved summary's text, not a fresh one."""
        self.db.execute(
            "UPDATE dispatches SET summary_id = ? WHERE id = ?", (summary_id, dispatch_id)
        )

    # closing the loop

    def to_notify(self, idea_ids: list[int], summary_id: int) -> list[dict[str, Any]]:
        """Authors of these ideas who asked to hear back, have a contact and were not told
        about this summary yet: participant, channel, address, language, their idea ids. An
        idea rejected since the draft was made is not forwarded, so its author is not told."""
        # The ids as one JSON parameter: a field can hold more ideas than SQLite takes
        # parameters (see store/chunks.py), and grouping by person forbids asking in chunks.
        rows = self._all(
            "SELECT i.participant_id, c.channel, c.address, i.language, "
            "group_concat(i.id) AS ideas FROM ideas i "
            "JOIN contacts c ON c.participant_id = i.participant_id "
            "WHERE i.id IN (SELECT value FROM json_each(?)) AND i.notify = 1 "
            "AND i.review != 'rejected' AND NOT EXISTS "
            "(SELECT 1 FROM notified n WHERE n.summary_id = ? "
            "AND n.participant_id = i.participant_id) "
            "GROUP BY i.participant_id ORDER BY min(i.id)",
            (json.dumps(idea_ids), summary_id),
        )
        for row in rows:
            row["ideas"] = [int(i) for i in row["ideas"].split(",")]
        return rows

    def add_notified(self, summary_id: int, participant_ids: list[str], now: str) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO notified VALUES (?, ?, ?)",
            [(summary_id, participant, now) for participant in participant_ids],
        )

    # following the audit log (a screen showing what was decided on another)

    def last_audit_id(self) -> int:
        """The newest entry's id, 0 for an empty log: where a new follower starts."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]

    def audit_after(
        self, after: int, actions: tuple[str, ...], limit: int = 100
    ) -> list[dict[str, Any]]:
        """Entries with one of `actions` (exact names) after id `after`, oldest first."""
        marks = ", ".join("?" for _ in actions)
        rows = self._all(
            f"SELECT * FROM audit WHERE id > ? AND action IN ({marks}) ORDER BY id LIMIT ?",
            (after, *actions, limit),
        )
        for row in rows:
            row["detail"] = json.loads(row["detail"] or "{}")
        return rows

    def review_post_of(self, channel: str, idea_id: int) -> str | None:
        """The message showing an idea in `channel`'s moderator room, the newest if several."""
        row = self._one(
            "SELECT message_key FROM review_posts WHERE channel = ? AND idea_id = ? "
            "ORDER BY posted_at DESC LIMIT 1",
            (channel, idea_id),
        )
        return None if row is None else row["message_key"]

    # summaries to forward to the strategy team

    def add_dispatch(self, field: str | None, language: str, requested_by: str, now: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO dispatches (field, language, requested_by, requested_at) "
            "VALUES (?, ?, ?, ?)",
            (field, language, requested_by, now),
        )
        return cursor.lastrowid

    def open_dispatches(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM dispatches WHERE sent_at IS NULL ORDER BY id")

    def dispatch(self, dispatch_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM dispatches WHERE id = ?", (dispatch_id,))

    def finish_dispatch(
        self, dispatch_id: int, now: str, message_key: str | None = None, error: str | None = None
    ) -> None:
        """Sent (with the message's id), or given up on (with why)."""
        self.db.execute(
            "UPDATE dispatches SET sent_at = ?, message_key = ?, error = ? WHERE id = ?",
            (now, message_key, error, dispatch_id),
        )


def _prefix(text: str) -> str:
    """A LIKE pattern matching `text` and anything after it, wildcards in it taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
