"""Group chats and the workshops held in them (see flows/workshop.py). A mixin of `Store`;
every method runs inside the caller's transaction when it writes.
"""

import json
from typing import Any

from mitreden.store.records import Records


class WorkshopRecords(Records):
    """Store methods for rooms, workshops and their polls."""

    # workshops in group chats (see flows/workshop.py)

    def add_room(self, channel: str, room: str, address: str, added_by: str, now: str) -> int:
        """Remember a group the bot was added to, and by whom: they may lead sessions there.

        Only the add that first brings the room to our notice names that person. Any member can
        remove the bot and add it again, so a later add changes nothing but the address; that
        holds too when the room was first seen through an admin's `/workshop`, and after the
        first adder's erasure cleared `added_by`. Leading then rests with the group's admins,
        as the platform reports them with each message (a group always has its creator)."""
        self.db.execute(
            "INSERT INTO rooms (channel, room, address, added_by, added_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, room) DO UPDATE SET address = excluded.address",
            (channel, room, address, added_by, now),
        )
        return self._room_id(channel, room)

    def room(self, channel: str, room: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM rooms WHERE channel = ? AND room = ?", (channel, room))

    def room_id(self, channel: str, room: str, address: str, now: str) -> int:
        """The room's row, made on first sight when nobody told us who added the bot."""
        self.db.execute(
            "INSERT OR IGNORE INTO rooms (channel, room, address, added_at) VALUES (?, ?, ?, ?)",
            (channel, room, address, now),
        )
        return self._room_id(channel, room)

    def _room_id(self, channel: str, room: str) -> int:
        """The id of a room row just written."""
        return self.db.execute(
            "SELECT id FROM rooms WHERE channel = ? AND room = ?", (channel, room)
        ).fetchone()[0]

    def start_workshop(
        self, room_id: int, title: str, code: str, language: str, facilitator: str, now: str
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO workshops (room_id, title, code, language, facilitator, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (room_id, title, code, language, facilitator, now),
        )
        return cursor.lastrowid

    def _workshops(self, where: str, params: tuple) -> list[dict[str, Any]]:
        return self._all(
            "SELECT w.*, r.channel, r.room, r.address, r.added_by FROM workshops w "
            f"JOIN rooms r ON r.id = w.room_id WHERE {where} ORDER BY w.id",
            params,
        )

    def running_workshop(self, channel: str, room: str) -> dict[str, Any] | None:
        found = self._workshops(
            "r.channel = ? AND r.room = ? AND w.ended_at IS NULL", (channel, room)
        )
        return found[-1] if found else None

    def workshop(self, workshop_id: int) -> dict[str, Any] | None:
        found = self._workshops("w.id = ?", (workshop_id,))
        return found[0] if found else None

    def workshop_by_code(self, code: str) -> dict[str, Any] | None:
        found = self._workshops("w.code = ?", (code,))
        return found[0] if found else None

    def end_workshop(self, workshop_id: int, now: str) -> None:
        self.db.execute("UPDATE workshops SET ended_at = ? WHERE id = ?", (now, workshop_id))

    def workshop_number(self, workshop_id: int, idea_id: int) -> int:
        """An idea's place in its workshop (1, 2, …): how the group refers to it, not by name."""
        return self.db.execute(
            "SELECT count(*) FROM ideas WHERE workshop_id = ? AND id <= ?", (workshop_id, idea_id)
        ).fetchone()[0]

    def workshop_ideas(self, workshop_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM ideas WHERE workshop_id = ? ORDER BY id", (workshop_id,))

    def add_poll(self, workshop_id: int, options: list[list[int]], now: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO polls (workshop_id, options, created_at) VALUES (?, ?, ?)",
            (workshop_id, json.dumps(options), now),
        )
        return cursor.lastrowid

    def poll_posted(self, poll_id: int, poll_key: str, message_key: str) -> None:
        self.db.execute(
            "UPDATE polls SET poll_key = ?, message_key = ? WHERE id = ?",
            (poll_key, message_key, poll_id),
        )

    def count_poll(self, poll_key: str, counts: list[int]) -> bool:
        """Keep a poll's latest vote counts; False if the poll is not one of ours or closed."""
        cursor = self.db.execute(
            "UPDATE polls SET counts = ? WHERE poll_key = ? AND closed_at IS NULL",
            (json.dumps(counts), poll_key),
        )
        return cursor.rowcount == 1

    def polls(self, workshop_id: int) -> list[dict[str, Any]]:
        rows = self._all("SELECT * FROM polls WHERE workshop_id = ? ORDER BY id", (workshop_id,))
        for row in rows:
            row["options"] = json.loads(row["options"])
            row["counts"] = json.loads(row["counts"]) if row["counts"] else None
        return rows

    def close_poll(self, poll_id: int, now: str) -> None:
        self.db.execute(
            "UPDATE polls SET closed_at = ? WHERE id = ? AND closed_at IS NULL", (now, poll_id)
        )
