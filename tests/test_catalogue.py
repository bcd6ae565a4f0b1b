"""Every message exists in every language, and Einfache Sprache keeps its rules."""

import re
import string
from pathlib import Path

import pytest

from mitreden.flows.catalogue import LANGUAGES, Catalogue, CatalogueError
from mitreden.flows.definition import FlowError, load_flow
from mitreden.flows.engine import Engine
from mitreden.store import Store

ABBREVIATIONS = re.compile(r"\b(z\.\s?B|bzw|ggf|usw|u\.\s?a|d\.\s?h|evtl|ca|inkl|etc)\b\.?", re.I)
PASSIVE = re.compile(r"\b(wird|werden|wurde|wurden|worden)\b", re.I)


def placeholders(template: object) -> set[str]:
    if not isinstance(template, str):
        return set()
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_has_every_key(catalogue: Catalogue) -> None:
    keys = [set(catalogue.messages[lang]) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys)


def test_placeholders_match_across_languages(catalogue: Catalogue) -> None:
    for key, german in catalogue.messages["de"].items():
        for lang in LANGUAGES[1:]:
            assert placeholders(catalogue.messages[lang][key]) == placeholders(german), (lang, key)


def test_every_message_the_flow_uses_exists(catalogue: Catalogue) -> None:
    flow = load_flow()
    for step in flow.steps.values():
        for key in (*step.say, step.ask, *(c.label for c in (*step.choices, *step.extra))):
            if key:
                assert catalogue.has(key), (step.name, key)


def test_simple_language_rules(catalogue: Catalogue) -> None:
    for key, text in catalogue.messages["de-simple"].items():
        if not isinstance(text, str) or key.startswith(("words_", "redacted_")):
            continue
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


def one_step_flow(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(
        f"consent_version: '1'\nstart: a\ncommands: {{}}\nsteps:\n  a: {step}\n",
        encoding="utf-8",
    )
    return path


def test_flow_pointing_nowhere_is_refused(tmp_path: Path) -> None:
    path = one_step_flow(tmp_path, "{ask: idea_question, input: text, next: nowhere}")
    with pytest.raises(FlowError, match="nowhere"):
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
