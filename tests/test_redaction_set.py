"""The redaction test set is well-formed, and the redactor reaches its goals on it.

The goal tests fail until nlp/redact.py offers `find` and finds enough; bench/redaction_bench.py
prints the same figures (one scoring implementation: testing/redaction_set.py) beside a baseline.
"""

from collections import Counter
from pathlib import Path

import pytest
from redaction_set import (
    KINDS,
    PRECISION_GOAL,
    RECALL_GOALS,
    RedactionSetError,
    Score,
    Sentence,
    Span,
    caught,
    load,
    redact_finder,
    score,
)


@pytest.fixture(scope="module")
def sentences() -> list[Sentence]:
    return load()


@pytest.fixture(scope="module")
def result(sentences: list[Sentence]) -> Score:
    from mitreden.nlp.redact import find

    return score(sentences, redact_finder(find))


def test_every_finding_occurs_with_a_known_kind(sentences: list[Sentence]) -> None:
    for sentence in sentences:
        for span in sentence.spans:
            assert span.kind in KINDS
            assert 0 <= span.start < span.end <= len(sentence.text)
            found = sentence.text[span.start : span.end]
            assert found == found.strip() and found


def test_size_and_balance(sentences: list[Sentence]) -> None:
    with_findings = sum(1 for s in sentences if s.spans)
    assert len(sentences) >= 200
    assert with_findings >= 0.4 * len(sentences)
    assert len(sentences) - with_findings >= 0.4 * len(sentences)
    languages = Counter(s.lang for s in sentences)
    assert languages["de"] >= 0.5 * len(sentences) and languages["en"] >= 0.3 * len(sentences)
    assert len({s.text for s in sentences}) == len(sentences), "a sentence is there twice"


def test_every_kind_has_enough_examples(sentences: list[Sentence]) -> None:
    kinds = Counter(span.kind for s in sentences for span in s.spans)
    assert all(kinds[kind] >= 15 for kind in KINDS), kinds
    assert kinds["name"] >= 30


def test_loader_rejects_a_finding_that_does_not_occur(tmp_path: Path) -> None:
    data = tmp_path / "set.yaml"
    data.write_text(
        '- text: "Frau Krause wohnt hier."\n  lang: de\n'
        '  findings: [{kind: name, text: "Kraus e"}]\n',
        encoding="utf-8",
    )
    with pytest.raises(RedactionSetError, match="does not occur"):
        load(data)


def test_loader_rejects_an_unknown_kind_and_a_missing_occurrence(tmp_path: Path) -> None:
    data = tmp_path / "set.yaml"
    data.write_text(
        '- text: "Herr Berg am Berg"\n  lang: de\n  findings: [{kind: nickname, text: "Berg"}]\n',
        encoding="utf-8",
    )
    with pytest.raises(RedactionSetError, match="unknown kind"):
        load(data)
    data.write_text(
        '- text: "Herr Berg am Berg"\n  lang: de\n'
        "  findings: [{kind: name, text: Berg, occurrence: 3}]\n",
        encoding="utf-8",
    )
    with pytest.raises(RedactionSetError, match="does not occur"):
        load(data)


def test_occurrence_picks_the_later_substring(tmp_path: Path) -> None:
    data = tmp_path / "set.yaml"
    data.write_text(
        '- text: "Im Sommer hilft Frau Sommer."\n  lang: de\n'
        "  findings: [{kind: name, text: Sommer, occurrence: 2}]\n",
        encoding="utf-8",
    )
    (sentence,) = load(data)
    assert sentence.spans == (Span(21, 27, "name"),)


TEXT = "Herr Peter Schmidt, Tel. 030 4521 8876"
NAME = Span(5, 18, "name")
PHONE = Span(25, 38, "phone")


@pytest.mark.parametrize(
    ("predicted", "expected_caught"),
    [
        ([Span(5, 18, "name")], True),
        ([Span(0, 18, "address")], True),  # the kind and a wider span do not matter
        ([Span(6, 17, "name")], True),  # one letter left visible at each edge
        ([Span(7, 18, "name")], False),  # two letters visible: "Pe"
        ([Span(5, 10, "name"), Span(11, 18, "name")], False),  # split in two spans
        ([], False),
    ],
)
def test_caught_needs_one_span_covering_all_but_the_edges(
    predicted: list[Span], expected_caught: bool
) -> None:
    assert caught(NAME, predicted, TEXT) is expected_caught


def test_score_counts_recall_and_false_positives() -> None:
    sentence = Sentence(TEXT, "de", (NAME, PHONE))
    result = score([sentence], lambda text: [Span(0, 4, "name"), Span(25, 38, "phone")])
    assert (result.kinds["phone"].caught, result.kinds["name"].caught) == (1, 0)
    assert result.false_positives == [("name", "Herr")]
    assert result.missed == [("name", "Peter Schmidt")]
    assert result.precision == 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_recall_goal(result: Score, kind: str) -> None:
    missed = [text for k, text in result.missed if k == kind]
    assert result.kinds[kind].recall >= RECALL_GOALS[kind], f"missed: {missed}"


def test_precision_goal(result: Score) -> None:
    assert result.precision >= PRECISION_GOAL, f"false positives: {result.false_positives}"
