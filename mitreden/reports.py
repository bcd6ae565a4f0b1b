"""Summaries as files: Markdown to read and forward, CSV for spreadsheets, JSON for tools.

Headings and phrases come from the message catalogue, so a summary reads in the language the
strategy team asked for.
"""

import copy
import csv
import io
import json
import re
import threading
from dataclasses import asdict

from markdown_it import MarkdownIt

from mitreden.flows.catalogue import Catalogue
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.summary import FieldSummary, summarize
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.spreadsheets import spreadsheet_safe
from mitreden.store import Store

CSV_COLUMNS = [
    "lane",
    "field",
    "group",
    "label",
    "keywords",
    "ideas",
    "people",
    "near_duplicates",
    "merged_from",
    "districts",
    "age_bands",
    "summary",
    "representative_1",
    "representative_2",
    "representative_3",
]


def lanes(taxonomy: Taxonomy) -> list[str]:
    """What a summary can be asked for: each action field's id, and new topics."""
    return [f.id for f in taxonomy.leaves] + [NEW_TOPICS]


class _Kept:
    """Summaries made at the store's current revision (`Store.revision`), so the dashboard's
    groups page and a draft made from it do not summarise 100,000 ideas again while nothing
    changed. Only the current revision's are kept: an erasure moves the revision, and the next
    summary drops what was kept, erased words with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[tuple, list[FieldSummary]] = {}

    def get(self, key: tuple) -> list[FieldSummary] | None:
        with self._lock:
            for old in [k for k in self._made if k[0] != key[0]]:
                del self._made[old]
            made = self._made.get(key)
        return copy.deepcopy(made) if made is not None else None

    def put(self, key: tuple, made: list[FieldSummary]) -> None:
        with self._lock:
            self._made[key] = copy.deepcopy(made)


_KEPT = _Kept()


def summaries(
    store: Store, taxonomy: Taxonomy, catalogue: Catalogue, language: str, field: str | None
) -> list[FieldSummary]:
    """The current summaries, redacted in `language`; one lane if `field` is given."""
    labels = catalogue.redaction_labels(language)
    key = (
        store.revision(),
        language,
        field,
        tuple((f.id, f.title(language)) for f in taxonomy.leaves),
        tuple(sorted(labels.items())),
    )
    made = _KEPT.get(key)
    if made is not None:
        return made
    everything = None if field is None else _KEPT.get((*key[:2], None, *key[3:]))
    if everything is not None:
        # One lane of all lanes' summaries reads as that lane alone (words are weighed across
        # every group either way), and the dashboard's start made them all.
        made = [f for f in everything if f.lane == field]
    else:
        made = summarize(store, taxonomy, labels, language, field)
    _KEPT.put(key, made)
    return made


def to_html(markdown: str) -> str:
    """Markdown as HTML for a chat message; raw HTML in residents' words stays text."""
    return MarkdownIt("commonmark", {"html": False}).render(markdown)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ({n})" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


# A sentence is finished by . ! ? or …, possibly followed by closing quotes (straight, curly,
# guillemets) or brackets.
_FINISHED = re.compile(r"[.!?\u2026][\"'\u00bb\u00ab\u201c\u201d\u2018\u2019)\]]*$")


def as_sentence(text: str) -> str:
    """A resident's sentence with a full stop if it had no final punctuation, so that
    sentences set side by side do not run into each other."""
    text = text.rstrip()
    return text if _FINISHED.search(text) else text + "."


def to_markdown(fields: list[FieldSummary], catalogue: Catalogue, language: str) -> str:
    """The summary to read. "In short" lists its sentences one per line: each is a different
    resident's, and a list keeps them apart without running them into one paragraph."""

    def t(key: str, **params: object) -> str:
        return catalogue.text(language, key, **params)

    def n(key: str, count: int, **params: object) -> str:
        return catalogue.plural(language, key, count, **params)

    def ideas_from_people(ideas: int, people: int) -> str:
        return t(
            "summary_counts",
            ideas=n("summary_counts_ideas", ideas),
            people=n("summary_counts_people", people),
        )

    lines = [f"# {t('summary_title')}", ""]
    if not fields:
        lines.append(t("summary_empty"))
    for f in fields:
        name = t("summary_new_topics") if f.lane == NEW_TOPICS else f.name
        lines += [f"## {name}", "", ideas_from_people(f.ideas, f.people), ""]
        if f.summary:
            lines += [f"**{t('summary_in_short')}:**", ""]
            lines += [f"- {as_sentence(s)}" for s in f.summary] + [""]
        for g in f.groups:
            label = g.label or t("summary_unlabelled")
            lines += [f"### {t('summary_group', id=g.id, label=label)}", ""]
            facts = [ideas_from_people(g.ideas, g.people)]
            if g.near_duplicates:
                facts.append(n("summary_near_duplicates", g.near_duplicates))
            if g.merged_from:
                ids = ", ".join(map(str, g.merged_from))
                facts.append(n("summary_merged", len(g.merged_from), ids=ids))
            if g.districts:
                facts.append(f"{t('summary_districts')}: {_counts(g.districts)}")
            if g.age_bands:
                facts.append(f"{t('summary_age_bands')}: {_counts(g.age_bands)}")
            lines += [f"- {fact}" for fact in facts] + [""]
            lines += [f"{t('summary_representatives')}:", ""]
            lines += [f"> {text}" for text in g.representatives] + [""]
        if f.ungrouped:
            lines += [n("summary_ungrouped", f.ungrouped), ""]
    return "\n".join(lines)


def to_csv(fields: list[FieldSummary]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS)
    writer.writeheader()
    for f in fields:
        for g in f.groups:
            row = {
                "lane": f.lane,
                "field": f.name,
                "group": g.id,
                "label": g.label,
                "keywords": "; ".join(g.keywords),
                "ideas": g.ideas,
                "people": g.people,
                "near_duplicates": g.near_duplicates,
                "merged_from": "; ".join(map(str, g.merged_from)),
                "districts": _counts(g.districts),
                "age_bands": _counts(g.age_bands),
                "summary": " ".join(map(as_sentence, g.summary)),
            }
            for k, text in enumerate(g.representatives, start=1):
                row[f"representative_{k}"] = text
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return out.getvalue()


def to_json(fields: list[FieldSummary]) -> str:
    return json.dumps([asdict(f) for f in fields], ensure_ascii=False, indent=2) + "\n"
