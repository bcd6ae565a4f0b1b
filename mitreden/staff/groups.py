"""Groups of similar ideas as moderators shape them: rename, merge, split off, move ideas.

Renames and merges are kept on the group, and a moved idea is marked as placed by a
moderator: all of them survive every regrouping. Moving an idea to another action field
confirms that field.
"""

from datetime import datetime, timedelta

from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.staff import review
from mitreden.staff.review import GroupError
from mitreden.store import Store

MAX_LABEL = 120
TREND_DAYS = 7


def rename(store: Store, cluster_id: int, label: str, actor: str, now: str) -> None:
    """A moderator's own label; an empty one goes back to the keywords."""
    label = " ".join(label.split())[:MAX_LABEL]
    store.rename_cluster(cluster_id, label or None, actor, now)


def merge(store: Store, source: int, target: int, actor: str, now: str) -> None:
    if source == target:
        raise GroupError("a group cannot be merged into itself", "refused_merge_itself")
    store.merge_cluster(source, target, actor, now)


def unmerge(store: Store, source: int, actor: str, now: str) -> None:
    store.merge_cluster(source, None, actor, now)


def move(
    store: Store,
    taxonomy: Taxonomy,
    nlp: IdeaNlp | None,
    idea_id: int,
    target: int | None,
    actor: str,
    now: str,
    lane: str | None = None,
) -> int:
    """Move an idea into group `target`, or into a new group of `lane` (splitting it off);
    returns the group it is in now. A group of another action field files the idea there."""
    with store.transaction():
        idea = store.staff_idea(idea_id)
        if idea is None:
            raise GroupError(f"there is no idea {idea_id}", "refused_no_idea")
        if target is not None:
            cluster = store.cluster(target)
            if cluster is None:
                raise GroupError(f"there is no group {target}", "refused_no_group")
            lane = cluster["lane"]
        elif lane is None:
            raise GroupError(
                "say which group, or which field for a new one", "refused_group_or_field"
            )
        elif lane not in {f.id for f in taxonomy.leaves} | {NEW_TOPICS}:
            raise GroupError(f"there is no action field {lane!r}", "refused_no_field")
        else:
            target = store.new_cluster(lane, now)
        store.set_membership(idea_id, target, None, placed_at=now)
        store.audit(now, actor, "idea.moved", f"idea:{idea_id}", was=idea["cluster_id"], to=target)
    field = idea["confirmed_field"] or idea["suggested_field"]
    if lane in {f.id for f in taxonomy.leaves} and lane != field:
        review.correct_field(store, taxonomy, nlp, idea_id, lane, actor, now)
        with store.transaction():  # correcting the field placed it anew; the moderator chose
            store.set_membership(idea_id, target, None, placed_at=now)
    return target


def trend_since(now: datetime) -> str:
    """Where "recent" starts for a group's trend."""
    return (now - timedelta(days=TREND_DAYS)).isoformat(timespec="seconds")
