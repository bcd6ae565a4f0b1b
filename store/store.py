"""The data-access layer: one class, plain SQL on the hot path, sqlite-utils for the schema.

Writes go through `transaction()` (BEGIN IMMEDIATE … COMMIT) so the engine can save a
conversation step together with the idea it created, or neither.
"""

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from mitreden.errors import OperatorError
from mitreden.store.chunks import in_chunks
from mitreden.store.schema import MIGRATIONS
from mitreden.store.staff import StaffRecords

# Tables holding a participant's rows, in an order that respects the foreign keys.
# How many lines of a web conversation are kept to rebuild its page.
WEB_LINES = 60
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
# A reply queued in the outbox (`post`, `post_many`).
_POST = (
    "INSERT INTO outbox (channel, address, edit_key, participant_id, message, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# How long a statement waits for another connection's write lock before the database counts
# as locked (SQLITE_BUSY).
BUSY_SECONDS = 5.0
# What the author's new words for an idea replace (`replace_text`).
TEXT_COLUMNS = frozenset(
    {"text", "findings", "kept", "embedding", "suggested_field", "suggested_score", "updated_at"}
)
# What the conversation may change on an idea after it was written.
IDEA_COLUMNS = frozenset(
    {"confirmed_field", "district", "age_band", "actor_group", "notify", "updated_at"}
)


class StoreError(OperatorError):
    """The database cannot be opened or is from a newer mitreden."""


class StoreUnavailable(StoreError):
    """The database cannot be written just now (full disk, read-only, locked, I/O error).

    No message is at fault, so none is answered or acknowledged: the platform delivers it
    again once the operator has fixed the database."""


# SQLite's primary result codes that mean the file or disk, not the statement, failed.
UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)


def unavailable(err: BaseException) -> StoreUnavailable | None:
    """The database failure behind `err` as a StoreUnavailable, or None if it is none."""
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(err, sqlite3.Error) and code is not None and code & 0xFF in UNAVAILABLE_CODES:
        return StoreUnavailable(f"the database cannot be written: {err}")
    return None


def _owner_only(path: Path) -> None:
    """Create the database file readable by its owner only (0600), in a folder made 0700 if it
    is new; SQLite gives its -wal and -shm files the database's mode. An existing file is
    narrowed to 0600 too."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    _chmod_owner_only(path)


def _chmod_owner_only(path: Path) -> None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except FileNotFoundError:
        pass


@dataclass
class Conversation:
    participant_id: str
    step: str
    language: str
    data: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    updated_at: str = ""


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class Store(StaffRecords):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            _owner_only(self.path)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_SECONDS
            )
            self.db = sqlite_utils.Database(conn)
            # First of all, so that every later statement waits for another process's write
            # (another mitreden starting on the same file) instead of failing at once.
            self.db.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            # Deleted rows are overwritten with zeros, so erased words do not linger in free pages.
            self.db.execute("PRAGMA secure_delete=ON")
            self._write_ahead_log()
            for companion in ("-wal", "-shm"):  # made by an older mitreden, or another tool
                _chmod_owner_only(self.path.with_name(self.path.name + companion))
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot open the database {self.path}: {err}") from err
        except OSError as err:  # its folder cannot be made: a read-only or full file system
            raise StoreError(f"cannot open the database {self.path}: {err}") from err

    def close(self) -> None:
        self.db.conn.close()

    def checkpoint(self, tries: int = 20) -> bool:
        """Copy the write-ahead log into the database and empty it, so words just erased (with
        secure_delete, zeroed in the database) leave no old page behind in the log file.

        Another connection's read (the regroup job) can hold part of the log for a moment, so
        this tries a few times; False if it never got through (the next checkpoint will)."""
        for _ in range(tries):
            with self._lock:
                busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                return True
            time.sleep(0.01)
        return False

    def _write_ahead_log(self) -> None:
        """Switch to write-ahead logging (readers never block the writer). On a brand-new file
        that another process switches at the same moment, SQLite may report the database
        locked at once instead of waiting; the switch is tried again until the busy timeout."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                busy = getattr(err, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self) -> None:
        """Bring the schema up to date, once, however many processes open the file together.

        The write lock is taken before the version is read, so a second process starting on
        a new file waits for the first and then finds nothing left to do. The version read
        without the lock first spares an up-to-date database (the usual case) that lock."""
        if self._version() == len(MIGRATIONS):
            return
        # SQLite's way to rebuild a table: references are switched off while a migration runs
        # (it cannot be switched inside a transaction) and checked before it commits.
        self.db.execute("PRAGMA foreign_keys=OFF")
        try:
            with self.transaction():
                version = self._version()
                for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                    migration(self.db)
                    broken = self.db.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StoreError(f"migration {number} broke references: {broken[:3]}")
                    self.db.execute(f"PRAGMA user_version={number}")
        finally:
            self.db.execute("PRAGMA foreign_keys=ON")

    def _version(self) -> int:
        """How many migrations the file has had; one from a newer mitreden is refused."""
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this mitreden "
                f"knows ({len(MIGRATIONS)}); upgrade mitreden"
            )
        return version

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

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
        self.db.conn.executemany(
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
        if isinstance(columns.get("embedding"), np.ndarray):
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
        if isinstance(columns.get("embedding"), np.ndarray):
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
        cursor = self.db.execute(
            "SELECT id, participant_id, suggested_field, confirmed_field, embedding "
            "FROM ideas WHERE embedding IS NOT NULL ORDER BY id"
        )
        return [(i, p, s, c, from_blob(e)) for i, p, s, c, e in cursor]

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

    def supporters(self) -> dict[int, set[str]]:
        """Who pressed "me too", per idea."""
        result: dict[int, set[str]] = {}
        for participant_id, idea_id in self.db.execute(
            "SELECT participant_id, idea_id FROM supports"
        ):
            result.setdefault(idea_id, set()).add(participant_id)
        return result

    def add_support(self, participant_id: str, idea_id: int, now: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO supports VALUES (?, ?, ?)", (participant_id, idea_id, now)
        )

    # groups of similar ideas (see nlp/clusters.py)

    def cluster_run_id(self) -> int:
        """The latest full recompute; 0 before the first."""
        row = self.db.execute("SELECT max(id) FROM cluster_runs").fetchone()
        return row[0] or 0

    def grouped_state(self) -> str | None:
        """The state the latest full recompute grouped (see `ClusterBook.state`); None before
        the first, or when it ran before states were kept."""
        row = self.db.execute("SELECT state FROM cluster_runs ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def fences(self) -> dict[str, float]:
        cursor = self.db.execute("SELECT lane, fence FROM lanes WHERE fence IS NOT NULL")
        return dict(cursor.fetchall())

    def clusters(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM clusters ORDER BY id")

    def memberships(self) -> list[tuple[int, int, str, int | None]]:
        """(idea, cluster, lane, duplicate_of) of every grouped idea."""
        cursor = self.db.execute(
            "SELECT m.idea_id, m.cluster_id, c.lane, m.duplicate_of FROM cluster_members m "
            "JOIN clusters c ON c.id = m.cluster_id ORDER BY m.idea_id"
        )
        return cursor.fetchall()

    def ideas_state(self) -> tuple:
        """Changes when ideas are added, edited or erased: the regroup job's cue."""
        return self.db.execute("SELECT count(*), max(id), max(updated_at) FROM ideas").fetchone()

    def vectors(self, idea_ids: list[int]) -> dict[int, np.ndarray]:
        found = {}
        for chunk, marks in in_chunks(idea_ids):
            cursor = self.db.execute(
                f"SELECT id, embedding FROM ideas WHERE embedding IS NOT NULL AND id IN ({marks})",
                chunk,
            )
            found.update({i: from_blob(e) for i, e in cursor})
        return found

    def new_cluster(self, lane: str, now: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO clusters (lane, created_at, updated_at) VALUES (?, ?, ?)",
            (lane, now, now),
        )
        return cursor.lastrowid

    def set_membership(
        self, idea_id: int, cluster_id: int, duplicate_of: int | None, placed_at: str | None = None
    ) -> None:
        """Put an idea in a group; `placed_at` when a moderator chose the group, so that
        regroupings leave it there."""
        self.db.execute(
            "INSERT OR REPLACE INTO cluster_members (idea_id, cluster_id, duplicate_of, placed_at) "
            "VALUES (?, ?, ?, ?)",
            (idea_id, cluster_id, duplicate_of, placed_at),
        )

    def placed_ideas(self) -> set[int]:
        """Ideas a moderator put in their group (`set_membership(..., placed_at=...)`)."""
        cursor = self.db.execute("SELECT idea_id FROM cluster_members WHERE placed_at IS NOT NULL")
        return {row[0] for row in cursor}

    def drop_membership(self, idea_id: int) -> None:
        """Take an idea out of its group; a group left empty goes unless a moderator named it."""
        self.db.execute("DELETE FROM cluster_members WHERE idea_id = ?", (idea_id,))
        self.db.execute(
            "UPDATE cluster_members SET duplicate_of = NULL WHERE duplicate_of = ?", (idea_id,)
        )
        self._drop_empty_clusters(keep_named=True)

    def _drop_empty_clusters(self, keep_named: bool) -> int:
        sql = "DELETE FROM clusters WHERE id NOT IN (SELECT cluster_id FROM cluster_members)"
        if keep_named:
            sql += (
                " AND custom_label IS NULL AND id NOT IN "
                "(SELECT merged_into FROM clusters WHERE merged_into IS NOT NULL)"
            )
        return self.db.execute(sql).rowcount

    def save_grouping(
        self,
        groups: list[tuple[int | None, str, list[tuple[int, int | None]]]],
        fences: dict[str, float | None],
        run: dict[str, Any],
    ) -> None:
        """Replace the grouping with a full recompute's, in one transaction.

        `groups` holds (inherited id or None, lane, [(idea, duplicate_of)]); ideas a
        moderator placed are not in it and keep their group. Ideas and groups erased while
        the recompute ran are skipped; ideas that arrived meanwhile keep their
        membership if their group survived and are grouped again by the caller otherwise.
        """
        now = run["at"]
        with self.transaction():
            alive = {row[0] for row in self.db.execute("SELECT id FROM ideas")}
            alive -= self.placed_ideas()  # placed by a moderator while the recompute ran
            existing = {row[0] for row in self.db.execute("SELECT id FROM clusters")}
            grouped = [idea for _, _, members in groups for idea, _ in members if idea in alive]
            for chunk, marks in in_chunks(grouped):
                self.db.execute(f"DELETE FROM cluster_members WHERE idea_id IN ({marks})", chunk)
            rows: list[tuple[int, int, int | None]] = []
            for inherited, lane, members in groups:
                members = [(i, d if d in alive else None) for i, d in members if i in alive]
                if not members:
                    continue
                if inherited is None or inherited not in existing:  # new, or emptied meanwhile
                    cluster_id = self.new_cluster(lane, now)
                else:
                    cluster_id = inherited
                    self.db.execute(
                        "UPDATE clusters SET updated_at = ? WHERE id = ?", (now, cluster_id)
                    )
                rows.extend((idea, cluster_id, dup) for idea, dup in members)
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO cluster_members (idea_id, cluster_id, duplicate_of) "
                "VALUES (?, ?, ?)",
                rows,
            )
            self._drop_empty_clusters(keep_named=False)
            self.db.execute("DELETE FROM lanes")
            self.db.conn.executemany("INSERT INTO lanes VALUES (?, ?)", list(fences.items()))
            self.db.execute(
                "INSERT INTO cluster_runs (at, model, ideas, clusters, kept_ids, seconds, state) "
                "VALUES (:at, :model, :ideas, :clusters, :kept_ids, :seconds, :state)",
                run,
            )
            detail = {k: v for k, v in run.items() if k not in ("at", "state")}
            self.audit(now, "system", "clusters.recomputed", **detail)

    def rename_cluster(self, cluster_id: int, label: str | None, actor: str, now: str) -> None:
        """A moderator's own label for a group; None goes back to the keywords."""
        with self.transaction():
            self._cluster_exists(cluster_id)
            self.db.execute(
                "UPDATE clusters SET custom_label = ?, updated_at = ? WHERE id = ?",
                (label, now, cluster_id),
            )
            self.audit(now, actor, "cluster.renamed", f"cluster:{cluster_id}", label=label)

    def merge_cluster(self, source: int, target: int | None, actor: str, now: str) -> None:
        """Show group `source` as part of `target`; None undoes the merge."""
        with self.transaction():
            self._cluster_exists(source)
            if target is not None:
                self._cluster_exists(target)
                while (
                    row := self._one("SELECT merged_into FROM clusters WHERE id = ?", (target,))
                ) and row["merged_into"] is not None:
                    target = row["merged_into"]
                if target == source:
                    raise StoreError("a group cannot be merged into itself")
                # Merges chain to the final target, so a group is never shown twice.
                self.db.execute(
                    "UPDATE clusters SET merged_into = ? WHERE merged_into = ?", (target, source)
                )
            self.db.execute(
                "UPDATE clusters SET merged_into = ?, updated_at = ? WHERE id = ?",
                (target, now, source),
            )
            self.audit(now, actor, "cluster.merged", f"cluster:{source}", into=target)

    def _cluster_exists(self, cluster_id: int) -> None:
        if self._one("SELECT id FROM clusters WHERE id = ?", (cluster_id,)) is None:
            raise StoreError(f"there is no group {cluster_id}")

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

    # audit

    def audit(self, at: str, actor: str, action: str, subject: str = "", /, **detail: Any) -> None:
        self.db.execute(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
            (at, actor, action, subject, json.dumps(detail, ensure_ascii=False)),
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

    # a channel's place in its platform's event stream

    def cursor(self, channel: str) -> str | None:
        row = self._one("SELECT cursor FROM cursors WHERE channel = ?", (channel,))
        return None if row is None else row["cursor"]

    def set_cursor(self, channel: str, cursor: str, now: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (channel, cursor, now))

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

    # cache of shipped-text embeddings

    def cached_vectors(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for chunk, marks in in_chunks(hashes):
            cursor = self.db.execute(
                f"SELECT text_hash, vector FROM text_embeddings "
                f"WHERE model = ? AND text_hash IN ({marks})",
                (model, *chunk),
            )
            found.update({h: from_blob(v) for h, v in cursor})
        return found

    def cache_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO text_embeddings VALUES (?, ?, ?)",
                [(model, h, to_blob(v)) for h, v in vectors.items()],
            )
