"""The data-access layer: one class, plain SQL on the hot path, sqlite-utils for the schema.

Writes go through `transaction()` (BEGIN IMMEDIATE … COMMIT) so the engine can save a
conversation step together with the idea it created, or neither. `Store` opens the file and
brings its schema up to date; what it keeps is read and written by one mixin a concern:
conversations.py (conversations, delivery, the web chat's lines), ideas.py (participants,
ideas, review), groups.py (groups of similar ideas, the NLP's cache), workshops.py,
privacy.py (blocks, retention, data subject rights) and staff.py (accounts, the audit log's
pages, summaries), all on records.py's connection helpers.
"""

import os
import sqlite3
import threading
import time
from pathlib import Path

from mitreden.store.conversations import ConversationRecords
from mitreden.store.ideas import IdeaRecords
from mitreden.store.privacy import PrivacyRecords
from mitreden.store.readings import ReadingRecords
from mitreden.store.records import StoreError, StoreUnavailable
from mitreden.store.schema import MIGRATIONS
from mitreden.store.workshops import WorkshopRecords

# How long a statement waits for another connection's write lock before the database counts
# as locked (SQLITE_BUSY).
BUSY_SECONDS = 5.0


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


class Store(ConversationRecords, IdeaRecords, ReadingRecords, WorkshopRecords, PrivacyRecords):
    """The whole store: one connection, its migrations, and each concern's methods (the
    mixins of store/, one module a concern; privacy's brings groups' and staff's)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            _owner_only(self.path)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_SECONDS
            )
            # sqlite3's own connection: sqlite-utils' Database (which imports pandas when it is
            # installed) is made only while migrations run, sparing every command 90-240 ms.
            self.db = conn
            # As sqlite-utils set it, for the triggers: a REPLACE's delete fires them too.
            self.db.execute("PRAGMA recursive_triggers=on")
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
        self.db.close()

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
        import sqlite_utils
        # SQLite's way to rebuild a table: references are switched off while a migration runs
        # (it cannot be switched inside a transaction) and checked before it commits.
        self.db.execute("PRAGMA foreign_keys=OFF")
        try:
            with self.transaction():
                version = self._version()
                for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                    migration(sqlite_utils.Database(self.db))
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
