"""What residents said, per action field: groups with a label, counts, representative ideas
and an extractive summary. No language model: every sentence shown is a resident's own,
redacted, picked because it carries the group's most telling words.

Summaries are derived from the store each time they are asked for and never stored, so an
idea erased by /loeschen is gone from the next summary without anything to clean up. Reading an
idea (spaCy's tokens, lemmas and sentences) is the slow part, so each idea is read once and its
reading kept in the store (`Store.keep_readings`), which drops it with the idea or when the
idea's words change; a summary then reads only what is new.
"""

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from mitreden.nlp import findings, keywords
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store
from mitreden.store.ideas import IdeaFacts

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
    label_share: float
    """the share of its ideas that use a word of its label: how well the label speaks for it"""
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


READ_AT_ONCE = 2000
"""Ideas read and kept in one transaction: the engine's writes wait for at most one part."""
SENTENCES_READ_AT_ONCE = 8


def read_new_ideas(store: Store, idea_ids: Iterable[int]) -> int:
    """Read those of these ideas that have no reading yet and keep the readings; returns how
    many. After a start on an old database this is every idea once (30 s at 100,000), which
    the dashboard does beside its start; after that only what is new."""
    unread = store.unread(idea_ids)
    kept = 0
    for start in range(0, len(unread), READ_AT_ONCE):
        part = unread[start : start + READ_AT_ONCE]
        made = keywords.analyse(
            [findings.marked(u._asdict()) for u in part],
            [u.language or "de" for u in part],
        )
        with store.transaction():
            kept += store.keep_readings(
                (
                    u,
                    m.words,
                    json.dumps(keywords.keys(m.words), ensure_ascii=False),
                    json.dumps(m.sentences, ensure_ascii=False),
                )
                for u, m in zip(part, made, strict=True)
            )
    return kept


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
) -> list[FieldSummary]:
    """Summaries per lane (fields in taxonomy order, new topics last); `only` picks one lane.

    Ideas a moderator rejected are left out; pending and approved ones count. Only the lanes
    asked for are read beyond their words, so one field costs little more than its own ideas."""
    rejected = store.rejected()
    clusters = {row["id"]: row for row in store.clusters()}
    shown_as = {cid: _final(cid, clusters) for cid in clusters}
    members: dict[int, list[tuple[int, int | None]]] = {}
    for idea_id, cluster_id, _, duplicate_of in store.memberships():
        if idea_id not in rejected:
            # A near-duplicate of a rejected idea stands for itself.
            leader = None if duplicate_of in rejected else duplicate_of
            members.setdefault(shown_as[cluster_id], []).append((idea_id, leader))
    read_new_ideas(store, (i for entries in members.values() for i, _ in entries))
    # Words are weighed across every idea read, so a word residents use all over ("bitte",
    # "Straße") labels none; the same labels whether one field is asked for or all.
    vocabulary = keywords.vocabulary(store.vocabulary(), len(members))

    order = [f.id for f in taxonomy.leaves] + [NEW_TOPICS]
    lanes: dict[str, list[int]] = {lane: [] for lane in order if not only or lane == only}
    for cid in members:
        if clusters[cid]["lane"] in lanes:
            lanes[clusters[cid]["lane"]].append(cid)
    ungrouped: dict[str, list[int]] = {lane: [] for lane in lanes}
    ideas = {}
    for fact in store.ungrouped_facts():
        if fact.lane in ungrouped:
            ungrouped[fact.lane].append(fact.id)
            ideas[fact.id] = fact
    wanted = [i for cids in lanes.values() for cid in cids for i, _ in members[cid]]
    ideas.update(store.idea_facts(wanted))
    supporters = store.supporters(None if only is None else list(ideas))
    words = store.readings(wanted, "words")
    names = {f.id: f.title(language) for f in taxonomy.leaves}
    result = []
    for lane, in_lane in lanes.items():
        if not in_lane and not ungrouped[lane]:
            continue
        groups = [
            _group(
                store,
                cid,
                clusters,
                members[cid],
                ideas,
                supporters,
                words,
                vocabulary,
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
        lane_ideas = [i for cid in in_lane for i, _ in members[cid]] + ungrouped[lane]
        result.append(
            FieldSummary(
                lane=lane,
                name=names.get(lane, lane),
                ideas=len(lane_ideas),
                people=len(_people(lane_ideas, ideas, supporters)),
                groups=groups,
                summary=[g.summary[0] for g in groups[:REPRESENTATIVES] if g.summary],
                ungrouped=len(ungrouped[lane]),
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


def _people(
    idea_ids: list[int], ideas: dict[int, IdeaFacts], supporters: dict[int, set[str]]
) -> set:
    people = {ideas[i].participant_id for i in idea_ids}
    for i in idea_ids:
        people |= supporters.get(i, set())
    return people


def _group(
    store: Store,
    cid: int,
    clusters: dict[int, dict],
    entries: list[tuple[int, int | None]],
    ideas: dict[int, IdeaFacts],
    supporters: dict[int, set[str]],
    words: dict[int, str],
    vocabulary: keywords.Vocabulary,
    lane: str,
    redaction: Mapping[str, str],
) -> GroupSummary:
    """One group's figures and words. Personal data is a mark character while words are
    weighed and sentences picked (`findings.marked`), so a placeholder is never a keyword and
    a sentence that is mostly personal data is never picked; it becomes the reader's
    placeholder only in what is shown."""
    ids = [i for i, _ in entries]
    leaders = [i for i, dup in entries if dup is None] or ids
    # One group's vectors at a time: all of them at once doubled what a summary of every
    # field at 100,000 ideas held. Ideas a moderator split off without the model have no
    # vector: they come last.
    vectors = store.vectors(leaders)
    embedded = [i for i in leaders if i in vectors]
    central = [i for i in leaders if i not in vectors]
    if embedded:
        stacked = np.stack([vectors[i] for i in embedded])
        centrality = stacked @ stacked.mean(axis=0)
        central = [embedded[k] for k in np.argsort(-centrality)] + central
    members = [words.get(i, "") for i in ids]
    weight = keywords.weights(members, vocabulary)
    typical = [words.get(central[0], "")]
    # No word shared by two ideas (a small or a young group): the most typical idea's own
    # words, which its sentence shown below says anyway.
    label = keywords.label(members, weight) or keywords.label(
        typical, keywords.weights(typical, vocabulary, least_ideas=1)
    )
    label_keys = set(keywords.keys(" ".join(label)))
    using_label = sum(bool(label_keys.intersection(keywords.keys(m))) for m in members)
    said: dict[int, tuple[str, ...]] = {}
    sentences: list[str] = []
    for i, its in _sentences(store, central):
        said[i] = its
        scored = [
            (keywords.sentence_score(s, words.get(i, ""), weight), s)
            for s in its
            if not findings.mostly_marks(s)
        ]
        if scored and len(sentences) < SUMMARY_SENTENCES:
            sentences.append(_shorten(findings.unmarked(max(scored)[1], redaction)))
        if len(sentences) == SUMMARY_SENTENCES and len(said) >= REPRESENTATIVES:
            break
    return GroupSummary(
        id=cid,
        lane=lane,
        label=clusters[cid]["custom_label"] or ", ".join(label),
        keywords=label,
        ideas=len(ids),
        people=len(_people(ids, ideas, supporters)),
        near_duplicates=len(ids) - len(leaders),
        representatives=[
            _shorten(findings.unmarked(" ".join(said[i]), redaction))
            for i in central[:REPRESENTATIVES]
        ],
        summary=sentences,
        districts=dict(Counter(d for i in ids if (d := ideas[i].district))),
        age_bands=dict(Counter(a for i in ids if (a := ideas[i].age_band))),
        label_share=using_label / len(members),
    )


def _sentences(store: Store, ids: list[int]) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Each idea's sentences in the order of `ids`, read a few ideas at a time: a group shows
    only its most central ideas' sentences, and a large one has thousands."""
    for start in range(0, len(ids), SENTENCES_READ_AT_ONCE):
        part = ids[start : start + SENTENCES_READ_AT_ONCE]
        found = store.readings(part, "sentences")
        for i in part:
            yield i, tuple(json.loads(found[i])) if i in found else ()
