"""Grouping similar ideas inside one lane: an action field, or the lane of new topics.

The method is average-linkage agglomerative clustering on cosine similarity, cut where a
group's members are no more alike than two ideas of the lane picked at random (the lane's
mean pair similarity). The cut never rises above `ceiling`, the similarity at which two texts
say the same idea (calibrated per model on shipped paraphrases): a small lane of near-equal
ideas stays one group instead of being split at its own mean.

The cut adapts to the number of ideas. A lane of a few dozen ideas has one or two ideas per
topic, and cut at its mean it held one loose group of most of them: in 25 ideas drawn from a
shared data set, the largest group held 54-74 % of them. So a small lane is cut higher, from
`ceiling` at one idea down to the lane mean at `GroupingParams.full_lane` ideas, on a log scale
of its size (the largest group then holds 22-65 %, and groups are purer; `cut_similarity`).

Why this and not HDBSCAN, BERTopic's choice:
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

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupingParams:
    direct_limit: int = 4000
    micro_size: int = 4
    """Ideas per micro-cluster, on average, in lanes larger than `direct_limit`."""
    max_micro: int = 4000
    """At most this many micro-clusters: their similarity matrix takes 128 MB."""
    full_lane: int = 200
    """From this many ideas on, a lane is cut at its mean pair similarity (`cut_similarity`).
    Of 100, 200, 300, 500, 1,000 and 3,000 tried on the three shared data sets, 200 alone
    lowered neither ARI nor NMI against the field labels on any of them (`mitreden eval`)."""
    seed: int = 0


DEFAULT_PARAMS = GroupingParams()


def cut_similarity(
    total: np.ndarray, count: int, ceiling: float, full_lane: int = DEFAULT_PARAMS.full_lane
) -> float:
    """The similarity a lane of `count` unit vectors summing to `total` is cut at: its mean
    pair similarity (at most `ceiling`) from `full_lane` ideas on; below that, between the
    mean and `ceiling`, nearer `ceiling` the fewer ideas it has (log(count) / log(full_lane)
    of the way down), so that a young lane groups only ideas that say nearly the same.

    The mean over all pairs needs no pairs: |Σv|² = n + Σ_{i≠j} v_i·v_j.
    """
    if count < 2:
        return ceiling
    mean = min(float((total @ total - count) / (count * (count - 1))), ceiling)
    way_down = min(1.0, math.log(count) / math.log(full_lane))
    return ceiling - way_down * (ceiling - mean)


def average_linkage(similarity: np.ndarray, sizes: np.ndarray, cut: float) -> np.ndarray:
    """Group numbers from size-weighted average linkage (UPGMA), merging while the mean
    similarity between the members of two groups is at least `cut`.

    Rows may stand for several ideas (`sizes`): with `similarity` holding the mean similarity
    between their members, the result is exactly average linkage over the ideas, given that
    each row's ideas stay together. The nearest-neighbour chain makes it O(n^2): a row whose
    best partner is below the cut can never merge again and leaves the chain.
    """
    n = len(sizes)
    sim = np.array(similarity, dtype=np.float64)
    np.fill_diagonal(sim, -np.inf)
    weight = np.asarray(sizes, dtype=np.float64).copy()
    parent = np.arange(n)
    active = np.ones(n, dtype=bool)
    chain: list[int] = []
    while True:
        if not chain:
            left = np.flatnonzero(active)
            if len(left) == 0:
                break
            chain.append(int(left[0]))
        top = chain[-1]
        partner = int(np.argmax(sim[top]))
        if len(chain) > 1 and sim[top, chain[-2]] >= sim[top, partner]:
            partner = chain[-2]
        if sim[top, partner] < cut:
            active[top] = False
            sim[top, :] = sim[:, top] = -np.inf
            chain.pop()
            continue
        if len(chain) == 1 or partner != chain[-2]:
            chain.append(partner)
            continue
        chain.pop()
        chain.pop()
        merged = (weight[top] * sim[top] + weight[partner] * sim[partner]) / (
            weight[top] + weight[partner]
        )
        merged[[top, partner]] = -np.inf
        sim[partner, :] = sim[:, partner] = merged
        sim[top, :] = sim[:, top] = -np.inf
        weight[partner] += weight[top]
        active[top] = False
        parent[top] = partner
    for row in range(n):
        root = row
        while parent[root] != root:
            root = parent[root]
        parent[row] = root
    return np.unique(parent, return_inverse=True)[1]


def group(
    vectors: np.ndarray, ceiling: float, params: GroupingParams = DEFAULT_PARAMS
) -> np.ndarray:
    """A group number 0..k-1 for each row of unit vectors."""
    n = len(vectors)
    if n < 2:
        return np.zeros(n, dtype=int)
    cut = cut_similarity(vectors.sum(axis=0, dtype=np.float64), n, ceiling, params.full_lane)
    if n <= params.direct_limit:
        return average_linkage(vectors @ vectors.T, np.ones(n), cut)
    # Imported here: scikit-learn takes about a second to import, and `mitreden run` should
    # listen before then.
    from sklearn.cluster import MiniBatchKMeans

    micro = MiniBatchKMeans(
        n_clusters=min(max(params.direct_limit // 2, n // params.micro_size), params.max_micro),
        random_state=params.seed,
        init="random",  # k-means++ seeding of thousands of centres took a minute at 7k ideas
        n_init=1,
        batch_size=4096,
    ).fit(vectors)
    _, micro_labels = np.unique(micro.labels_, return_inverse=True)
    sizes = np.bincount(micro_labels)
    means = np.zeros((len(sizes), vectors.shape[1]))
    np.add.at(means, micro_labels, vectors)
    means /= sizes[:, None]
    # means_a . means_b is the mean similarity between the ideas of a and of b, the scale of
    # the cut (normalised centres look far more alike than ideas do, and merged nearly all).
    return average_linkage(means @ means.T, sizes, cut)[micro_labels]


def near_duplicates(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """For each row, the row it repeats (itself if no more typical row says the same).

    Rows are ranked most-central first; a row points at the first-ranked row at least
    `threshold` alike, followed to the end of the chain, so the representative of a set of
    near-identical ideas is the one that says it most typically. Similarities are computed a
    block of rows at a time, so a group of 20,000 ideas needs no 20,000-square matrix.
    """
    n = len(vectors)
    order = np.argsort(-(vectors @ vectors.sum(axis=0)))
    ranked = vectors[order]
    first = np.empty(n, dtype=int)
    block = max(1, 20_000_000 // max(n, 1))
    for start in range(0, n, block):
        alike = ranked[start : start + block] @ ranked.T >= threshold
        alike[np.arange(len(alike)), np.arange(start, start + len(alike))] = True
        first[start : start + block] = alike.argmax(axis=1)
    for rank in range(n):  # first[rank] <= rank, so earlier chains are already resolved
        first[rank] = first[first[rank]]
    leader = np.empty(n, dtype=int)
    leader[order] = order[first]
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
