"""Summaries as files: Markdown to read and forward, CSV for spreadsheets, JSON for tools.

Headings and phrases come from the message catalogue, so a summary reads in the language the
strategy team asked for.
"""

import csv
import io
import json
from dataclasses import asdict

from markdown_it import MarkdownIt

from mitreden.flows.catalogue import Catalogue
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.summary import FieldSummary, summarize
from mitreden.nlp.taxonomy import Taxonomy
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


def summaries(
    store: Store, taxonomy: Taxonomy, catalogue: Catalogue, language: str, field: str | None
) -> list[FieldSummary]:
    """The current summaries, redacted in `language`; one lane if `field` is given."""
    return summarize(store, taxonomy, catalogue.redaction_labels(language), language, field)


def to_html(markdown: str) -> str:
    """Markdown as HTML for a chat message; raw HTML in residents' words stays text."""
    return MarkdownIt("commonmark", {"html": False}).render(markdown)


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting with = + - @ gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ({n})" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def to_markdown(fields: list[FieldSummary], catalogue: Catalogue, language: str) -> str:
    def t(key: str, **params: object) -> str:
        return catalogue.text(language, key, **params)

    lines = [f"# {t('summary_title')}", ""]
    if not fields:
        lines.append(t("summary_empty"))
    for f in fields:
        name = t("summary_new_topics") if f.lane == NEW_TOPICS else f.name
        lines += [f"## {name}", "", t("summary_counts", ideas=f.ideas, people=f.people), ""]
        if f.summary:
            lines += [f"**{t('summary_in_short')}:** " + " ".join(f.summary), ""]
        for g in f.groups:
            label = g.label or t("summary_unlabelled")
            lines += [f"### {t('summary_group', id=g.id, label=label)}", ""]
            facts = [t("summary_counts", ideas=g.ideas, people=g.people)]
            if g.near_duplicates:
                facts.append(t("summary_near_duplicates", count=g.near_duplicates))
            if g.merged_from:
                facts.append(t("summary_merged", ids=", ".join(map(str, g.merged_from))))
            if g.districts:
                facts.append(f"{t('summary_districts')}: {_counts(g.districts)}")
            if g.age_bands:
                facts.append(f"{t('summary_age_bands')}: {_counts(g.age_bands)}")
            lines += [f"- {fact}" for fact in facts] + [""]
            lines += [f"{t('summary_representatives')}:", ""]
            lines += [f"> {text}" for text in g.representatives] + [""]
        if f.ungrouped:
            lines += [t("summary_ungrouped", count=f.ungrouped), ""]
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
                "summary": " ".join(g.summary),
            }
            for k, text in enumerate(g.representatives, start=1):
                row[f"representative_{k}"] = text
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return out.getvalue()


def to_json(fields: list[FieldSummary]) -> str:
    return json.dumps([asdict(f) for f in fields], ensure_ascii=False, indent=2) + "\n"
