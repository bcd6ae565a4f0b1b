"""Each idea is read once for the summaries and the reading kept in the store: it goes with
its idea and when the idea's words change, and the vocabulary the triggers keep is always
what counting every reading again would give. Real SQLite, real spaCy pipelines."""

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mitreden.nlp import keywords
from mitreden.nlp.summary import read_new_ideas, summarize
from mitreden.store import Store

NOW = "2026-12-04T10:00:00+00:00"
FIELD = "impulse_lebenswerte_stadtentwicklung"
PEOPLE = itertools.count()


@pytest.fixture
def store(db_path: Path) -> Store:
    return Store(db_path)


def grouped(store: Store, texts: list[str], lane: str = FIELD) -> list[int]:
    """Ideas of one resident each, in one group of `lane`."""
    with store.transaction():
        group = store.new_cluster(lane, NOW)
        ids = []
        for text in texts:
            who = f"p-{next(PEOPLE)}"
            store.ensure_participant(who, "test", NOW)
            ids.append(
                store.add_idea(
                    participant_id=who,
                    text=text,
                    language="de",
                    suggested_field=lane,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            store.set_membership(ids[-1], group, None)
    return ids


def recounted(store: Store) -> dict[str, tuple[int, int]]:
    """The vocabulary as counting every kept reading again gives it."""
    count: Counter[str] = Counter()
    using: Counter[str] = Counter()
    for (keys,) in store.db.execute("SELECT keys FROM readings"):
        words = json.loads(keys)
        count.update(words)
        using.update(set(words))
    return {word: (count[word], using[word]) for word in count}


def kept(store: Store) -> dict[str, tuple[int, int]]:
    return {word: (n, ideas) for word, n, ideas in store.vocabulary()}


def test_a_summary_reads_each_idea_once_and_keeps_the_reading(store, taxonomy) -> None:
    ids = grouped(store, ["Mehr Bänke im Park.", "Bänke am Spielplatz aufstellen."])
    summarize(store, taxonomy, {})
    words = store.readings(ids, "words")
    assert "Bank" in words[ids[0]] and "Park" in words[ids[0]]
    assert json.loads(store.readings(ids, "sentences")[ids[1]]) == [
        "Bänke am Spielplatz aufstellen."
    ]
    assert read_new_ideas(store, ids) == 0, "nothing is read twice"
    assert kept(store) == recounted(store)
    assert kept(store)["bank"] == (2, 2)


def test_a_changed_text_is_read_anew_and_its_old_words_are_gone(store, taxonomy) -> None:
    ids = grouped(store, ["Mehr Bänke im Park.", "Bänke am Spielplatz aufstellen."])
    summarize(store, taxonomy, {})
    with store.transaction():
        store.replace_text(ids[1], text="Bänke an der Haltestelle Zwiebelturm.")
    assert ids[1] not in store.readings(ids, "words"), "the trigger dropped the old reading"
    assert "spielplatz" not in kept(store)
    [field] = summarize(store, taxonomy, {})
    assert "Zwiebelturm" in store.readings(ids, "words")[ids[1]]
    assert field.groups[0].label.startswith("Bank")
    assert kept(store) == recounted(store)


def test_a_stale_reading_is_not_kept(store) -> None:
    """An edit between reading and keeping must not bring the old words back."""
    [idea] = grouped(store, ["Mehr Bänke im Park."])
    [unread] = store.unread([idea])
    with store.transaction():
        store.replace_text(idea, text="Mehr Schatten im Park.")
        assert store.keep_readings([(unread, "Bank Park", '["bank", "park"]', "[]")]) == 0
    assert store.readings([idea], "words") == {}


def test_rejected_and_erased_ideas_leave_no_reading_and_no_word(store, taxonomy) -> None:
    ids = grouped(
        store,
        ["Quietschgrüne Bänke im Park.", "Bänke am Spielplatz.", "Spam Spam Werbung Kaufen."],
    )
    summarize(store, taxonomy, {})
    author = store.idea(ids[0])["participant_id"]
    with store.transaction():
        store.set_review(ids[2], "rejected", NOW)
        store.erase_participant(author)
    assert store.readings(ids, "words").keys() == {ids[1]}
    assert "werbung" not in kept(store) and "quietschgrün" not in kept(store)
    for (table,) in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for row in store.db.execute(f"SELECT * FROM {table}"):
            assert not any("uietschgr" in str(value) for value in row), table
    assert kept(store) == recounted(store)


def test_a_group_whose_ideas_share_no_word_still_has_a_label(store, taxonomy) -> None:
    grouped(store, ["Trinkbrunnen am Bahnhof.", "Schattige Sitzplätze an Haltestellen."])
    [field] = summarize(store, taxonomy, {})
    assert field.groups[0].label, "the most typical idea's own words"
    assert field.groups[0].label_share == 0.5, "they speak for one of its two ideas"


def test_the_label_share_counts_the_ideas_that_use_a_label_word(store, taxonomy) -> None:
    grouped(store, ["Mehr Bänke im Park.", "Bänke am Spielplatz.", "Schatten am Bahnhof."])
    [field] = summarize(store, taxonomy, {})
    assert field.groups[0].label.startswith("Bank")
    assert field.groups[0].label_share == pytest.approx(2 / 3)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.lists(st.sampled_from(["park", "bank", "baum", "ärger", "straße"]), max_size=6),
        ),
        max_size=12,
    )
)
def test_the_vocabulary_is_always_the_readings_counted_again(tmp_path_factory, steps) -> None:
    """Whatever readings come and go, the triggers' counts equal a fresh count."""
    store = Store(tmp_path_factory.mktemp("vocabulary") / "v.db")
    ids = grouped(store, [f"Idee {n}" for n in range(len(steps))])
    for idea, (delete, words) in zip(ids, steps, strict=True):
        [unread] = store.unread([idea])
        with store.transaction():
            store.keep_readings([(unread, " ".join(words), json.dumps(words), "[]")])
            if delete:
                store.db.execute("DELETE FROM ideas WHERE id = ?", (idea,))
    assert kept(store) == recounted(store)
    assert all(n > 0 and ideas > 0 for n, ideas in kept(store).values())


def test_weights_and_labels_read_the_stored_words() -> None:
    vocabulary = keywords.vocabulary([("bank", 4, 3), ("park", 2, 2), ("baum", 1, 1)], groups=2)
    weight = keywords.weights(["Bank Park", "Bank Baum"], vocabulary)
    assert set(weight) == {"bank", "park"}, "a word only one idea used never labels a group"
    assert keywords.label(["Bank Park", "Bank Baum"], weight) == ["Bank", "Park"]
