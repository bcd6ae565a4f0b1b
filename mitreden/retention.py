"""Retention: raw words and contact addresses are kept only as long as they are needed.

A participation round ends with `mitreden round close`. `retention_days` after that, `purge`
replaces the raw text of every idea written until then by its redacted form (as others saw
it, in the idea's language), drops contact addresses, stale conversations and unsent replies
of that time, and ends blocks that ran out. Counts, fields, groups and redacted summaries stay.
`mitreden purge` runs it by hand; the running bot runs it daily (`jobs.PurgeJob`).
"""

from mitreden.flows.catalogue import Catalogue
from mitreden.nlp import findings
from mitreden.store import Store


def purge(store: Store, catalogue: Catalogue, now: str, retention_days: float, actor: str) -> dict:
    """Purge what is past retention; what was done, as counts (also in the audit log)."""
    with store.transaction():
        counts = {"ideas": 0, "contacts": 0, "blocks": store.drop_ended_blocks(now)}
        cutoff = store.retention_cutoff(now, retention_days)
        if cutoff is not None:
            for row in store.ideas_to_purge(cutoff):
                labels = catalogue.redaction_labels(row["language"] or "de")
                store.purge_idea(row["id"], findings.for_others(row, labels), now)
                counts["ideas"] += 1
            counts["contacts"] = store.drop_contacts(cutoff)
            counts.update(store.drop_stale(cutoff))
        if any(counts.values()):
            store.audit(now, actor, "data.purged", **counts)
    store.checkpoint()
    return counts
