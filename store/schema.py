"""The schema as an ordered list of migrations.

`PRAGMA user_version` holds how many have run; a new release appends a migration and never
edits an old one, so every database, however old, reaches the same shape.
"""

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by `Store._migrate` only when a migration runs
    import sqlite_utils


def _initial(db: "sqlite_utils.Database") -> None:
    db.table("participants").create({"id": str, "channel": str, "created_at": str}, pk="id")
    db.table("consents").create(
        {
            "id": int,
            "participant_id": str,
            "version": str,
            "given": int,
            "language": str,
            "at": str,
        },
        pk="id",
        foreign_keys=[("participant_id", "participants", "id")],
    )
    db.table("consents").create_index(["participant_id"])
    # No foreign key: a conversation exists before consent, when no participant row may be kept.
    db.table("conversations").create(
        {
            "participant_id": str,
            "step": str,
            "language": str,
            "data": str,
            "started_at": str,
            "updated_at": str,
        },
        pk="participant_id",
    )
    db.table("ideas").create(
        {
            "id": int,
            "participant_id": str,
            "text": str,
            "language": str,
            "suggested_field": str,
            "suggested_score": float,
            "confirmed_field": str,
            "district": str,
            "age_band": str,
            "actor_group": str,
            "notify": int,
            "created_at": str,
            "updated_at": str,
            "embedding": bytes,
            "embedding_model": str,
        },
        pk="id",
        foreign_keys=[("participant_id", "participants", "id")],
    )
    db.table("ideas").create_index(["participant_id"])
    db.table("supports").create(
        {"participant_id": str, "idea_id": int, "at": str},
        pk=("participant_id", "idea_id"),
        foreign_keys=[("participant_id", "participants", "id"), ("idea_id", "ideas", "id")],
    )
    db.table("supports").create_index(["idea_id"])
    # Where to reach someone who asked to hear about their idea; kept only after they asked.
    db.table("contacts").create(
        {"participant_id": str, "channel": str, "address": str, "at": str},
        pk="participant_id",
        foreign_keys=[("participant_id", "participants", "id")],
    )
    # Append-only: who did what to which record. It never holds a participant key or any text,
    # so erasing a participant needs no exception to the append-only rule.
    db.table("audit").create(
        {"id": int, "at": str, "actor": str, "action": str, "subject": str, "detail": str},
        pk="id",
    )
    db.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    # Embeddings of shipped texts (the taxonomy), so a restart embeds nothing twice.
    # Never a resident's words: those are stored with their idea and erased with it.
    db.table("text_embeddings").create(
        {"model": str, "text_hash": str, "vector": bytes}, pk=("model", "text_hash")
    )


def _idea_ids_never_reused(db: "sqlite_utils.Database") -> None:
    """Rebuild `ideas` with AUTOINCREMENT: SQLite hands out the id of an erased last idea
    again, and then the audit log's "idea:5" would name two ideas."""
    # Store._migrate runs this with foreign keys off and checks them before it commits.
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'ideas'").fetchone()[0]
    sql = sql.replace('"ideas"', '"ideas_rebuilt"', 1)
    sql = sql.replace('"id" INTEGER PRIMARY KEY,', '"id" INTEGER PRIMARY KEY AUTOINCREMENT,', 1)
    db.execute(sql)
    db.execute("INSERT INTO ideas_rebuilt SELECT * FROM ideas")
    db.execute("DROP TABLE ideas")
    db.execute("ALTER TABLE ideas_rebuilt RENAME TO ideas")
    db.table("ideas").create_index(["participant_id"])


def _clusters(db: "sqlite_utils.Database") -> None:
    """Groups of similar ideas. Nothing here holds a resident's words or a vector: labels and
    summaries are derived when asked for, so erasing an idea leaves no trace of it in them."""
    _idea_ids_never_reused(db)
    # One row per full recompute: when, on what, how long; the id tells processes that cached
    # the grouping in memory that it changed.
    db.execute(
        "CREATE TABLE cluster_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
        "model TEXT, ideas INTEGER, clusters INTEGER, kept_ids INTEGER, seconds REAL)"
    )
    # Per action field, from the latest recompute: the field score below which an idea nobody
    # confirmed for the field goes to the lane of new topics instead.
    db.execute("CREATE TABLE lanes (lane TEXT PRIMARY KEY, fence REAL)")
    # AUTOINCREMENT: an id is never reused, so a moderator's edit never lands on a new group.
    db.execute(
        "CREATE TABLE clusters (id INTEGER PRIMARY KEY AUTOINCREMENT, lane TEXT NOT NULL, "
        "custom_label TEXT, merged_into INTEGER REFERENCES clusters(id) ON DELETE SET NULL, "
        "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE cluster_members (idea_id INTEGER PRIMARY KEY "
        "REFERENCES ideas(id) ON DELETE CASCADE, "
        "cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE, "
        "duplicate_of INTEGER REFERENCES ideas(id) ON DELETE SET NULL)"
    )
    db.execute("CREATE INDEX cluster_members_cluster ON cluster_members(cluster_id)")


def _deliveries(db: "sqlite_utils.Database") -> None:
    """Platform ids of messages already answered, so one delivered twice is answered once.

    Written in the same transaction as the step it caused; no participant, no text."""
    db.execute(
        "CREATE TABLE deliveries (channel TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL, "
        "PRIMARY KEY (channel, key))"
    )
    db.execute("CREATE INDEX deliveries_at ON deliveries(at)")


def _workshops(db: "sqlite_utils.Database") -> None:
    """Group sessions (workshop mode): rooms the bot was added to, sessions, their polls.

    A room is kept by its pseudonymous id; `address` is the platform's id of the group chat,
    needed to post there. Who added the bot and who leads a session are pseudonymous ids that
    erasure clears. A poll keeps only idea ids and vote counts: its option texts are rebuilt
    from the ideas when shown, so an erased idea leaves no words behind."""
    db.execute(
        "CREATE TABLE rooms (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, "
        "room TEXT NOT NULL, address TEXT NOT NULL, added_by TEXT, added_at TEXT NOT NULL, "
        "UNIQUE (channel, room))"
    )
    db.execute(
        "CREATE TABLE workshops (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "room_id INTEGER NOT NULL REFERENCES rooms(id), title TEXT NOT NULL, "
        "code TEXT NOT NULL UNIQUE, language TEXT NOT NULL, facilitator TEXT, "
        "started_at TEXT NOT NULL, ended_at TEXT)"
    )
    db.execute("CREATE INDEX workshops_room ON workshops(room_id)")
    db.execute("ALTER TABLE ideas ADD COLUMN workshop_id INTEGER REFERENCES workshops(id)")
    db.execute("CREATE INDEX ideas_workshop ON ideas(workshop_id)")
    db.execute(
        "CREATE TABLE polls (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "workshop_id INTEGER NOT NULL REFERENCES workshops(id), options TEXT NOT NULL, "
        "counts TEXT, poll_key TEXT, message_key TEXT, created_at TEXT NOT NULL, "
        "closed_at TEXT)"
    )
    db.execute("CREATE INDEX polls_key ON polls(poll_key)")


def _reviews(db: "sqlite_utils.Database") -> None:
    """Moderators' review of ideas, and what the Matrix channel must remember between runs.

    `ideas.review` is pending until a moderator approves or rejects; the audit log says who and
    when. `review_posts` maps a message in a moderator room to its idea; when the idea is
    erased the link turns NULL and the channel takes the message back. `cursors` keeps a
    channel's place in its event stream (Matrix's sync token). `dispatches` are summaries
    someone asked to forward: what to send, never the text, which is written when sent."""
    db.execute("ALTER TABLE ideas ADD COLUMN review TEXT NOT NULL DEFAULT 'pending'")
    db.execute("CREATE INDEX ideas_review ON ideas(review)")
    db.execute(
        "CREATE TABLE review_posts (channel TEXT NOT NULL, message_key TEXT NOT NULL, "
        "idea_id INTEGER REFERENCES ideas(id) ON DELETE SET NULL, posted_at TEXT NOT NULL, "
        "PRIMARY KEY (channel, message_key))"
    )
    db.execute("CREATE INDEX review_posts_idea ON review_posts(idea_id)")
    db.execute(
        "CREATE TABLE cursors (channel TEXT PRIMARY KEY, cursor TEXT NOT NULL, at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE dispatches (id INTEGER PRIMARY KEY AUTOINCREMENT, field TEXT, "
        "language TEXT NOT NULL, requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, "
        "sent_at TEXT, message_key TEXT, error TEXT)"
    )


def _outbox(db: "sqlite_utils.Database") -> None:
    """Replies written in the same transaction as the step that made them, sent after commit.

    A crash between the commit and the send leaves the reply here, and the channel sends it
    after a restart; `parts_sent` counts the pieces (text pieces, a poll, a file) already out,
    so a reply cut off half-way goes on where it stopped. Sent rows are deleted. A row holds
    what the resident is told (their idea read back, their data export), so it carries the
    participant and goes with an erasure. `deliveries.outcome` says whether a message was
    handled or failed (a poison message: answered with an apology, never handled again)."""
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, "
        "address TEXT, edit_key TEXT, participant_id TEXT, message TEXT NOT NULL, "
        "parts_sent INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX outbox_channel ON outbox(channel, id)")
    db.execute("CREATE INDEX outbox_participant ON outbox(participant_id)")
    db.execute("ALTER TABLE deliveries ADD COLUMN outcome TEXT NOT NULL DEFAULT 'handled'")


def _privacy(db: "sqlite_utils.Database") -> None:
    """What privacy needs kept: where an idea holds personal data, rounds, blocks.

    `ideas.findings` lists the spans of personal data in the idea's text ([kind, start, end]
    as JSON; NULL: not looked for yet, which readers treat as "look now"), `ideas.kept` the
    spans its author said were no personal data ("keep this word"), `ideas.purged_at` when
    retention replaced the raw text by its redacted form. `rounds` records when a participation
    round was closed: retention counts from there. `blocks` keeps a participant out until a
    date; it outlives the participant's erasure on purpose (or erasing would lift a block), and
    a purge drops it when it ends. Conversations kept other people's ideas as words in their
    state ("listing"); they are shown from ids now, so the words go."""
    db.execute("ALTER TABLE ideas ADD COLUMN findings TEXT")
    db.execute("ALTER TABLE ideas ADD COLUMN kept TEXT")
    db.execute("ALTER TABLE ideas ADD COLUMN purged_at TEXT")
    db.execute(
        "CREATE TABLE rounds (id INTEGER PRIMARY KEY AUTOINCREMENT, closed_at TEXT NOT NULL, "
        "closed_by TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE blocks (id INTEGER PRIMARY KEY AUTOINCREMENT, participant_id TEXT NOT NULL, "
        "until TEXT NOT NULL, at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX blocks_participant ON blocks(participant_id)")
    rows = db.execute("SELECT participant_id, data FROM conversations").fetchall()
    for participant, data in rows:
        state = json.loads(data)
        if "listing" in state.get("params", {}):
            del state["params"]["listing"]
            db.execute(
                "UPDATE conversations SET data = ? WHERE participant_id = ?",
                (json.dumps(state, ensure_ascii=False), participant),
            )


def _web(db: "sqlite_utils.Database") -> None:
    """The web chat: what a browser shows of its conversation, and codes to continue it on
    another device.

    `web_lines` is the conversation as its author sees it (their own words and the bot's
    replies, `side` resident or bot; a bot line is the reply as the outbox held it): the
    page is rebuilt from it, since a form post without JavaScript gets a whole new page. Only
    the last lines are kept, it goes with the participant's erasure and with retention.
    `web_codes` holds a one-time code's keyed hash for a few minutes, never the code."""
    db.execute(
        "CREATE TABLE web_lines (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "participant_id TEXT NOT NULL, at TEXT NOT NULL, side TEXT NOT NULL, "
        "message TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX web_lines_participant ON web_lines(participant_id, id)")
    db.execute(
        "CREATE TABLE web_codes (code_hash TEXT PRIMARY KEY, participant_id TEXT NOT NULL, "
        "expires_at TEXT NOT NULL)"
    )


def _staff(db: "sqlite_utils.Database") -> None:
    """The moderators' dashboard: staff accounts and their sessions, decisions' reasons,
    summaries moderators edit and approve, and who was told that their idea was forwarded.

    `staff.sessions_from` is when the account's sessions start counting: "log out everywhere"
    moves it, and every older session ends. A session is kept by its token's hash only.
    `ideas.review_reason` is a rejection's reason from a fixed list, `review_note` the
    moderator's own words on it (erased with the idea), `duplicate_of` an idea a moderator said
    this one repeats. `summaries` hold a field's summary as moderators edited it (redacted
    words only) and the ids of the ideas in it; `notified` remembers whom a forwarded summary
    was announced to, so no one is told twice; it goes with the participant's erasure."""
    db.execute(
        "CREATE TABLE staff (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "name TEXT NOT NULL UNIQUE COLLATE NOCASE, role TEXT NOT NULL, "
        "password_hash TEXT NOT NULL, created_at TEXT NOT NULL, disabled_at TEXT, "
        "sessions_from TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE staff_sessions (token_hash TEXT PRIMARY KEY, "
        "staff_id INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE, "
        "created_at TEXT NOT NULL, seen_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX staff_sessions_staff ON staff_sessions(staff_id)")
    db.execute("ALTER TABLE ideas ADD COLUMN review_reason TEXT")
    db.execute("ALTER TABLE ideas ADD COLUMN review_note TEXT")
    db.execute(
        "ALTER TABLE ideas ADD COLUMN duplicate_of INTEGER REFERENCES ideas(id) ON DELETE SET NULL"
    )
    db.execute(
        "CREATE TABLE summaries (id INTEGER PRIMARY KEY AUTOINCREMENT, lane TEXT NOT NULL, "
        "language TEXT NOT NULL, text TEXT NOT NULL, idea_ids TEXT NOT NULL, "
        "state TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, approved_by TEXT, approved_at TEXT, forwarded_at TEXT)"
    )
    db.execute("CREATE INDEX summaries_lane ON summaries(lane, id)")
    db.execute("ALTER TABLE dispatches ADD COLUMN summary_id INTEGER REFERENCES summaries(id)")
    db.execute(
        "CREATE TABLE notified (summary_id INTEGER NOT NULL REFERENCES summaries(id), "
        "participant_id TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (summary_id, participant_id))"
    )
    db.execute("CREATE INDEX notified_participant ON notified(participant_id)")


def _revisions(db: "sqlite_utils.Database") -> None:
    """A number that every change to what a summary is made of moves (ideas, supports, groups
    and their members), kept by triggers so that no writer, on any connection, can forget it:
    a summary made at one revision is reused until the number moves (`reports.summaries`).
    `token` is random per database, so a new database at the same path never meets a summary
    kept for the old one."""
    db.execute("CREATE TABLE revision (token TEXT NOT NULL, n INTEGER NOT NULL)")
    db.execute("INSERT INTO revision VALUES (lower(hex(randomblob(8))), 0)")
    for table in ("ideas", "supports", "clusters", "cluster_members"):
        for event in ("INSERT", "UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_revises AFTER {event} ON {table} "
                "BEGIN UPDATE revision SET n = n + 1; END"
            )


def _placements(db: "sqlite_utils.Database") -> None:
    """`cluster_members.placed_at`: when a moderator put the idea in its group (NULL when the
    grouping did). A regrouping leaves such an idea where the moderator put it."""
    db.execute("ALTER TABLE cluster_members ADD COLUMN placed_at TEXT")


def _grouped_state(db: "sqlite_utils.Database") -> None:
    """`cluster_runs.state`: what the ideas, the model and the fields were when a recompute
    read them (`ClusterBook.state`). A restart whose state is the latest run's has nothing to
    regroup: at 100,000 ideas that run took 38 s of CPU and 1.4 GB at every start."""
    db.execute("ALTER TABLE cluster_runs ADD COLUMN state TEXT")


def _readings(db: "sqlite_utils.Database") -> None:
    """`readings`: each idea as the summaries read it (its content lemmas as written, the same
    lower-cased as a JSON list, and its sentences; from the marked text, so no name or address
    is in it), made once instead of by spaCy at every summary: one field's summary at 100,000
    ideas took 23 s, nearly all of it reading. A reading goes with its idea (erasure), when
    its words, findings or language change (a moderator's redaction, the retention purge), and
    when a moderator rejects it, so it never outlives what it read.

    `vocabulary`: how often each word is used and by how many ideas, over all readings, kept
    by triggers so that a summary reads it instead of counting every idea's words again."""
    db.execute(
        "CREATE TABLE readings (idea_id INTEGER PRIMARY KEY REFERENCES ideas(id) "
        "ON DELETE CASCADE, words TEXT NOT NULL, keys TEXT NOT NULL, sentences TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TRIGGER ideas_reread AFTER UPDATE OF text, findings, language ON ideas "
        "BEGIN DELETE FROM readings WHERE idea_id = old.id; END"
    )
    db.execute(
        "CREATE TRIGGER ideas_rejected_unread AFTER UPDATE OF review ON ideas "
        "WHEN new.review = 'rejected' "
        "BEGIN DELETE FROM readings WHERE idea_id = old.id; END"
    )
    db.execute(
        "CREATE TABLE vocabulary (word TEXT PRIMARY KEY, count INTEGER NOT NULL, "
        "ideas INTEGER NOT NULL) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TRIGGER readings_counted AFTER INSERT ON readings BEGIN "
        "INSERT INTO vocabulary (word, count, ideas) "
        "SELECT value, count(*), 1 FROM json_each(new.keys) WHERE true GROUP BY value "
        "ON CONFLICT (word) DO UPDATE SET count = count + excluded.count, ideas = ideas + 1; "
        "END"
    )
    db.execute(
        "CREATE TRIGGER readings_uncounted AFTER DELETE ON readings BEGIN "
        "UPDATE vocabulary SET ideas = ideas - 1, "
        "count = count - (SELECT count(*) FROM json_each(old.keys) WHERE value = word) "
        "WHERE word IN (SELECT value FROM json_each(old.keys)); "
        "DELETE FROM vocabulary WHERE word IN (SELECT value FROM json_each(old.keys)) "
        "AND ideas = 0; "
        "END"
    )


def _reference_indexes(db: "sqlite_utils.Database") -> None:
    """An index on every column that references another row: deleting a row makes SQLite find
    the rows that point at it, and without an index that is a scan of their table per deleted
    row. For `duplicate_of` it read every idea and membership once per erased idea (erasing 12
    ideas at 100,000 took 1.6 s, holding every other resident's reply; with the index 4 ms);
    the other three tables are small, and stay quick as they grow."""
    db.execute("CREATE INDEX ideas_duplicate_of ON ideas(duplicate_of)")
    db.execute("CREATE INDEX cluster_members_duplicate_of ON cluster_members(duplicate_of)")
    db.execute("CREATE INDEX clusters_merged_into ON clusters(merged_into)")
    db.execute("CREATE INDEX polls_workshop ON polls(workshop_id)")
    db.execute("CREATE INDEX dispatches_summary ON dispatches(summary_id)")


def _reading_ids(db: "sqlite_utils.Database") -> None:
    """An index of the ids of read ideas alone. Every summary asks which ideas have no reading
    yet; the ids are the table's key, but finding them walked every reading's words and
    sentences (170 ms at 100,000 ideas; the index holds nothing else: 40 ms)."""
    db.execute("CREATE INDEX readings_ids ON readings(idea_id)")


MIGRATIONS: list[Callable[["sqlite_utils.Database"], None]] = [
    _initial,
    _clusters,
    _deliveries,
    _workshops,
    _reviews,
    _outbox,
    _privacy,
    _web,
    _staff,
    _revisions,
    _placements,
    _grouped_state,
    _readings,
    _reference_indexes,
    _reading_ids,
]
