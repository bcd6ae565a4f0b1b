"""Summaries moderators edit and approve before anything is forwarded.

A draft is built from the groups as they are now (the same Markdown `mitreden summary`
writes) together with the ids of the ideas it speaks for. Moderators edit its text; the
approved version is what is forwarded, word for word. A forwarded summary is never changed:
a new draft is made instead.
"""

from typing import TYPE_CHECKING, Any

from mitreden import reports
from mitreden.flows.catalogue import Catalogue
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.staff import Refusal
from mitreden.store import Store

if TYPE_CHECKING:
    from mitreden.staff.reach import Population

DRAFT, APPROVED, FORWARDED = "draft", "approved", "forwarded"
MAX_TEXT = 200_000
# The table of who spoke sits under the field's heading (##), beside its groups (###).
WHO_SPOKE_LEVEL = 3


class SummaryError(Refusal):
    """A summary cannot be changed as asked; the message says why in one line."""


def draft(
    store: Store,
    taxonomy: Taxonomy,
    catalogue: Catalogue,
    lane: str,
    language: str,
    actor: str,
    now: str,
    population: "Population | None" = None,
) -> int:
    """A new draft for one action field (or new topics) from the current groups; with the
    `population`, a table of who spoke follows (mitreden/staff/reach.py), so the strategy
    team sees whose ideas these are and whose are missing."""
    if lane not in reports.lanes(taxonomy):
        raise SummaryError(f"there is no action field {lane!r}", "refused_no_field")
    fields = reports.summaries(store, taxonomy, catalogue, language, lane)
    text = reports.to_markdown(fields, catalogue, language)
    idea_ids = store.lane_idea_ids(lane)
    if population is not None:
        from mitreden.flows.definition import load_flow
        from mitreden.staff import reach

        spoke = reach.figures(store, population, idea_ids, reach.IN_SUMMARIES)
        labels = reach.Labels(load_flow(), catalogue, language)
        text += "\n" + reach.to_markdown(spoke, labels, reach.IN_SUMMARIES, WHO_SPOKE_LEVEL)
    with store.transaction():
        summary_id = store.add_summary(lane, language, text, idea_ids, actor, now)
        store.audit(now, actor, "summary.drafted", f"summary:{summary_id}", lane=lane)
    return summary_id


def without_who_spoke(summary: dict[str, Any], catalogue: Catalogue) -> str:
    """A summary's text up to the table of who spoke that `draft` puts at its end (found by
    its heading, as a moderator may have edited everything around it)."""
    text = summary["text"]
    heading = "#" * WHO_SPOKE_LEVEL + " " + catalogue.text(summary["language"], "reach_title")
    at = text.find(f"\n{heading}\n")
    return text[:at].rstrip() if at > 0 else text


def _open(store: Store, summary_id: int) -> dict[str, Any]:
    summary = store.summary(summary_id)
    if summary is None:
        raise SummaryError(f"there is no summary {summary_id}", "refused_no_summary")
    if summary["state"] == FORWARDED:
        raise SummaryError(
            f"summary {summary_id} was forwarded; make a new draft", "refused_was_forwarded"
        )
    return summary


def edit(store: Store, summary_id: int, text: str, actor: str, now: str) -> None:
    """Save a moderator's text. An approved summary that is edited is a draft again."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise SummaryError("a summary cannot be empty", "refused_summary_empty")
    if len(text) > MAX_TEXT:
        raise SummaryError(
            f"a summary has at most {MAX_TEXT} characters", "refused_summary_long", count=MAX_TEXT
        )
    with store.transaction():
        summary = _open(store, summary_id)
        if summary["text"] == text:
            return
        store.update_summary(summary_id, text=text, state=DRAFT, updated_at=now)
        store.audit(now, actor, "summary.edited", f"summary:{summary_id}", was=summary["state"])


def approve(store: Store, summary_id: int, actor: str, now: str) -> None:
    with store.transaction():
        summary = _open(store, summary_id)
        if summary["state"] == APPROVED:
            return
        store.update_summary(
            summary_id, state=APPROVED, approved_by=actor, approved_at=now, updated_at=now
        )
        store.audit(now, actor, "summary.approved", f"summary:{summary_id}")
