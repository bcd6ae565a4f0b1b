"""The schema as an ordered list of migrations.

`PRAGMA user_version` holds how many have run; a new release appends a migration and never
edits an old one, so every database, however old, reaches the same shape.
"""

from collections.abc import Callable

import sqlite_utils


def _initial(db: sqlite_utils.Database) -> None:
    db["participants"].create({"id": str, "channel": str, "created_at": str}, pk="id")
    db["consents"].create(
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
    db["consents"].create_index(["participant_id"])
    # No foreign key: a conversation exists before consent, when no participant row may be kept.
    db["conversations"].create(
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
    db["ideas"].create(
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
    db["ideas"].create_index(["participant_id"])
    db["supports"].create(
        {"participant_id": str, "idea_id": int, "at": str},
        pk=("participant_id", "idea_id"),
        foreign_keys=[("participant_id", "participants", "id"), ("idea_id", "ideas", "id")],
    )
    db["supports"].create_index(["idea_id"])
    # Where to reach someone who asked to hear about their idea; kept only after they asked.
    db["contacts"].create(
        {"participant_id": str, "channel": str, "address": str, "at": str},
        pk="participant_id",
        foreign_keys=[("participant_id", "participants", "id")],
    )
    # Append-only: who did what to which record. It never holds a participant key or any text,
    # so erasing a participant needs no exception to the append-only rule.
    db["audit"].create(
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
    db["text_embeddings"].create(
        {"model": str, "text_hash": str, "vector": bytes}, pk=("model", "text_hash")
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_initial]
