"""What a conversation leaves in the store: its state, the platform messages already handled,
the replies queued to send, a channel's place in its platform's stream, and the web chat's
lines. A mixin of `Store`; every method runs inside the caller's transaction when it writes.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mitreden.store.records import Records

# How many lines of a web conversation are kept to rebuild its page.
WEB_LINES = 60
# A reply queued in the outbox (`post`, `post_many`).
_POST = (
    "INSERT INTO outbox (channel, address, edit_key, participant_id, message, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass
class Conversation:
    participant_id: str
    step: str
    language: str
    data: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    updated_at: str = ""


class ConversationRecords(Records):
    """Store methods for the engine's conversations and the channels' delivery."""

    # conversations

    def conversation(self, participant_id: str) -> Conversation | None:
        row = self._one("SELECT * FROM conversations WHERE participant_id = ?", (participant_id,))
        if row is None:
            return None
        row["data"] = json.loads(row["data"])
        return Conversation(**row)

    def save_conversation(self, conv: Conversation) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
            (
                conv.participant_id,
                conv.step,
                conv.language,
                json.dumps(conv.data, ensure_ascii=False),
                conv.started_at,
                conv.updated_at,
            ),
        )

    # deliveries

    def first_delivery(
        self, channel: str, key: str, now: str, outcome: str = "handled", keep_days: int = 7
    ) -> bool:
        """Record a platform message id; False if it was recorded before (a redelivery).

        Ids older than `keep_days` are dropped: no platform redelivers that late.
        """
        cutoff = (datetime.fromisoformat(now) - timedelta(days=keep_days)).isoformat()
        self.db.execute("DELETE FROM deliveries WHERE at < ?", (cutoff,))
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO deliveries (channel, key, at, outcome) VALUES (?, ?, ?, ?)",
            (channel, key, now, outcome),
        )
        return cursor.rowcount == 1

    def failed_deliveries(self, channel: str) -> list[str]:
        """Keys of messages whose handling raised: answered with an apology, never again."""
        cursor = self.db.execute(
            "SELECT key FROM deliveries WHERE channel = ? AND outcome = 'failed' ORDER BY at",
            (channel,),
        )
        return [row[0] for row in cursor]

    # outbox

    def post(
        self,
        channel: str,
        address: str | None,
        message: str,
        now: str,
        participant_id: str | None = None,
        edit_key: str | None = None,
    ) -> int:
        """Queue a reply (serialised by the caller) to be sent after the transaction commits."""
        cursor = self.db.execute(_POST, (channel, address, edit_key, participant_id, message, now))
        return cursor.lastrowid

    def post_many(self, replies: list[tuple[str, str | None, str, str | None]], now: str) -> None:
        """Queue many replies at once, each (channel, address, message, participant_id): the
        notices of a forwarded summary, thousands in one statement."""
        self.db.executemany(
            _POST,
            [
                (channel, address, None, who, message, now)
                for channel, address, message, who in replies
            ],
        )

    def unsent(self, channel: str) -> list[dict[str, Any]]:
        """Replies of a channel not yet (fully) sent, oldest first."""
        return self._all("SELECT * FROM outbox WHERE channel = ? ORDER BY id", (channel,))

    def sent(self, outbox_id: int, parts: int, done: bool) -> None:
        """`parts` pieces of a reply are out; a finished reply leaves the outbox."""
        if done:
            self.db.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
        else:
            self.db.execute("UPDATE outbox SET parts_sent = ? WHERE id = ?", (parts, outbox_id))

    # a channel's place in its platform's event stream

    def cursor(self, channel: str) -> str | None:
        row = self._one("SELECT cursor FROM cursors WHERE channel = ?", (channel,))
        return None if row is None else row["cursor"]

    def set_cursor(self, channel: str, cursor: str, now: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (channel, cursor, now))

    # the web chat's page

    def web_lines(self, participant_id: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT id, at, side, message FROM web_lines WHERE participant_id = ? ORDER BY id",
            (participant_id,),
        )

    def add_web_line(self, participant_id: str, at: str, side: str, message: str) -> None:
        """Add a line to a browser's conversation, keeping the last WEB_LINES."""
        self.db.execute(
            "INSERT INTO web_lines (participant_id, at, side, message) VALUES (?, ?, ?, ?)",
            (participant_id, at, side, message),
        )
        self.db.execute(
            "DELETE FROM web_lines WHERE participant_id = ? AND id NOT IN "
            "(SELECT id FROM web_lines WHERE participant_id = ? ORDER BY id DESC LIMIT ?)",
            (participant_id, participant_id, WEB_LINES),
        )

    def outbox_onto_pages(self, channel: str, now: str) -> int:
        """Move a channel's queued messages that carry no file onto their pages as the bot's
        lines, keeping the last WEB_LINES of each page; how many moved. Set-based, so the
        23,000 notices of a forwarded field take a tenth of a second of the engine's thread,
        not the 0.6 s of reading, writing and trimming each one; the web chat's
        `_write` does the same for one message, and for a message with a file."""
        plain = "channel = ? AND json_type(message, '$.attachment') IS NULL"
        upto = self.db.execute(f"SELECT max(id) FROM outbox WHERE {plain}", (channel,))
        last = upto.fetchone()[0]
        if last is None:
            return 0
        queued = f"FROM outbox WHERE {plain} AND id <= ?"
        self.db.execute(
            "INSERT INTO web_lines (participant_id, at, side, message) "
            f"SELECT coalesce(address, ''), ?, 'bot', message {queued} ORDER BY id",
            (now, channel, last),
        )
        self.db.execute(
            "DELETE FROM web_lines WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY participant_id ORDER BY id DESC) AS newer FROM web_lines "
            f"WHERE participant_id IN (SELECT coalesce(address, '') {queued})) WHERE newer > ?)",
            (channel, last, WEB_LINES),
        )
        return self.db.execute(f"DELETE {queued}", (channel, last)).rowcount

    def add_web_code(self, code_hash: str, participant_id: str, expires_at: str) -> None:
        """A new one-time code for a participant; an older one of theirs stops working."""
        self.db.execute("DELETE FROM web_codes WHERE participant_id = ?", (participant_id,))
        self.db.execute(
            "INSERT INTO web_codes (code_hash, participant_id, expires_at) VALUES (?, ?, ?)",
            (code_hash, participant_id, expires_at),
        )

    def take_web_code(self, code_hash: str, now: str) -> str | None:
        """The participant a code belongs to, if it has not expired; either way it is used up
        (and every expired code goes)."""
        self.db.execute("DELETE FROM web_codes WHERE expires_at <= ?", (now,))
        row = self._one("SELECT participant_id FROM web_codes WHERE code_hash = ?", (code_hash,))
        self.db.execute("DELETE FROM web_codes WHERE code_hash = ?", (code_hash,))
        return row["participant_id"] if row else None
