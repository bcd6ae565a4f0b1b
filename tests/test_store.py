"""The store on a real SQLite file: schema versions, atomic steps, the append-only audit log."""

import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import sqlite_utils

from mitreden.store import Store, StoreError
from mitreden.store.schema import MIGRATIONS


def test_new_database_is_at_the_latest_schema_with_wal(db_path) -> None:
    store = Store(db_path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    Store(db_path)  # reopening runs nothing twice
    assert Store(db_path).schema_version == len(MIGRATIONS)


def test_database_from_a_newer_mitreden_is_refused(db_path) -> None:
    Store(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer than this mitreden"):
        Store(db_path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(path)


_start: Barrier | None = None


def _meet(barrier: Barrier) -> None:
    global _start
    _start = barrier


def _open_at_once(path: str) -> str:
    """In a worker process: open the store at the same moment as the other worker."""
    assert _start is not None
    _start.wait()
    try:
        Store(path).close()
    except StoreError as err:
        return str(err)
    return "opened"


def test_two_processes_opening_a_new_database_together_both_succeed(tmp_path: Path) -> None:
    """`mitreden run` and `mitreden chat` started at once on a new file: the migrations run
    once, under the write lock, and the second process finds them done."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    with context.Pool(2, initializer=_meet, initargs=(barrier,)) as pool:
        for round_ in range(6):
            path = str(tmp_path / f"new-{round_}.db")
            assert pool.map(_open_at_once, [path, path], chunksize=1) == ["opened", "opened"]
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_audit_log_is_append_only(db_path) -> None:
    store = Store(db_path)
    with store.transaction():
        store.audit("2026-11-22T10:00:00", "moderator", "idea.approved", "idea:1")
    for statement in ("UPDATE audit SET action = 'x'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), store.transaction():
            store.db.execute(statement)
    assert store.db.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


def test_a_failed_step_writes_nothing(db_path) -> None:
    store = Store(db_path)
    with pytest.raises(RuntimeError), store.transaction():
        store.ensure_participant("p-1", "test", "now")
        store.add_idea(participant_id="p-1", text="Mehr Bänke im Park", created_at="now")
        raise RuntimeError("the step failed half-way")
    assert store.ideas() == []
    assert store.db.execute("SELECT count(*) FROM participants").fetchone()[0] == 0


def test_only_known_idea_columns_can_be_updated(db_path) -> None:
    store = Store(db_path)
    with pytest.raises(ValueError, match="participant_id"), store.transaction():
        store.update_idea(1, participant_id="someone else")


def test_a_first_release_database_is_migrated_with_its_rows(db_path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    MIGRATIONS[0](sqlite_utils.Database(conn))
    conn.executescript(
        "PRAGMA user_version = 1;"
        "INSERT INTO participants VALUES ('p-a', 'test', 'now'), ('p-b', 'test', 'now');"
        "INSERT INTO ideas (id, participant_id, text) "
        "VALUES (1, 'p-a', 'Bäume'), (2, 'p-a', 'WLAN');"
        "INSERT INTO supports VALUES ('p-b', 1, 'now');"
    )
    conn.close()

    store = Store(db_path)
    assert store.schema_version == len(MIGRATIONS)
    assert [(i["id"], i["text"], i["supporters"]) for i in store.ideas()] == [
        (1, "Bäume", 1),
        (2, "WLAN", 0),
    ]
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    with store.transaction():
        store.db.execute("DELETE FROM ideas WHERE id = 2")
        new = store.add_idea(participant_id="p-b", text="Parks")
    assert new == 3, "an erased idea's id is never handed out again"
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.add_support("p-b", 99, "now")


def test_queued_messages_move_onto_their_pages_in_order_and_pages_keep_their_last_lines(
    db_path,
) -> None:
    from mitreden.flows.messages import Attachment, Outbound, dump_outbound
    from mitreden.store.conversations import WEB_LINES

    store = Store(db_path)
    now = "2026-12-04T12:00:00+00:00"
    full, other = "p-full", "p-other"
    with store.transaction():
        for n in range(WEB_LINES):
            store.add_web_line(full, now, "resident", dump_outbound(Outbound(f"old {n}")))
        notices = [("web", full, dump_outbound(Outbound("Ihre Idee ging weiter")), full)]
        notices += [("web", other, dump_outbound(Outbound(f"neu {n}")), other) for n in range(3)]
        notices.append(("telegram", "42", dump_outbound(Outbound("not for a page")), "p-tg"))
        store.post_many(notices, now)
        file = Outbound(
            "Ihre Daten", attachment=Attachment("daten.json", "application/json", b"{}")
        )
        store.post_many([("web", other, dump_outbound(file), other)], now)
    with store.transaction():
        assert store.outbox_onto_pages("web", now) == 4

    lines = {who: [line["message"] for line in store.web_lines(who)] for who in (full, other)}
    assert len(lines[full]) == WEB_LINES and "Ihre Idee ging weiter" in lines[full][-1]
    assert "old 0" not in lines[full][0] and "old 1" in lines[full][0]
    assert [m.split('"text": "')[1].split('"')[0] for m in lines[other]] == [
        "neu 0",
        "neu 1",
        "neu 2",
    ]
    left = [
        (row["channel"], row["participant_id"]) for row in store._all("SELECT * FROM outbox")
    ]
    assert left == [("telegram", "p-tg"), ("web", other)]  # the file is the web chat's to keep
    with store.transaction():
        assert store.outbox_onto_pages("web", now) == 0


def test_every_reference_has_an_index(tmp_path: Path) -> None:
    """Deleting a row makes SQLite find every row that points at it (to refuse, cascade or set
    NULL); without an index on the pointing column that is a scan of its whole table per row,
    as erasing 12 ideas at 100,000 was (1.6 s) before `ideas.duplicate_of` had one."""
    store = Store(tmp_path / "x.db")
    tables = [
        row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    unindexed = []
    for table in tables:
        leading = {
            store.db.execute(f"PRAGMA index_info('{index[1]}')").fetchone()[2]
            for index in store.db.execute(f"PRAGMA index_list('{table}')")
        }
        columns = store.db.execute(f"PRAGMA table_info('{table}')")
        leading |= {column[1] for column in columns if column[5] == 1}  # the primary key's first
        for reference in store.db.execute(f"PRAGMA foreign_key_list('{table}')"):
            if reference[3] not in leading:
                unindexed.append(f"{table}.{reference[3]} -> {reference[2]}")
    assert not unindexed
