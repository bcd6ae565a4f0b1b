"""Summaries read right: counts in the right number, sentences kept apart, field names in the
reader's language. Built from hand-made summaries and a real SQLite store; no model needed."""

import csv
import io
from pathlib import Path

import pytest

from mitreden import reports
from mitreden.flows.catalogue import Catalogue
from mitreden.nlp.summary import FieldSummary, GroupSummary, summarize
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store

NOW = "2026-11-22T10:00:00+00:00"
FIELD = "intelligente_datennutzung"


def group(ideas: int, people: int, **changes: object) -> GroupSummary:
    values = {
        "id": 7,
        "lane": FIELD,
        "label": "daten, karte",
        "keywords": ["daten", "karte"],
        "ideas": ideas,
        "people": people,
        "near_duplicates": 0,
        "representatives": ["Eine Karte mit offenen Daten"],
        "summary": ["Eine Karte mit offenen Daten"],
        "districts": {},
        "age_bands": {},
        "label_share": 1.0,
    }
    return GroupSummary(**{**values, **changes})


def field(ideas: int, people: int, groups: list[GroupSummary], **changes: object) -> FieldSummary:
    values = {"lane": FIELD, "name": "Daten", "ideas": ideas, "people": people, "groups": groups}
    return FieldSummary(**{**values, "summary": [], **changes})


@pytest.mark.parametrize(
    ("lang", "ideas", "people", "expected"),
    [
        ("de", 1, 1, "1 Idee von 1 Person"),
        ("de", 2, 1, "2 Ideen von 1 Person"),
        ("de", 1, 2, "1 Idee von 2 Personen"),
        ("de", 21, 11, "21 Ideen von 11 Personen"),
        ("en", 1, 1, "1 idea from 1 person"),
        ("en", 2, 1, "2 ideas from 1 person"),
        ("en", 3, 2, "3 ideas from 2 people"),
        ("de-simple", 1, 1, "1 Idee von 1 Person"),
        ("de-simple", 5, 3, "5 Ideen von 3 Menschen"),
    ],
)
def test_counts_take_the_right_number(
    catalogue: Catalogue, lang: str, ideas: int, people: int, expected: str
) -> None:
    markdown = reports.to_markdown([field(ideas, people, [])], catalogue, lang)
    assert f"\n{expected}\n" in markdown


@pytest.mark.parametrize(
    ("lang", "count", "near", "merged", "ungrouped"),
    [
        (
            "de",
            1,
            "1 fast gleiche Idee zählt als Unterstützung",
            "zusammengeführt mit Gruppe 3",
            "1 Idee ist noch keiner Gruppe zugeordnet",
        ),
        (
            "de",
            2,
            "2 fast gleiche Ideen zählen als Unterstützung",
            "zusammengeführt mit Gruppen 3, 4",
            "2 Ideen sind noch keiner Gruppe zugeordnet",
        ),
        (
            "en",
            1,
            "1 near-identical idea counts as support",
            "merged with group 3",
            "1 idea is not in a group yet",
        ),
        (
            "en",
            2,
            "2 near-identical ideas count as support",
            "merged with groups 3, 4",
            "2 ideas are not in a group yet",
        ),
        (
            "de-simple",
            1,
            "1 Idee ist fast gleich wie eine andere.",
            "zusammen mit Gruppe 3",
            "1 Idee hat noch keine Gruppe",
        ),
        (
            "de-simple",
            2,
            "2 Ideen sind fast gleich.",
            "zusammen mit Gruppen 3, 4",
            "2 Ideen haben noch keine Gruppe",
        ),
    ],
)
def test_group_facts_take_the_right_number(
    catalogue: Catalogue, lang: str, count: int, near: str, merged: str, ungrouped: str
) -> None:
    merged_from = [3, 4][:count]
    g = group(5, 4, near_duplicates=count, merged_from=merged_from)
    markdown = reports.to_markdown([field(5 + count, 4, [g], ungrouped=count)], catalogue, lang)
    assert f"- {near}" in markdown
    assert f"- {merged}\n" in markdown
    assert f"\n{ungrouped}\n" in markdown


def test_in_short_lists_each_sentence_finished(catalogue: Catalogue) -> None:
    sentences = ["Mehr Bäume pflanzen", "Warum gibt es kein WLAN?", "Sie sagte „Ja.“"]
    markdown = reports.to_markdown(
        [field(3, 3, [], summary=sentences)], catalogue, "de"
    ).splitlines()
    start = markdown.index("**Kurz gesagt:**")
    assert markdown[start + 1 : start + 5] == [
        "",
        "- Mehr Bäume pflanzen.",
        "- Warum gibt es kein WLAN?",
        "- Sie sagte „Ja.“",
    ]
    html = reports.to_html("\n".join(markdown))
    assert "<li>Mehr Bäume pflanzen.</li>" in html


def test_csv_summary_sentences_do_not_run_together(catalogue: Catalogue) -> None:
    g = group(2, 2, summary=["Mehr Bäume pflanzen", "Schatten im Sommer"])
    [row] = csv.DictReader(io.StringIO(reports.to_csv([field(2, 2, [g])])))
    assert row["summary"] == "Mehr Bäume pflanzen. Schatten im Sommer."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mehr Bäume", "Mehr Bäume."),
        ("Mehr Bäume ", "Mehr Bäume."),
        ("Mehr Bäume!", "Mehr Bäume!"),
        ("Wirklich?", "Wirklich?"),
        ("Und dann…", "Und dann…"),
        ("Ein Satz.", "Ein Satz."),
        ('Er sagte "gut."', 'Er sagte "gut."'),
        ("Sie rief »Hilfe!«", "Sie rief »Hilfe!«"),
        ("(Das ist wichtig.)", "(Das ist wichtig.)"),
        ("Ruf [Telefonnummer] an", "Ruf [Telefonnummer] an."),
        ("Kosten: 5 €", "Kosten: 5 €."),
    ],
)
def test_as_sentence(text: str, expected: str) -> None:
    assert reports.as_sentence(text) == expected


@pytest.fixture
def store_with_ungrouped_ideas(db_path: Path) -> Store:
    """Two people's ideas in one field, not grouped yet (no model runs)."""
    store = Store(db_path)
    with store.transaction():
        for who in ("p-1", "p-2"):
            store.ensure_participant(who, "test", NOW)
            store.add_idea(
                participant_id=who,
                text="Offene Daten auf einer Karte",
                language="de",
                suggested_field=FIELD,
                created_at=NOW,
                updated_at=NOW,
            )
    return store


@pytest.mark.parametrize("lang", ["de", "en", "de-simple", "tr", "ar", "uk"])
def test_field_names_are_official_except_in_simple_language(
    store_with_ungrouped_ideas: Store, taxonomy: Taxonomy, catalogue: Catalogue, lang: str
) -> None:
    [summary] = summarize(store_with_ungrouped_ideas, taxonomy, {}, lang)
    assert summary.name == taxonomy.get(FIELD).title(lang)
    markdown = reports.to_markdown([summary], catalogue, lang)
    assert f"## {taxonomy.get(FIELD).title(lang)}\n" in markdown


def test_simple_and_plain_names_differ(taxonomy: Taxonomy) -> None:
    """The field the tests use has a name of its own in each language, so they prove a choice."""
    languages = ("de", "en", "de-simple", "tr", "ar", "uk")
    labels = {taxonomy.get(FIELD).title(lang) for lang in languages}
    assert len(labels) == len(languages)


def test_ideas_not_yet_grouped_count_their_people(
    store_with_ungrouped_ideas: Store, taxonomy: Taxonomy, catalogue: Catalogue
) -> None:
    [summary] = summarize(store_with_ungrouped_ideas, taxonomy, {}, "de")
    assert (summary.ideas, summary.people, summary.ungrouped) == (2, 2, 2)
    assert "\n2 Ideen von 2 Personen\n" in reports.to_markdown([summary], catalogue, "de")
