"""`mitreden staff`, `review`, `groups`, `summary draft|approve` and `forward --approved`, run
in this process on a real database, as an operator without the dashboard would use them."""

import getpass
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from argon2 import PasswordHasher
from test_staff import OFFICE, TREES, add_idea, audit

from mitreden.cli import MAX_ID, main
from mitreden.staff import accounts
from mitreden.store import Store

OPERATOR = f"cli:{getpass.getuser()}"
PASSWORD = "a long enough passphrase"
HASHED = PasswordHasher().hash(PASSWORD)  # once: each hash takes a while, on purpose


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty database; the operator's own settings and config file stay out of the way."""
    for name in [k for k in os.environ if k.startswith("MITREDEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("MITREDEN_EMBEDDING_BACKEND", "none")
    path = tmp_path / "x.db"
    Store(path).close()
    umask = os.umask(0o077)  # read it, by setting what main() sets
    os.umask(umask)
    yield path
    os.umask(umask)


@pytest.fixture
def store(db: Path) -> Store:
    return Store(db)


@pytest.fixture
def run(db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """`mitreden args --db <the test's database>`: (exit code, stdout, stderr)."""

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([*args, "--db", str(db)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def refused(result: tuple[int, str, str]) -> str:
    """An error the operator can fix: exit code 2, one line, nothing on stdout."""
    code, out, err = result
    assert code == 2 and out == "", (code, out, err)
    [line] = err.splitlines()
    assert line.startswith("mitreden: error: "), err
    return line.removeprefix("mitreden: error: ")


def usage_error(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> str:
    """What argparse says of arguments of the wrong form: exit code 2, its last line."""
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--db", str(db)])
    assert stopped.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the operator types at getpass's prompts, in order; each prompt takes one."""
    answers: list[str] = []

    def prompt(text: str = "") -> str:
        assert answers, f"unexpected prompt {text!r}"
        return answers.pop(0)

    monkeypatch.setattr(getpass, "getpass", prompt)
    return answers


# staff


def test_accounts_are_made_changed_and_signed_out_from_the_command_line(
    run, store: Store, typed: list[str]
) -> None:
    typed += [PASSWORD, PASSWORD]
    assert run("staff", "add", "anna", "--role", "admin") == (0, "anna added as admin\n", "")
    stdin = PASSWORD + "\r\nmore lines are not read\n"
    added = run("staff", "add", "bert", "--role", "moderator", "--password-stdin", stdin=stdin)
    assert added[0] == 0 and accounts.authenticate(store, "bert", PASSWORD)
    listed = run("staff", "list")[1].splitlines()
    assert listed[0] == "name\trole\tcreated\tdisabled"
    assert [line.split("\t")[:2] for line in listed[1:]] == [
        ["anna", "admin"],
        ["bert", "moderator"],
    ]

    assert run("staff", "role", "bert", "admin")[0] == 0
    assert store.staff_member("bert")["role"] == "admin"
    token = accounts.open_session(store, accounts.authenticate(store, "bert", PASSWORD), "x")
    assert run("staff", "disable", "bert")[1] == "bert disabled; their sessions ended\n"
    assert accounts.authenticate(store, "bert", PASSWORD) is None
    assert run("staff", "list")[1].splitlines()[2].split("\t")[3] != ""
    assert run("staff", "enable", "bert") == (0, "bert enabled\n", "")
    assert accounts.authenticate(store, "bert", PASSWORD) is not None
    assert store.session(accounts.token_hash(token)) is None

    typed += ["another long passphrase"] * 2
    assert run("staff", "password", "anna")[0] == 0
    assert accounts.authenticate(store, "anna", PASSWORD) is None
    assert accounts.authenticate(store, "anna", "another long passphrase") is not None

    member = accounts.authenticate(store, "bert", PASSWORD)
    tokens = [accounts.open_session(store, member, "2026-11-22T10:00:00+00:00") for _ in "ab"]
    assert run("staff", "logout", "BERT") == (0, "every session of BERT ended\n", "")
    assert all(store.session(accounts.token_hash(t)) is None for t in tokens)

    entries = store.audit_entries(action="staff.")
    assert {e["actor"] for e in entries if e["action"] != "staff.signed_in"} == {OPERATOR}
    assert [(e["action"], e["subject"]) for e in reversed(entries)][-1] == (
        "staff.signed_out",
        "staff:bert",
    )
    assert PASSWORD not in json.dumps(store.audit_entries())


@pytest.mark.parametrize(
    ("args", "answers", "stdin", "message"),
    [
        (["add", "anna", "--role", "admin"], [PASSWORD, PASSWORD + "x"], "", "passwords differ"),
        (["add", "anna", "--role", "admin"], ["too short", "too short"], "", "at least 12"),
        (["add", "anna", "--role", "admin", "--password-stdin"], [], "", "at least 12"),
        (["add", "anna\nroot", "--role", "admin"], [PASSWORD] * 2, "", "a name is 1 to 64"),
        (["add", "an na", "--role", "admin"], [PASSWORD] * 2, "", "a name is 1 to 64"),
        (["add", "x" * 65, "--role", "admin"], [PASSWORD] * 2, "", "a name is 1 to 64"),
        (["add", "anna", "--role", "root"], [PASSWORD] * 2, "", "the role is one of"),
        (["add", "ANNA", "--role", "admin"], [PASSWORD] * 2, "", "already an account 'ANNA'"),
        (["password", "nobody"], [], "", "there is no account 'nobody'"),
        (["disable", "nobody\n"], [], "", "there is no account 'nobody\\n'"),
        (["enable", "nobody"], [], "", "there is no account 'nobody'"),
        (["logout", "nobody"], [], "", "there is no account 'nobody'"),
        (["role", "anna", "owner"], [], "", "the role is one of moderator, admin"),
    ],
)
def test_staff_commands_refuse_in_one_line_and_change_nothing(
    run, store: Store, typed: list[str], args, answers, stdin, message
) -> None:
    with store.transaction():
        store.add_staff("anna", "moderator", HASHED, "2026-11-22T10:00:00+00:00")
    before = store.audit_entries()
    typed += answers
    assert message in refused(run("staff", *args, stdin=stdin))
    assert typed == [], "every answer was asked for"
    assert store.audit_entries() == before
    assert [(m["name"], m["role"]) for m in store.staff_members()] == [("anna", "moderator")]


def test_staff_commands_need_an_existing_database(tmp_path: Path, db: Path, capsys) -> None:
    missing = tmp_path / "missing.db"
    assert main(["staff", "list", "--db", str(missing)]) == 2
    assert "no database at" in capsys.readouterr().err and not missing.exists()


def test_the_first_admin_is_added_on_a_fresh_machine(tmp_path: Path, monkeypatch) -> None:
    fresh = tmp_path / "fresh.db"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert (
        main(["staff", "add", "anna", "--role", "admin", "--password-stdin", "--db", str(fresh)])
        == 0
    )
    assert [m["name"] for m in Store(fresh).staff_members()] == ["anna"]


# review


@pytest.fixture
def ideas(store: Store) -> dict[str, int]:
    return {
        "phone": add_idea(store, "Ruft Herrn Becker unter 0176 12345678 an wegen der Bäume"),
        "held": add_idea(store, "Alle Idioten raus aus dem Amt", who="p-bert", review="held"),
        "office": add_idea(store, "Termine online\nbuchen\x1b[2J\u202e", field=OFFICE),
        "approved": add_idea(store, "Mehr Bäume", who="p-carl", review="approved"),
        "rejected": add_idea(
            store, "Kauft Uhren", who="p-spam", review="rejected", review_reason="spam"
        ),
    }


def rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0] == "id\tstate\tfield\ttext"
    return [line.split("\t") for line in lines[1:]]


def test_the_queue_lists_pending_and_held_ideas_oldest_first_redacted(run, ideas) -> None:
    code, out, _ = run("review")
    assert code == 0
    assert rows(out) == [
        [
            str(ideas["phone"]),
            "pending",
            TREES,
            "Ruft Herrn [Name entfernt] unter [Telefonnummer entfernt] an wegen der Bäume",
        ],
        [str(ideas["held"]), "held", TREES, "Alle Idioten raus aus dem Amt"],
        [str(ideas["office"]), "pending", OFFICE, "Termine online buchen [2J"],
    ]
    assert "12345678" not in out and "\x1b" not in out and "\u202e" not in out
    assert rows(run("review", "--state", "rejected")[1]) == [
        [str(ideas["rejected"]), "rejected (spam)", TREES, "Kauft Uhren"]
    ]
    assert [r[0] for r in rows(run("review", "--field", OFFICE)[1])] == [str(ideas["office"])]
    assert [r[0] for r in rows(run("review", "--limit", "1")[1])] == [str(ideas["phone"])]
    assert "no action field 'nope'" in refused(run("review", "--field", "nope"))


def test_decisions_from_the_command_line_are_audited_as_the_operator(
    run, store: Store, ideas
) -> None:
    phone, held, office = ideas["phone"], ideas["held"], ideas["office"]
    assert run("review", "approve", str(phone))[1] == f"idea {phone} is approved, was pending\n"
    code, out, _ = run(
        "review", "reject", str(held), "--reason", "personal_attack", "--note", "Beleidigung\nAmt"
    )
    assert (code, out) == (0, f"idea {held} is rejected (personal_attack), was held\n")
    assert store.idea(held)["review_note"] == "Beleidigung\nAmt"
    assert run("review", "reopen", str(held))[0] == 0
    assert run("review", "undo", str(held)) == (0, f"idea {held} is rejected again\n", "")
    assert store.idea(held)["review_reason"] == "personal_attack"
    assert run("review", "duplicate", str(office), "--of", str(phone))[0] == 0
    assert store.idea(office)["duplicate_of"] == phone
    assert store.supporters() == {phone: {"p-anna"}}
    assert run("review", "field", str(phone), OFFICE)[1] == f"idea {phone} filed under {OFFICE}\n"
    assert store.idea(phone)["confirmed_field"] == OFFICE

    entries = store.audit_entries(action="idea.")
    assert len(entries) == 6 and {e["actor"] for e in entries} == {OPERATOR}
    assert "Beleidigung" not in json.dumps(entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reject", "{phone}", "--reason", "rude"], "--reason 'rude': choose one of off_topic,"),
        (["reject", "{phone}", "--reason", "split"], "--reason 'split': choose one of"),
        (["reject", "{phone}", "--reason", "spam\n"], "--reason 'spam\\n': choose one of"),
        (["approve", "999"], "there is no idea 999"),
        (["approve", str(MAX_ID)], f"there is no idea {MAX_ID}"),
        (["undo", "{phone}"], "has no decision to undo"),
        (["undo", "999"], "idea 999 has no decision to undo"),
        (["duplicate", "{phone}", "--of", "{phone}"], "an idea cannot repeat itself"),
        (["duplicate", "{phone}", "--of", "999"], "there is no idea 999"),
        (["duplicate", "{phone}", "--of", "{rejected}"], "is rejected; choose one that is not"),
        (["field", "{phone}", "nope"], "no action field 'nope'; choose one of"),
        (["field", "{phone}", "new-topics"], "no action field 'new-topics'"),
        (["field", "999", OFFICE], "there is no idea 999"),
    ],
)
def test_decisions_are_refused_in_one_line_and_nothing_is_audited(
    run, store: Store, ideas, args: list[str], message: str
) -> None:
    before = store.audit_entries()
    assert message in refused(run("review", *[a.format(**ideas) for a in args]))
    assert store.audit_entries() == before
    assert store.idea(ideas["phone"])["review"] == "pending"


@pytest.mark.parametrize(
    "args",
    [
        ["review", "approve", "-5"],
        ["review", "approve", "0"],
        ["review", "approve", "9" * 30],
        ["review", "approve", str(MAX_ID + 1)],
        ["review", "approve", "1e3"],
        ["review", "approve", "٣"],
        ["review", "--limit", "-1"],
        ["review", "duplicate", "1", "--of", "-1"],
        ["groups", "rename", "-1", "x"],
        ["summary", "approve", "9" * 5000],
        ["forward", "--approved", "--summary", "0x10"],
    ],
)
def test_ids_that_are_no_ids_are_refused_by_the_parser(capsys, db: Path, args) -> None:
    assert "expected a whole number from 1" in usage_error(capsys, db, *args)
    assert audit(Store(db)) == []


def test_a_reason_is_required_for_a_rejection(capsys, db: Path) -> None:
    assert "--reason" in usage_error(capsys, db, "review", "reject", "1")


# groups


def grouped(store: Store, lane: str, *texts: str, who: str = "p-anna") -> tuple[int, list[int]]:
    """A group of new ideas, each with a vector as the NLP would have given it."""
    rng = np.random.default_rng(len(texts))
    made = []
    for n, text in enumerate(texts):
        vector = rng.normal(size=8).astype(np.float32)
        made.append(add_idea(store, text, who=f"{who}-{n}", field=lane, embedding=vector))
    with store.transaction():
        group = store.new_cluster(lane, "2026-11-22T10:00:00+00:00")
        for idea in made:
            store.set_membership(idea, group, None)
    return group, made


def listed_groups(run, *args: str) -> dict[str, list[str]]:
    code, out, _ = run("groups", "list", *args)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "id\tfield\tlabel\tsize\tmerged_into"
    return {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:]}


def test_groups_are_listed_renamed_merged_and_ideas_moved(run, store: Store) -> None:
    trees, (tree, _) = grouped(
        store, TREES, "Mehr Bäume pflanzen gegen die Hitze", "Bäume pflanzen für Schatten"
    )
    office, _ = grouped(store, OFFICE, "Termine beim Amt online buchen")
    listed = listed_groups(run)
    assert listed[str(trees)][0] == TREES and listed[str(trees)][2:] == ["2", ""]
    assert "Bäume" in listed[str(trees)][1] or "pflanzen" in listed[str(trees)][1]
    assert list(listed_groups(run, "--field", OFFICE)) == [str(office)]

    assert run("groups", "rename", str(trees), "Bäume\n\x1b[31mund Schatten")[0] == 0
    assert listed_groups(run)[str(trees)][1] == "Bäume [31mund Schatten"

    assert run("groups", "move", str(tree), "--new", TREES)[0] == 0
    split_off = store.staff_idea(tree)["cluster_id"]
    assert split_off not in (trees, office) and store.cluster(split_off)["lane"] == TREES
    assert run("groups", "move", str(tree), "--to", str(office)) == (
        0,
        f"idea {tree} is in group {office}\n",
        "",
    )
    assert store.idea(tree)["confirmed_field"] == OFFICE
    assert run("groups", "merge", str(trees), "--into", str(office)) == (
        0,
        f"group {trees} is part of group {office}\n",
        "",
    )
    assert listed_groups(run)[str(trees)][3] == str(office)

    actions = [(e["action"], e["actor"]) for e in reversed(store.audit_entries())]
    assert actions == [
        ("cluster.renamed", OPERATOR),
        ("idea.moved", OPERATOR),
        ("idea.moved", OPERATOR),
        ("idea.field_corrected", OPERATOR),
        ("cluster.merged", OPERATOR),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rename", "999", "Bäume"], "there is no group 999"),
        (["merge", "999", "--into", "{trees}"], "there is no group 999"),
        (["merge", "{trees}", "--into", "{trees}"], "cannot be merged into itself"),
        (["move", "999", "--to", "{trees}"], "there is no idea 999"),
        (["move", "{idea}", "--to", "999"], "there is no group 999"),
        (["move", "{idea}", "--new", "nowhere"], "no action field 'nowhere'"),
        (["list", "--field", "nowhere"], "no action field 'nowhere'"),
    ],
)
def test_group_commands_refuse_in_one_line(run, store: Store, args, message) -> None:
    trees, (idea,) = grouped(store, TREES, "Mehr Bäume")
    assert message in refused(run("groups", *[a.format(trees=trees, idea=idea) for a in args]))
    assert store.audit_entries() == []


def test_a_move_needs_a_group_or_a_field(capsys, db: Path) -> None:
    assert "one of the arguments --to --new is required" in usage_error(
        capsys, db, "groups", "move", "1"
    )


# summaries and forwarding


def test_a_summary_is_drafted_approved_and_forwarded_with_residents_told(
    run, store: Store, db: Path
) -> None:
    add_idea(store, "Mehr Bäume im Park", notify=1, address="chat-anna")
    add_idea(store, "Schatten am Spielplatz", who="p-bert", notify=0, address="chat-bert")
    code, out, _ = run("summary", "draft", "--field", TREES)
    summary_id = int(out)
    assert code == 0 and store.summary(summary_id)["state"] == "draft"
    assert store.summary(summary_id)["language"] == "de", "moderator_language"
    assert "is not approved" in refused(run("forward", "--approved", "--summary", str(summary_id)))

    assert run("summary", "approve", str(summary_id))[0] == 0
    assert store.summary(summary_id)["approved_by"] == OPERATOR
    english = int(run("summary", "draft", "--field", OFFICE, "--language", "en")[1])
    assert store.summary(english)["language"] == "en"

    code, out, _ = run("forward", "--approved")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"summary {summary_id} forwarded"
    files = [Path(line.removeprefix("  file: ")) for line in lines if line.startswith("  file: ")]
    assert len(files) == 5 and all(f.parent == Path(f"{db}.forwarded") for f in files)
    assert files[0].read_text(encoding="utf-8") == store.summary(summary_id)["text"]
    assert "  e-mail: none configured" in lines and "  residents told: 1" in lines
    assert "or it does when it next starts" in out
    assert [n["address"] for n in store.unsent("test")] == ["chat-anna"]
    assert store.summary(english)["state"] == "draft", "only approved ones go"

    assert run("forward", "--approved") == (
        0,
        "no approved summary is waiting to be forwarded\n",
        "",
    )
    assert "was forwarded; make a new draft" in refused(run("summary", "approve", str(summary_id)))
    forwarded = store.audit_entries(action="summary.forwarded")
    assert [e["actor"] for e in forwarded] == [OPERATOR]
    assert len(store.unsent("test")) == 1, "told once"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "draft", "--field", "nope"], "no action field 'nope'"),
        (["summary", "approve", "999"], "there is no summary 999"),
        (["forward", "--approved", "--summary", "999"], "there is no summary 999"),
        (["forward", "--approved", "--field", "nope"], "no action field 'nope'"),
        (["forward", "--approved", "--summary", "1", "--field", TREES], "give one of them"),
        (["forward", "--approved", "--language", "en"], "no --language"),
        (["forward", "--summary", "1"], "--summary goes with --approved"),
    ],
)
def test_summary_and_forward_refuse_in_one_line(run, store: Store, args, message) -> None:
    assert message in refused(run(*args))
    assert store.audit_entries() == []


def test_a_half_mail_setup_is_refused_before_anything_is_forwarded(
    run, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_idea(store)
    summary_id = int(run("summary", "draft", "--field", TREES)[1])
    run("summary", "approve", str(summary_id))
    monkeypatch.setenv("MITREDEN_SMTP_TO", "team@example.org")
    assert "smtp_host is not set" in refused(run("forward", "--approved"))
    assert store.summary(summary_id)["state"] == "approved"


def test_files_that_cannot_be_written_are_one_line_and_nothing_is_forwarded(
    run, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_idea(store, notify=1, address="chat-anna")
    summary_id = int(run("summary", "draft", "--field", TREES)[1])
    run("summary", "approve", str(summary_id))
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MITREDEN_FORWARD_DIR", str(tmp_path / "a-file" / "forwarded"))
    assert "cannot write the summary's files" in refused(run("forward", "--approved"))
    assert store.summary(summary_id)["state"] == "approved" and store.unsent("test") == []


def test_the_summary_command_itself_is_unchanged(run, store: Store) -> None:
    add_idea(store, "Mehr Bäume im Park")
    code, out, _ = run("summary", "--format", "json", "--field", TREES)
    assert code == 0 and json.loads(out)[0]["lane"] == TREES
    assert store.summaries_of() == [], "nothing is saved"


def test_the_command_line_loads_no_staff_module_it_does_not_use() -> None:
    """`mitreden --help` stays fast: password hashing and the file formats load when used."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, mitreden.cli; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = ("argon2", "fpdf", "mitreden.staff.accounts", "mitreden.staff.files")
    for module in heavy:
        assert module not in loaded
