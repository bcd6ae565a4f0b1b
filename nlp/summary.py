"""What residents said, per action field: groups with a label, counts, representative ideas
and an extractive summary. No language model: every sentence shown is a resident's own,
redacted, picked because it carries the group's most telling words.

Summaries are derived from the store each time they are asked for and never stored, so an
idea erased by /loeschen is gone from the next summary without anything to clean up. Reading an
idea (spaCy's tokens, lemmas and sentences) is the slow part, so each idea's reading is kept in
memory while its text stays the same (`Readings`); the dashboard's pages then read only what is
new, and an erased idea's reading is dropped by the next summary.
"""

import itertools
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mitreden.nlp import findings, keywords
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store

REPRESENTATIVES = 3
SUMMARY_SENTENCES = 2
MAX_SENTENCE = 280


@dataclass
class GroupSummary:
    id: int
    lane: str
    label: str
    keywords: list[str]
    ideas: int
    people: int
    near_duplicates: int
    representatives: list[str]
    summary: list[str]
    districts: dict[str, int]
    age_bands: dict[str, int]
    merged_from: list[int] = field(default_factory=list)


@dataclass
class FieldSummary:
    lane: str
    name: str
    ideas: int
    people: int
    groups: list[GroupSummary]
    summary: list[str]
    ungrouped: int = 0


class Readings:
    """Each idea's reading (`keywords.analyse` of its marked text), kept while the idea's text,
    findings and language stay the same, and each group's words counted, kept while its
    members and their readings stay the same. Safe to share between the engine's thread and
    the pages' thread."""

    def __init__(self) -> None:
        # Per idea id, in dicts of their own: Python's garbage collector leaves dicts of
        # numbers alone, where a tuple per idea would be one more object for it to visit.
        self._kept: dict[int, keywords.Analysed] = {}
        self._fingerprints: dict[int, int] = {}
        self._serials_of: dict[int, int] = {}
        """when each reading was made: a group's words are counted again when one is newer"""
        self._words: dict[tuple[int, ...], tuple[int, keywords.Words]] = {}
        """member ids: (newest serial among their readings, their words)"""
        self._serials = itertools.count()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many ideas' readings are kept."""
        return len(self._kept)

    def of(self, ideas: Mapping[int, Mapping], wanted: list[int]) -> dict[int, keywords.Analysed]:
        """The readings of the ideas `wanted` (ids in `ideas`); readings of ideas that are no
        longer in `ideas` are forgotten, so erased words do not stay in memory."""
        with self._lock:
            for gone in self._kept.keys() - ideas.keys():
                del self._kept[gone], self._fingerprints[gone], self._serials_of[gone]
            seen = {i: _fingerprint(ideas[i]) for i in wanted}
            new = [i for i in wanted if self._fingerprints.get(i) != seen[i]]
            read = keywords.analyse(
                [findings.marked(ideas[i]) for i in new], [ideas[i]["language"] for i in new]
            )
            for i, analysed in zip(new, read, strict=True):
                self._kept[i], self._fingerprints[i] = analysed, seen[i]
                self._serials_of[i] = next(self._serials)
            return {i: self._kept[i] for i in wanted}

    def words(self, groups: list[list[int]]) -> list[keywords.Words]:
        """Each group's words (its members read by `of` before); only these groups' are kept."""
        with self._lock:
            result, kept = [], {}
            for ids in groups:
                key = tuple(ids)
                newest = max((self._serials_of[i] for i in ids), default=-1)
                known = self._words.get(key)
                if known is None or known[0] != newest:
                    known = (newest, keywords.words([self._kept[i] for i in ids]))
                kept[key] = known
                result.append(known[1])
            self._words = kept
            return result


def _fingerprint(idea: Mapping) -> int:
    return hash((idea["text"], idea["findings"], idea["language"]))


READINGS = Readings()
"""The readings of this process: one store per process, so one set of readings."""


def _shorten(sentence: str) -> str:
    if len(sentence) <= MAX_SENTENCE:
        return sentence
    return sentence[: MAX_SENTENCE - 1].rsplit(" ", 1)[0] + "…"


def summarize(
    store: Store,
    taxonomy: Taxonomy,
    redaction: Mapping[str, str],
    language: str = "de",
    only: str | None = None,
    readings: Readings = READINGS,
) -> list[FieldSummary]:
    """Summaries per lane (fields in taxonomy order, new topics last); `only` picks one lane.

    Ideas a moderator rejected are left out; pending and approved ones count."""
    ideas = {row["id"]: row for row in store.ideas() if row["review"] != "rejected"}
    supporters = store.supporters()
    clusters = {row["id"]: row for row in store.clusters()}
    shown_as = {cid: _final(cid, clusters) for cid in clusters}
    members: dict[int, list[tuple[int, int | None]]] = {}
    for idea_id, cluster_id, _, duplicate_of in store.memberships():
        if idea_id not in ideas:
            continue
        members.setdefault(shown_as[cluster_id], []).append((idea_id, duplicate_of))
    lanes: dict[str, list[int]] = {}
    for cid in members:
        lanes.setdefault(clusters[cid]["lane"], []).append(cid)
    grouped = {idea_id for entries in members.values() for idea_id, _ in entries}

    # Words are weighed across every group of every field, so a word residents use all over
    # ("bitte", "Straße") labels none; the same labels whether one field is asked for or all.
    cids = list(members)
    ids_per_group = [[i for i, _ in members[cid]] for cid in cids]
    read = readings.of(ideas, [i for ids in ids_per_group for i in ids])
    analysed = {
        cid: {i: read[i] for i in ids} for cid, ids in zip(cids, ids_per_group, strict=True)
    }
    wanted = [k for k, cid in enumerate(cids) if not only or clusters[cid]["lane"] == only]
    weighed = keywords.weights(readings.words(ids_per_group), wanted)
    weights = {cids[k]: weight for k, weight in zip(wanted, weighed, strict=True)}

    order = [f.id for f in taxonomy.leaves] + [NEW_TOPICS]
    names = {f.id: f.title(language) for f in taxonomy.leaves}
    result = []
    for lane in order:
        if only and lane != only:
            continue
        in_lane = lanes.get(lane, [])
        ungrouped = [
            i
            for i, row in ideas.items()
            if i not in grouped and (row["confirmed_field"] or row["suggested_field"]) == lane
        ]
        if not in_lane and not ungrouped:
            continue
        vectors = store.vectors([i for cid in in_lane for i, _ in members[cid]])
        groups = [
            _group(
                cid,
                clusters,
                members[cid],
                ideas,
                vectors,
                supporters,
                analysed[cid],
                weights[cid],
                lane,
                redaction,
            )
            for cid in in_lane
        ]
        groups.sort(key=lambda g: (-g.people, -g.ideas, g.id))
        for g in groups:
            g.merged_from = sorted(
                c for c, final in shown_as.items() if final == g.id and c != g.id
            )
        # Ideas not in a group yet count too, and so do the people who gave them.
        lane_ideas = [i for cid in in_lane for i, _ in members[cid]] + ungrouped
        result.append(
            FieldSummary(
                lane=lane,
                name=names.get(lane, lane),
                ideas=len(lane_ideas),
                people=len(_people(lane_ideas, ideas, supporters)),
                groups=groups,
                summary=[g.summary[0] for g in groups[:REPRESENTATIVES] if g.summary],
                ungrouped=len(ungrouped),
            )
        )
    return result


def _final(cluster_id: int, clusters: dict[int, dict]) -> int:
    """The group a merged group is shown in (merges chain, see Store.merge_cluster)."""
    seen = set()
    while clusters[cluster_id]["merged_into"] and cluster_id not in seen:
        seen.add(cluster_id)
        cluster_id = clusters[cluster_id]["merged_into"]
    return cluster_id


def _people(idea_ids: list[int], ideas: dict[int, dict], supporters: dict[int, set[str]]) -> set:
    people = {ideas[i]["participant_id"] for i in idea_ids}
    for i in idea_ids:
        people |= supporters.get(i, set())
    return people


def _group(
    cid: int,
    clusters: dict[int, dict],
    entries: list[tuple[int, int | None]],
    ideas: dict[int, dict],
    vectors: dict[int, np.ndarray],
    supporters: dict[int, set[str]],
    analysed: dict[int, keywords.Analysed],
    weight: dict[str, float],
    lane: str,
    redaction: Mapping[str, str],
) -> GroupSummary:
    """One group's figures and words. Personal data is a mark character while words are
    weighed and sentences picked (`findings.marked`), so a placeholder is never a keyword and
    a sentence that is mostly personal data is never picked; it becomes the reader's
    placeholder only in what is shown."""
    ids = [i for i, _ in entries]
    # A near-duplicate of a rejected idea stands for itself.
    leaders = [i for i, dup in entries if dup is None or dup not in ideas] or ids
    # Ideas a moderator split off without the model have no vector: they come last.
    embedded = [i for i in leaders if i in vectors]
    central = [i for i in leaders if i not in vectors]
    if embedded:
        stacked = np.stack([vectors[i] for i in embedded])
        centrality = stacked @ stacked.mean(axis=0)
        central = [embedded[k] for k in np.argsort(-centrality)] + central
    words = keywords.label(list(analysed.values()), weight)
    sentences = []
    for i in central:
        scored = [
            (keywords.sentence_score(s, analysed[i], weight), s)
            for s in analysed[i].sentences
            if not findings.mostly_marks(s)
        ]
        if scored:
            sentences.append(_shorten(findings.unmarked(max(scored)[1], redaction)))
        if len(sentences) == SUMMARY_SENTENCES:
            break
    return GroupSummary(
        id=cid,
        lane=lane,
        label=clusters[cid]["custom_label"] or ", ".join(words),
        keywords=words,
        ideas=len(ids),
        people=len(_people(ids, ideas, supporters)),
        near_duplicates=len(ids) - len(leaders),
        representatives=[
            _shorten(findings.unmarked(" ".join(analysed[i].sentences), redaction))
            for i in central[:REPRESENTATIVES]
        ],
        summary=sentences,
        districts=dict(Counter(ideas[i]["district"] for i in ids if ideas[i]["district"])),
        age_bands=dict(Counter(ideas[i]["age_band"] for i in ids if ideas[i]["age_band"])),
    )
