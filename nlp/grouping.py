"""Grouping similar ideas inside one lane: an action field, or the lane of new topics.

The method is average-linkage agglomerative clustering on cosine similarity, cut where a
group's members are no more alike than two ideas of the lane picked at random (the lane's
mean pair similarity). The cut never rises above `ceiling`, the similarity at which two texts
say the same idea (calibrated per model on shipped paraphrases): a small lane of near-equal
ideas stays one group instead of being split at its own mean. Why this and not HDBSCAN,
BERTopic's choice:
- every idea lands in a group; HDBSCAN leaves a third of short citizen texts as "noise", and
  an idea no moderator sees is an idea the city never heard;
- the cut is one similarity and average linkage compares means, so a new idea joins a group
  by the same rule the full run used (its mean similarity to the members) without a recompute,
  and the lane's mean pair similarity follows from the sum of its vectors in O(1);
- it needs no dimension reduction, so groups do not move when a random 2-d layout does.
A lane with more than `direct_limit` ideas is first compressed into micro-clusters with
k-means and the micro-clusters are grouped the same way: the pair distances of 100k ideas do
not fit in memory, those of a few thousand micro-clusters do.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import AgglomerativeClustering, MiniBatchKMeans


@dataclass(frozen=True)
class GroupingParams:
    direct_limit: int = 3000
    micro_size: int = 10
    """Ideas per micro-cluster, on average, in lanes larger than `direct_limit`."""
    seed: int = 0


DEFAULT_PARAMS = GroupingParams()


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def cut_similarity(total: np.ndarray, count: int, ceiling: float) -> float:
    """The lane's mean pair similarity, at most `ceiling`.

    The mean over all pairs of `count` unit vectors whose sum is `total` needs no pairs:
    |Σv|² = n + Σ_{i≠j} v_i·v_j.
    """
    if count < 2:
        return ceiling
    return min(float((total @ total - count) / (count * (count - 1))), ceiling)


def _agglomerate(vectors: np.ndarray, cut: float) -> np.ndarray:
    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=1.0 - cut, metric="cosine", linkage="average"
    )
    return model.fit_predict(vectors)


def group(
    vectors: np.ndarray, ceiling: float, params: GroupingParams = DEFAULT_PARAMS
) -> np.ndarray:
    """A group number 0..k-1 for each row of unit vectors."""
    n = len(vectors)
    if n < 2:
        return np.zeros(n, dtype=int)
    cut = cut_similarity(vectors.sum(axis=0, dtype=np.float64), n, ceiling)
    if n <= params.direct_limit:
        return _agglomerate(vectors, cut)
    micro = MiniBatchKMeans(
        n_clusters=max(params.direct_limit // 2, n // params.micro_size),
        random_state=params.seed,
        init="random",  # k-means++ seeding of thousands of centres took a minute at 7k ideas
        n_init=1,
        batch_size=4096,
    ).fit(vectors)
    labels = _agglomerate(normalise(micro.cluster_centers_), cut)[micro.labels_]
    return np.unique(labels, return_inverse=True)[1]


def near_duplicates(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """For each row, the row it repeats (itself if it is the first to say it).

    Rows are visited most-central first, so the representative of a set of near-identical
    ideas is the one that says it most typically.
    """
    order = np.argsort(-(vectors @ vectors.sum(axis=0)))
    leader = np.arange(len(vectors))
    leaders: list[int] = []
    for row in order:
        if leaders:
            sims = vectors[leaders] @ vectors[row]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                leader[row] = leaders[best]
                continue
        leaders.append(int(row))
    return leader


def keep_ids(
    old: dict[int, set[int]], new: list[set[int]], min_overlap: float = 0.5
) -> list[int | None]:
    """Which old group id each new group inherits: the one it shares most members with.

    A pair is matched only when their Jaccard overlap is at least `min_overlap`, best pairs
    first and each old id at most once, so a group that barely changed keeps its id (and
    with it a moderator's label), while a group that split or grew from elsewhere starts anew.
    """
    owner = {idea: gid for gid, members in old.items() for idea in members}
    pairs = []
    for index, members in enumerate(new):
        shared: dict[int, int] = {}
        for idea in members:
            if idea in owner:
                shared[owner[idea]] = shared.get(owner[idea], 0) + 1
        for gid, count in shared.items():
            jaccard = count / len(members | old[gid])
            if jaccard >= min_overlap:
                pairs.append((jaccard, index, gid))
    inherited: list[int | None] = [None] * len(new)
    taken: set[int] = set()
    for _, index, gid in sorted(pairs, reverse=True):
        if inherited[index] is None and gid not in taken:
            inherited[index] = gid
            taken.add(gid)
    return inherited


def lower_fence(scores: np.ndarray) -> float | None:
    """Tukey's lower fence (Q1 - 1.5 IQR): below it a score is an outlier for its field.

    None for fewer than 8 scores, where quartiles say little.
    """
    if len(scores) < 8:
        return None
    q1, q3 = np.quantile(scores, [0.25, 0.75])
    return float(q1 - 1.5 * (q3 - q1))
