"""The grouping of stored ideas: lanes, joins as ideas arrive, and full recomputes.

Lanes: an idea goes to the lane of the field a resident or moderator confirmed. An idea nobody
confirmed goes to the lane of its best field, unless the suggester is unsure of it (its
probability below `FieldSuggester.unsure_below`; for the uncalibrated prototype method, a
score that is an outlier for that field, below its fence, see `grouping.lower_fence`): then it
goes to NEW_TOPICS and is grouped with other such ideas, so what fits no field does not vanish
into the nearest one.

Within a lane, `grouping.group` makes the groups. Between recomputes a new idea joins the group
whose members it is most alike on average, if that beats the lane's mean pair similarity (at
most the paraphrase floor: the rule the full run cuts at), or starts a group of its own.
Near-identical ideas in a group point at the one that says it most typically (`duplicate_of`)
and count as its support.

The grouping lives in the store; this object keeps what a join needs in memory (per group the
sum of member vectors) and reloads when another process recomputed.
"""

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from mitreden.data import paraphrases_path
from mitreden.nlp.grouping import (
    DEFAULT_PARAMS,
    GroupingParams,
    cut_similarity,
    group,
    keep_ids,
    lower_fence,
    near_duplicates,
)
from mitreden.nlp.suggest import FieldSuggester, embed_cached
from mitreden.store import Store
from mitreden.yamlfile import load_yaml

log = logging.getLogger(__name__)

NEW_TOPICS = "new-topics"
NOT_LOADED = -1
"""A run id no store has (they count from 0), so a book not loaded yet loads when next used."""


def paraphrase_similarities(suggester: FieldSuggester, store: Store | None) -> np.ndarray:
    """How alike the configured model finds the shipped pairs that say one idea twice."""
    pairs = load_yaml(paraphrases_path())["pairs"]
    left = embed_cached(suggester.embedder, store, [a for a, _ in pairs])
    right = embed_cached(suggester.embedder, store, [b for _, b in pairs])
    return np.einsum("ij,ij->i", left, right)


def _lane(
    field_id: str | None,
    confirmed: bool,
    score: float | None,
    fences: Mapping[str, float | None],
    unsure_below: float | None = None,
) -> str:
    """`unsure_below`: a calibrated suggester's probability under which it is sure of no
    field; it replaces the fences, which find outliers among cosines but, among
    probabilities bunched near 1, took a plain office idea at 0.57 for one."""
    if field_id is None:
        return NEW_TOPICS
    if confirmed or score is None:
        return field_id
    fence = fences.get(field_id) if unsure_below is None else unsure_below
    return NEW_TOPICS if fence is not None and score < fence else field_id


class _Lane:
    """Per group of one lane: the sum of its member vectors and their count, as matrix rows
    (grown by doubling), so a join is one matrix-vector product however many groups exist."""

    def __init__(self, dims: int) -> None:
        self.ids: list[int] = []
        self._row: dict[int, int] = {}
        self._sums = np.zeros((8, dims))
        self._counts = np.zeros(8)
        self._total = np.zeros(dims)

    def add(self, cluster_id: int, vector: np.ndarray) -> None:
        row = self._row.get(cluster_id)
        if row is None:
            row = len(self.ids)
            if row == len(self._counts):
                self._sums = np.vstack([self._sums, np.zeros_like(self._sums)])
                self._counts = np.concatenate([self._counts, np.zeros_like(self._counts)])
            self._row[cluster_id] = row
            self.ids.append(cluster_id)
        self._sums[row] += vector
        self._counts[row] += 1
        self._total += vector

    def remove(self, cluster_id: int, vector: np.ndarray) -> None:
        row = self._row[cluster_id]
        self._sums[row] -= vector
        self._counts[row] -= 1
        self._total -= vector
        if self._counts[row] == 0:
            last = len(self.ids) - 1
            self._sums[row], self._counts[row] = self._sums[last], self._counts[last]
            self._sums[last], self._counts[last] = 0.0, 0.0
            self.ids[row] = self.ids[last]
            self._row[self.ids[row]] = row
            self.ids.pop()
            del self._row[cluster_id]

    def best(self, vector: np.ndarray, ceiling: float, full_lane: int) -> int | None:
        """The group this vector is most alike on average, if it beats the lane's cut (the
        full run's rule, `cut_similarity`)."""
        n = len(self.ids)
        if n == 0:
            return None
        means = self._sums[:n] @ vector / self._counts[:n]
        row = int(np.argmax(means))
        cut = cut_similarity(self._total, int(self._counts[:n].sum()), ceiling, full_lane)
        return self.ids[row] if means[row] >= cut else None


@dataclass(frozen=True)
class RunReport:
    ideas: int
    clusters: int
    kept_ids: int
    seconds: float


class ClusterBook:
    def __init__(
        self,
        store: Store,
        suggester: FieldSuggester,
        params: GroupingParams = DEFAULT_PARAMS,
        vectors: Callable[[list[int]], dict[int, np.ndarray]] | None = None,
        load_now: bool = True,
    ) -> None:
        """`vectors` looks up idea vectors already in memory (the similar-ideas index), so a
        join compares with a large group's members without reading them from SQLite.
        Without `load_now` (the regroup job's book) the groups are read when first needed:
        the job mostly finds nothing changed, and reading 100,000 ideas' vectors to learn
        that held the event loop for seconds and 300 MB at every start."""
        self.store = store
        self._vectors_in_memory = vectors
        self.suggester = suggester
        self.params = params
        paraphrases = paraphrase_similarities(suggester, store)
        # Ideas at least as alike as the least alike paraphrase pair always share a group;
        # as alike as the median pair, one counts as support of the other.
        self.same_idea = float(paraphrases.min())
        self.duplicate_similarity = float(np.median(paraphrases))
        self._lock = threading.RLock()
        self._run = NOT_LOADED
        self._fences: dict[str, float] = {}
        self._lanes: dict[str, _Lane] = {}
        self._where: dict[int, tuple[str, int]] = {}
        self._members: dict[int, list[int]] = {}
        self._duplicate_of: dict[int, int | None] = {}
        if load_now:
            self._load()

    def state(self) -> str:
        """What a full recompute depends on: the ideas (count, newest id, latest change), the
        model, the action fields and the grouping's parameters. Kept with each run, so that a
        restart with the same state does not group everything again."""
        count, newest, changed = self.store.ideas_state()
        return json.dumps(
            [
                count,
                newest,
                changed,
                self.suggester.embedder.name,
                self.suggester.field_ids,
                repr(self.params),
            ]
        )

    def _load(self, known: Mapping[int, np.ndarray] | None = None) -> None:
        """Read the groups from the store; `known` vectors need not be read again."""
        with self._lock:
            self._run = self.store.cluster_run_id()
            self._fences = self.store.fences()
            self._lanes = {}
            self._where = {}
            self._members = {}
            self._duplicate_of = {}
            memberships = self.store.memberships()
            ids = [m[0] for m in memberships]
            vectors = {i: known[i] for i in ids if i in known} if known else {}
            vectors.update(self._vectors_of([i for i in ids if i not in vectors], fresh=False))
            for idea_id, cluster_id, lane, duplicate_of in memberships:
                self._remember(idea_id, lane, cluster_id, duplicate_of, vectors[idea_id])

    def _vectors_of(self, idea_ids: list[int], fresh: bool) -> dict[int, np.ndarray]:
        """Vectors from memory where the caller keeps them, else (or if `fresh`) from SQLite."""
        remembered = None if fresh else self._vectors_in_memory
        vectors = remembered(idea_ids) if remembered is not None else {}
        missing = [i for i in idea_ids if i not in vectors]
        if missing:
            vectors.update(self.store.vectors(missing))
        return vectors

    def _remember(
        self, idea_id: int, lane: str, cluster_id: int, duplicate_of: int | None, vector
    ) -> None:
        self._lanes.setdefault(lane, _Lane(len(vector))).add(cluster_id, vector)
        self._where[idea_id] = (lane, cluster_id)
        self._members.setdefault(cluster_id, []).append(idea_id)
        self._duplicate_of[idea_id] = duplicate_of

    def _forget(self, idea_id: int, vector: np.ndarray) -> None:
        lane, cluster_id = self._where.pop(idea_id)
        self._lanes[lane].remove(cluster_id, vector)
        self._members[cluster_id].remove(idea_id)
        if not self._members[cluster_id]:
            del self._members[cluster_id]
        self._duplicate_of.pop(idea_id, None)
        for other, leader in self._duplicate_of.items():
            if leader == idea_id:
                self._duplicate_of[other] = None

    def _refresh(self) -> None:
        """Reload when a recompute ran elsewhere (the command, or another process)."""
        if self.store.cluster_run_id() != self._run:
            self._load()

    def cluster_of(self, idea_id: int) -> int | None:
        with self._lock:
            self._refresh()
            where = self._where.get(idea_id)
            return where[1] if where else None

    def lane_for(self, field_id: str | None, confirmed: bool, score: float | None) -> str:
        return _lane(field_id, confirmed, score, self._fences, self.suggester.unsure_below)

    def place(
        self,
        idea_id: int,
        vector: np.ndarray,
        field_id: str | None,
        confirmed: bool,
        score: float | None,
        now: str,
    ) -> int:
        """Put one idea into a group of its lane now, without a recompute; its group id."""
        with self._lock:
            self._refresh()
            lane = self.lane_for(field_id, confirmed, score)
            try:
                return self._join(idea_id, vector, lane, now, fresh=False)
            except sqlite3.IntegrityError:
                # Another process erased a group or idea this one still knew: reload, try
                # again with what the store holds now.
                self._load()
                return self._join(idea_id, vector, lane, now, fresh=True)

    def _join(self, idea_id: int, vector: np.ndarray, lane: str, now: str, fresh: bool) -> int:
        where = self._where.get(idea_id)
        if where and where[0] == lane:
            return where[1]
        with self.store.transaction():
            if where:
                self.store.drop_membership(idea_id)
            target = self._lanes.get(lane)
            cluster_id = (
                target.best(vector, self.same_idea, self.params.full_lane) if target else None
            )
            duplicate_of = None
            if cluster_id is None:
                cluster_id = self.store.new_cluster(lane, now)
            else:
                duplicate_of = self._duplicate(cluster_id, vector, fresh)
            self.store.set_membership(idea_id, cluster_id, duplicate_of)
        if where:
            self._forget(idea_id, vector)
        self._remember(idea_id, lane, cluster_id, duplicate_of, vector)
        return cluster_id

    def _duplicate(self, cluster_id: int, vector: np.ndarray, fresh: bool) -> int | None:
        leaders = [i for i in self._members[cluster_id] if self._duplicate_of.get(i) is None]
        vectors = self._vectors_of(leaders, fresh)
        leaders = [i for i in leaders if i in vectors]
        if not leaders:
            return None
        sims = np.stack([vectors[i] for i in leaders]) @ vector
        best = int(np.argmax(sims))
        return leaders[best] if sims[best] >= self.duplicate_similarity else None

    def forget(self, ideas: dict[int, np.ndarray]) -> None:
        """Erased ideas leave memory; the store already dropped their rows and empty groups."""
        with self._lock:
            for idea_id, vector in ideas.items():
                if idea_id in self._where:
                    self._forget(idea_id, vector)

    def recompute(self, now: str) -> RunReport:
        """Group every stored idea afresh; groups that barely changed keep their ids."""
        started = time.perf_counter()
        state = self.state()  # before reading: what changes meanwhile is regrouped next time
        placed = self.store.placed_ideas()  # a moderator's choice outlasts the model's
        rows = [row for row in self.store.idea_vectors() if row[0] not in placed]
        ids = np.array([r[0] for r in rows], dtype=int)
        vectors = np.stack([r[4] for r in rows]) if rows else np.zeros((0, self.suggester.dims))
        confirmed = [r[3] in self.suggester.field_ids for r in rows]
        fields, own = self._own_scores([r[3] for r in rows], vectors)
        fences = {
            f: lower_fence(own[[i for i, g in enumerate(fields) if g == f]])
            for f in sorted(set(fields))
        }
        lanes: dict[str, list[int]] = {}
        for i in range(len(rows)):
            lane = _lane(fields[i], confirmed[i], own[i], fences, self.suggester.unsure_below)
            lanes.setdefault(lane, []).append(i)
        old = self._old_groups()
        groups: list[tuple[int | None, str, list[tuple[int, int | None]]]] = []
        for lane, rows_in_lane in lanes.items():
            in_lane = np.array(rows_in_lane)
            labels = group(vectors[in_lane], self.same_idea, self.params)
            members = [in_lane[labels == label] for label in range(labels.max() + 1)]
            inherited = keep_ids(old.get(lane, {}), [set(ids[m].tolist()) for m in members])
            for gid, rows_of_group in zip(inherited, members, strict=True):
                leaders = near_duplicates(vectors[rows_of_group], self.duplicate_similarity)
                entries = [
                    (int(ids[r]), None if leader == k else int(ids[rows_of_group[leader]]))
                    for k, (r, leader) in enumerate(zip(rows_of_group, leaders, strict=True))
                ]
                groups.append((gid, lane, entries))
        kept = sum(gid is not None for gid, _, _ in groups)
        report = RunReport(len(rows), len(groups), kept, time.perf_counter() - started)
        run = {
            "at": now,
            "model": self.suggester.embedder.name,
            "ideas": report.ideas,
            "clusters": report.clusters,
            "kept_ids": report.kept_ids,
            "seconds": round(report.seconds, 3),
            "state": state,
        }
        with self._lock:
            self.store.save_grouping(groups, fences, run)
            self._load(dict(zip(ids.tolist(), vectors, strict=True)))
            self._catch_up(now)
        log.info(
            "grouped %d ideas into %d groups (%d kept their id) in %.1f s",
            report.ideas,
            report.clusters,
            report.kept_ids,
            report.seconds,
        )
        return report

    def _own_scores(
        self, confirmed: list[str | None], vectors: np.ndarray
    ) -> tuple[list[str], np.ndarray]:
        """Each idea's field (the confirmed one, else the best) and its score against it."""
        field_ids = self.suggester.field_ids
        scores = self.suggester.scores(vectors) if len(vectors) else np.zeros((0, len(field_ids)))
        columns = [
            field_ids.index(c) if c in field_ids else int(np.argmax(scores[i]))
            for i, c in enumerate(confirmed)
        ]
        own = scores[np.arange(len(columns)), columns] if columns else np.zeros(0)
        return [field_ids[c] for c in columns], own

    def _old_groups(self) -> dict[str, dict[int, set[int]]]:
        old: dict[str, dict[int, set[int]]] = {}
        for idea_id, cluster_id, lane, _ in self.store.memberships():
            old.setdefault(lane, {}).setdefault(cluster_id, set()).add(idea_id)
        return old

    def _catch_up(self, now: str) -> None:
        """Ideas stored while the recompute ran, or whose group it retired, join one now."""
        for idea_id, suggested, confirmed, vector in self.store.ungrouped_ideas():
            fields, own = self._own_scores([confirmed or suggested], vector[None, :])
            self.place(idea_id, vector, fields[0], confirmed is not None, float(own[0]), now)
