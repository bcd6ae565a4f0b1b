"""What moderators do to ideas, whatever screen they do it from (a Matrix room, the dashboard,
the command line): each step is audited and teaches the NLP what it got wrong."""

from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store, StoreError
from mitreden.store.store import from_blob


def correct_field(
    store: Store,
    taxonomy: Taxonomy,
    nlp: IdeaNlp | None,
    idea_id: int,
    field: str,
    actor: str,
    now: str,
) -> None:
    """File an idea under another action field.

    The suggester unlearns the field confirmed before and learns this one, so the next idea
    like it is suggested better; the idea moves to a group of its new field at once.
    """
    if field not in {f.id for f in taxonomy.leaves}:
        raise StoreError(f"there is no action field {field!r}")
    with store.transaction():
        idea = store.idea(idea_id)
        if idea is None:
            raise StoreError(f"there is no idea {idea_id}")
        was = idea["confirmed_field"]
        store.update_idea(idea_id, confirmed_field=field, updated_at=now)
        store.audit(now, actor, "idea.field_corrected", f"idea:{idea_id}", was=was, to=field)
    if nlp is not None and idea["embedding"] is not None:
        nlp.confirm(idea_id, field, from_blob(idea["embedding"]), now, was=was)
