"""Every message exists in every language, and Einfache Sprache keeps its rules."""

import re
import string
import subprocess
import sys
from pathlib import Path

import pytest

from mitreden.flows.catalogue import (
    LANGUAGES,
    Catalogue,
    CatalogueError,
    is_plural,
    plural_rule,
)
from mitreden.flows.definition import FlowError, load_flow
from mitreden.flows.engine import Engine
from mitreden.store import Store

ABBREVIATIONS = re.compile(r"\b(z\.\s?B|bzw|ggf|usw|u\.\s?a|d\.\s?h|evtl|ca|inkl|etc)\b\.?", re.I)
PASSIVE = re.compile(r"\b(wird|werden|wurde|wurden|worden)\b", re.I)


def placeholders(template: object) -> set[str]:
    if is_plural(template):
        return placeholders(template["other"])
    if not isinstance(template, str):
        return set()
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def texts(entry: object) -> list[str]:
    """The sentences of an entry: itself, or each of its plural forms."""
    if is_plural(entry):
        return list(entry.values())
    return [entry] if isinstance(entry, str) else []


def test_every_language_has_every_key(catalogue: Catalogue) -> None:
    keys = [set(catalogue.messages[lang]) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys)


def test_placeholders_match_across_languages(catalogue: Catalogue) -> None:
    for key, german in catalogue.messages["de"].items():
        for lang in LANGUAGES[1:]:
            assert placeholders(catalogue.messages[lang][key]) == placeholders(german), (lang, key)


def test_plural_forms_use_no_placeholder_their_other_form_lacks(catalogue: Catalogue) -> None:
    """A form may leave the number out (Arabic's "one" often does), never add a name."""
    for lang in LANGUAGES:
        for key, entry in catalogue.messages[lang].items():
            if is_plural(entry):
                for form in entry.values():
                    assert placeholders(form) <= placeholders(entry["other"]), (lang, key, form)


def test_plural_entries_have_exactly_their_languages_forms(catalogue: Catalogue) -> None:
    """Plural in every language (the constructor checks that), with each form CLDR's rules
    for the language can pick and none they never pick."""
    plural = [k for k, entry in catalogue.messages["de"].items() if is_plural(entry)]
    assert {"summary_counts_ideas", "summary_counts_people", "summary_ungrouped"} <= set(plural)
    for lang in LANGUAGES:
        forms = plural_rule(lang).tags | {"other"}
        for key in plural:
            assert set(catalogue.messages[lang][key]) == forms, (lang, key)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("de", ["0 Ideen", "1 Idee", "2 Ideen", "5 Ideen", "11 Ideen", "21 Ideen", "101 Ideen"]),
        ("en", ["0 ideas", "1 idea", "2 ideas", "5 ideas", "11 ideas", "21 ideas", "101 ideas"]),
        (
            "de-simple",
            ["0 Ideen", "1 Idee", "2 Ideen", "5 Ideen", "11 Ideen", "21 Ideen", "101 Ideen"],
        ),
        # Turkish keeps the noun singular after a number.
        ("tr", ["0 fikir", "1 fikir", "2 fikir", "5 fikir", "11 fikir", "21 fikir", "101 fikir"]),
        # Arabic: one and two say the number in the noun; 3-10 plural, 11-99 singular
        # accusative, 100 and above (101 too) singular genitive.
        ("ar", ["0 أفكار", "فكرة واحدة", "فكرتان", "5 أفكار", "11 فكرة", "21 فكرة", "101 فكرة"]),
        # Ukrainian: one for 1, 21, 101; few for 2-4; many for 0, 5-20.
        ("uk", ["0 ідей", "1 ідея", "2 ідеї", "5 ідей", "11 ідей", "21 ідея", "101 ідея"]),
    ],
)
def test_plural_picks_the_form_for_the_count(
    catalogue: Catalogue, lang: str, expected: list[str]
) -> None:
    counts = (0, 1, 2, 5, 11, 21, 101)
    assert [catalogue.plural(lang, "summary_counts_ideas", n) for n in counts] == expected


def test_plural_formats_its_other_placeholders(catalogue: Catalogue) -> None:
    assert catalogue.plural("de", "summary_merged", 1, ids="4") == "zusammengeführt mit Gruppe 4"
    assert catalogue.plural("en", "summary_merged", 2, ids="4, 7") == "merged with groups 4, 7"


def six_and_three_forms() -> Catalogue:
    """Arabic (six forms) and Ukrainian (three) need only a catalogue, not code."""
    forms = {c: c + " {count}" for c in ("zero", "one", "two", "few", "many", "other")}
    return Catalogue(
        {
            "ar": {"things": forms},
            "uk": {"things": {c: forms[c] for c in ("one", "few", "many", "other")}},
        }
    )


@pytest.mark.parametrize(
    ("lang", "count", "form"),
    [
        ("ar", 0, "zero"),
        ("ar", 1, "one"),
        ("ar", 2, "two"),
        ("ar", 3, "few"),
        ("ar", 10, "few"),
        ("ar", 11, "many"),
        ("ar", 99, "many"),
        ("ar", 100, "other"),
        ("ar", 103, "few"),
        ("uk", 1, "one"),
        ("uk", 2, "few"),
        ("uk", 4, "few"),
        ("uk", 5, "many"),
        ("uk", 11, "many"),
        ("uk", 21, "one"),
        ("uk", 22, "few"),
        ("uk", 0, "many"),
    ],
)
def test_other_languages_plural_rules_come_with_their_catalogue(
    lang: str, count: int, form: str
) -> None:
    assert six_and_three_forms().plural(lang, "things", count) == f"{form} {count}"


def test_a_missing_form_falls_back_to_other() -> None:
    catalogue = Catalogue({"uk": {"things": {"one": "{count} one", "other": "{count} other"}}})
    assert catalogue.plural("uk", "things", 5) == "5 other"


def test_plural_and_plain_entries_are_not_mixed_up(catalogue: Catalogue) -> None:
    with pytest.raises(CatalogueError, match=r"summary_ungrouped.*Catalogue\.plural"):
        catalogue.text("de", "summary_ungrouped", count=2)
    with pytest.raises(CatalogueError, match=r"summary_title.*Catalogue\.text"):
        catalogue.plural("de", "summary_title", 2)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            {"de": {"n": {"one": "eine", "other": "{count}"}}, "en": {"n": "{count}"}},
            "'n' has plural forms in de but not in en",
        ),
        (
            {"de": {"n": {"one": "eine", "other": "{count}"}}, "en": {"n": {"one": "one"}}},
            "catalogue 'en': plural 'n' lacks 'other'",
        ),
    ],
)
def test_plural_entries_are_plural_everywhere_with_other(messages, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        Catalogue(messages)


def test_a_language_without_plural_rules_is_a_clear_error() -> None:
    catalogue = Catalogue({"qq": {"n": {"other": "{count}"}}})
    with pytest.raises(CatalogueError, match="no plural rules for language 'qq'"):
        catalogue.plural("qq", "n", 2)


def test_loading_the_catalogue_does_not_import_babel() -> None:
    """Babel's CLDR data is loaded when a count is first put into words, not at start."""
    script = (
        "import sys; from mitreden.flows.catalogue import Catalogue; Catalogue.load(); "
        "assert 'babel' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_every_message_the_flow_uses_exists(catalogue: Catalogue) -> None:
    flow = load_flow()
    for step in flow.steps.values():
        for key in (*step.say, step.ask, *(c.label for c in (*step.choices, *step.extra))):
            if key:
                assert catalogue.has(key), (step.name, key)


def test_simple_language_rules(catalogue: Catalogue) -> None:
    for key, entry in catalogue.messages["de-simple"].items():
        if key.startswith(("words_", "redacted_")):
            continue
        for text in texts(entry):
            assert not ABBREVIATIONS.search(text), (key, text)
            assert not PASSIVE.search(text), (key, text)
            for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
                words = [w for w in sentence.split() if not w.startswith("/")]
                assert len(words) <= 16, (key, sentence)


def test_greeting_is_two_sentences_after_hello(catalogue: Catalogue) -> None:
    """Einfache Sprache says the same in more, shorter sentences (one statement each)."""
    for lang in ("de", "en"):
        greeting = catalogue.text(lang, "greeting").removeprefix("Hallo! ").removeprefix("Hello! ")
        assert len(re.findall(r"[.!?](?:\s|$)", greeting)) == 2, (lang, greeting)


def test_catalogue_missing_a_key_is_refused() -> None:
    with pytest.raises(CatalogueError, match="lacks hello"):
        Catalogue({"de": {"hello": "Hallo"}, "en": {}})


def test_unreadable_catalogue_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "de.yaml").write_text("greeting: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        Catalogue.load(tmp_path)


# A step offering every answer the code tells apart, and the flow file's `answers` naming them.
ANSWERING = (
    "  b: {ask: consent_question, next: a, choices: [{value: j, label: consent_yes}, "
    "{value: n, label: consent_no}, {value: o, label: field_other}, "
    "{value: u, label: field_unsure}, {value: c, label: change_text}, "
    "{value: x, label: support_none}]}\n"
)
ANSWERS_LINE = "answers: {yes: j, no: n, other: o, unsure: u, change: c, none: x}\n"


ROLES_LINE = "roles: {language: a, delete: a, cancelled: a, idea: a}\n"


def one_step_flow(
    tmp_path: Path, step: str, roles: str = ROLES_LINE, answers: str = ANSWERS_LINE
) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(
        f"consent_version: '1'\nstart: a\ncommands: {{}}\nsteps:\n  a: {step}\n{ANSWERING}"
        f"{roles}\n{answers}\n",
        encoding="utf-8",
    )
    return path


def test_flow_pointing_nowhere_is_refused(tmp_path: Path) -> None:
    path = one_step_flow(tmp_path, "{ask: idea_question, input: text, next: nowhere}")
    with pytest.raises(FlowError, match="nowhere"):
        load_flow(path)


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ("", "roles must name the steps for"),
        ("roles: {language: a, delete: a, cancelled: a}", r"\['idea'\]"),
        ("roles: {language: a, delete: gone, cancelled: a, idea: a}", "unknown steps"),
    ],
)
def test_a_flow_names_the_steps_the_engine_needs(tmp_path: Path, roles: str, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        load_flow(one_step_flow(tmp_path, "{end: true}", roles=roles))


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ("", r"answers must name the choice values for \['yes', 'no', 'other'"),
        ("answers: {yes: j, no: n, other: o, change: c, none: x}", r"for \['unsure'\]"),
        (ANSWERS_LINE.replace("none: x", "none: x, maybe: u"), r"answers name \['maybe'\]"),
        (ANSWERS_LINE.replace("unsure: u", "unsure: unsure"), r"offers {'unsure': 'unsure'}"),
    ],
)
def test_a_flow_names_the_answers_the_code_tells_apart(
    tmp_path: Path, answers: str, message: str
) -> None:
    with pytest.raises(FlowError, match=message):
        load_flow(one_step_flow(tmp_path, "{end: true}", answers=answers))


def test_a_flow_with_every_answer_offered_loads(tmp_path: Path) -> None:
    flow = load_flow(one_step_flow(tmp_path, "{end: true}"))
    assert flow.answers == dict(yes="j", no="n", other="o", unsure="u", change="c", none="x")


def test_a_flow_step_detects_a_list_of_languages(tmp_path: Path) -> None:
    path = one_step_flow(tmp_path, "{ask: choose_language, detect: tr, next: a}")
    with pytest.raises(FlowError, match="detect must be a list"):
        load_flow(path)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{ask: idea_question, input: text, action: rocket, next: a}", "unknown action 'rocket'"),
        ("{ask: district_question, action: set_idea_detail, next: a}", "store_as"),
        ("{ask: district_question, action: set_idea_detail, store_as: text, next: a}", "store_as"),
    ],
)
def test_flow_with_a_broken_action_fails_at_start(
    tmp_path: Path, catalogue, taxonomy, db_path, step: str, message: str
) -> None:
    path = one_step_flow(tmp_path, step)
    with pytest.raises(FlowError, match=message):
        Engine(Store(db_path), taxonomy, None, load_flow(path), catalogue)


def test_yes_and_no_stay_words() -> None:
    catalogue = Catalogue.load()
    assert "ja" in catalogue.words("de", "words_yes")
    assert "no" in catalogue.words("en", "words_no")
