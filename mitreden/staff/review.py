"""What moderators do to ideas, whatever screen they do it from (a Matrix room, the dashboard,
the command line): each step is audited, and a corrected field teaches the NLP what it got
wrong.

Every idea starts pending. A moderator approves it, rejects it (it then leaves the summaries),
or sets it back to pending to undo either; the latest decision counts.
"""

import re
from typing import Any

from mitreden.flows.catalogue import LANGUAGES, Catalogue
from mitreden.nlp import findings
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store, StoreError
from mitreden.store.store import from_blob

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
# The catalogue's words for each decision, and the audit log's name for it.
DECISION_WORDS = {APPROVED: "words_approve", REJECTED: "words_reject", PENDING: "words_reopen"}
AUDITED_AS = {APPROVED: "idea.approved", REJECTED: "idea.rejected", PENDING: "idea.reopened"}
ANNOUNCED_AS = {
    APPROVED: "review_approved",
    REJECTED: "review_rejected",
    PENDING: "review_reopened",
}
# Emoji variation selectors and skin tones: 👍🏽 is 👍.
EMOJI_VARIANTS = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")


def decision(catalogue: Catalogue, answer: str) -> str | None:
    """The review state a moderator's reply or reaction asks for, in any language, or None."""
    word = EMOJI_VARIANTS.sub("", answer).strip().strip(".!").casefold()
    for state, key in DECISION_WORDS.items():
        if any(word in catalogue.words(language, key) for language in LANGUAGES):
            return state
    return None


def review(store: Store, idea_id: int, state: str, actor: str, now: str) -> str | None:
    """Record a moderator's decision; the state before it, or None if the idea is gone.

    The same decision twice is audited once."""
    with store.transaction():
        was = store.set_review(idea_id, state, now)
        if was is not None and was != state:
            store.audit(now, actor, AUDITED_AS[state], f"idea:{idea_id}", was=was)
    return was


def review_post(
    idea: dict[str, Any], catalogue: Catalogue, taxonomy: Taxonomy, language: str
) -> str:
    """How an idea waiting for review is shown to moderators: its words with personal data
    redacted, and the action field it is filed under."""
    field = idea["confirmed_field"] or idea["suggested_field"]
    try:
        name = taxonomy.get(field).label(language)
    except KeyError:  # none suggested (no NLP), or a field an operator has since removed
        name = catalogue.text(language, "workshop_no_field")
    text = findings.for_others(idea, catalogue.redaction_labels(language))
    post = catalogue.text(language, "review_post", id=idea["id"], field=name, text=text)
    if idea.get("review") == "held":
        post = catalogue.text(language, "review_held") + "\n" + post
    return post


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
