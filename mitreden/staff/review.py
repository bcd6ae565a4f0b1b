"""What moderators do to ideas, whatever screen they do it from (a Matrix room, the dashboard,
the command line): each step is audited, and a corrected field teaches the NLP what it got
wrong.

Every idea starts pending (or held, when it may be insulting). A moderator approves it,
rejects it with a reason (it then leaves the summaries), or sets it back to pending; the
latest decision counts, and `undo` goes back to the state before the last one.
"""

import re
from typing import Any

from mitreden.flows.catalogue import LANGUAGES, Catalogue
from mitreden.nlp import findings
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.staff import Refusal
from mitreden.store import Store, StoreError
from mitreden.store.records import from_blob


class GroupError(StoreError, Refusal):
    """A group edit refused; a StoreError too, like the store's own refusals of group edits."""


PENDING, APPROVED, REJECTED, HELD = "pending", "approved", "rejected", "held"
# Why an idea is rejected; each has a catalogue entry `reason_<name>`. "split" is set when
# a moderator splits an idea into several, and is not offered as a choice.
REASONS = ("off_topic", "personal_attack", "personal_data", "duplicate", "spam")
SPLIT = "split"
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
MAX_NOTE = 500
MIN_REVEAL_REASON = 5


class ReviewError(Refusal):
    """A decision that cannot be made as asked; the message says why in one line."""


def decision(catalogue: Catalogue, answer: str) -> str | None:
    """The review state a moderator's reply or reaction asks for, in any language, or None."""
    word = EMOJI_VARIANTS.sub("", answer).strip().strip(".!").casefold()
    for state, key in DECISION_WORDS.items():
        if any(word in catalogue.words(language, key) for language in LANGUAGES):
            return state
    return None


def review(
    store: Store,
    idea_id: int,
    state: str,
    actor: str,
    now: str,
    reason: str | None = None,
    note: str | None = None,
) -> str | None:
    """Record a moderator's decision; the state before it, or None if the idea is gone.

    A rejection from the dashboard carries a reason from REASONS and maybe a note; one from a
    Matrix reply has none. The same decision twice is audited once."""
    if state not in AUDITED_AS:
        raise ReviewError(f"no such decision {state!r}", "refused_decision")
    if reason is not None and reason not in (*REASONS, SPLIT):
        raise ReviewError(f"no such reason {reason!r}", "refused_reason")
    note = (note or "").strip()[:MAX_NOTE] or None
    if state != REJECTED:
        reason = note = None
    with store.transaction():
        was = store.decide(idea_id, state, reason, note, now)
        if was is not None and (was["review"], was["review_reason"]) != (state, reason):
            detail: dict[str, Any] = {"was": was["review"]}
            if reason:
                detail["reason"] = reason
            if was["review_reason"]:
                detail["was_reason"] = was["review_reason"]
            if note:
                detail["note"] = True  # the note itself stays with the idea, erased with it
            store.audit(now, actor, AUDITED_AS[state], f"idea:{idea_id}", **detail)
    return None if was is None else was["review"]


def undo(store: Store, idea_id: int, actor: str, now: str) -> str:
    """Go back to the state before the idea's latest decision; the state it is in now."""
    idea = store.idea(idea_id)
    if idea is not None and idea["review_reason"] == SPLIT:
        raise ReviewError(
            f"idea {idea_id} was split; decide on its parts instead", "refused_was_split"
        )
    last = store.audit_entries(subject=f"idea:{idea_id}", action="idea.", limit=20)
    decided = [e for e in last if e["action"] in AUDITED_AS.values()]
    if not decided:
        raise ReviewError(f"idea {idea_id} has no decision to undo", "refused_no_undo")
    before = decided[0]["detail"]
    state = before.get("was", PENDING)
    reason = before.get("was_reason")
    with store.transaction():
        was = store.decide(idea_id, state, reason, None, now)
        if was is None:
            raise ReviewError(f"there is no idea {idea_id}", "refused_no_idea")
        if was["review_reason"] == "duplicate" and reason != "duplicate":
            store.mark_duplicate(idea_id, None)  # the support it gave the other idea stays
        store.audit(now, actor, "idea.undone", f"idea:{idea_id}", was=was["review"], to=state)
    return state


def mark_duplicate(store: Store, idea_id: int, of: int, actor: str, now: str) -> None:
    """Reject an idea as a repeat of another; its author then counts as a supporter of that
    one, so their voice is not lost."""
    if idea_id == of:
        raise ReviewError("an idea cannot repeat itself", "refused_repeats_itself")
    with store.transaction():
        idea, other = store.idea(idea_id), store.idea(of)
        if idea is None or other is None:
            raise ReviewError(f"there is no idea {of if idea else idea_id}", "refused_no_idea")
        if other["review"] == REJECTED:
            raise ReviewError(f"idea {of} is rejected; choose one that is not", "refused_rejected")
        store.mark_duplicate(idea_id, of)
        store.add_support(idea["participant_id"], of, now)
        was = store.decide(idea_id, REJECTED, "duplicate", None, now)
        store.audit(
            now,
            actor,
            "idea.rejected",
            f"idea:{idea_id}",
            was=was["review"] if was else None,
            reason="duplicate",
            duplicate_of=of,
        )


def reveal(store: Store, idea_id: int, actor: str, reason: str, now: str) -> str:
    """An idea's own words, unredacted, for an admin who says why; the why is audited."""
    reason = " ".join(reason.split())[:MAX_NOTE]
    if len(reason) < MIN_REVEAL_REASON:
        raise ReviewError("say why the raw text is needed", "refused_reveal_reason")
    with store.transaction():
        idea = store.idea(idea_id)
        if idea is None:
            raise ReviewError(f"there is no idea {idea_id}", "refused_no_idea")
        store.audit(now, actor, "idea.revealed", f"idea:{idea_id}", reason=reason)
    return idea["text"]


def split(
    store: Store,
    nlp: IdeaNlp | None,
    idea_id: int,
    parts: list[str],
    actor: str,
    now: str,
) -> list[int]:
    """Split a message that holds several ideas into one idea per part, written by the
    moderator from its redacted words. The parts keep the author, language and details of
    the message (and go with its author's erasure); the message itself is rejected as
    split, so nothing counts twice."""
    parts = [" ".join(p.split()) for p in parts if p.strip()]
    if len(parts) < 2:
        raise ReviewError("a split needs at least two parts", "refused_split_parts")
    vectors: list = [None] * len(parts)
    if nlp is not None:
        original = store.idea(idea_id)  # read for its language; checked again below
        language = original["language"] if original else None
        vectors = list(nlp.offsets.neutral(nlp.embedder.embed(parts), language))
    suggested = [nlp.suggest(v, k=1)[0] if nlp is not None else None for v in vectors]
    with store.transaction():
        idea = store.idea(idea_id)
        if idea is None:
            raise ReviewError(f"there is no idea {idea_id}", "refused_no_idea")
        if idea["review_reason"] == SPLIT:
            raise ReviewError(f"idea {idea_id} was split already", "refused_split_again")
        kept = ("participant_id", "language", "district", "age_band", "actor_group", "notify")
        new_ids = []
        for text, vector, suggestion in zip(parts, vectors, suggested, strict=True):
            new_ids.append(
                store.add_idea(
                    **{k: idea[k] for k in (*kept, "workshop_id", "created_at")},
                    text=text,
                    findings="[]",
                    review=PENDING,
                    updated_at=now,
                    embedding=vector,
                    embedding_model=nlp.model if nlp is not None else None,
                    suggested_field=suggestion[0] if suggestion else None,
                    suggested_score=suggestion[1] if suggestion else None,
                )
            )
        store.decide(idea_id, REJECTED, SPLIT, None, now)
        store.audit(now, actor, "idea.split", f"idea:{idea_id}", into=new_ids)
    if nlp is not None:
        for new_id, vector, suggestion in zip(new_ids, vectors, suggested, strict=True):
            if suggestion is not None:  # always, with an NLP
                nlp.remember(new_id, idea["participant_id"], suggestion, vector, now)
    return new_ids


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
    if idea.get("review") == HELD:
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
        raise GroupError(f"there is no action field {field!r}", "refused_no_field")
    with store.transaction():
        idea = store.idea(idea_id)
        if idea is None:
            raise GroupError(f"there is no idea {idea_id}", "refused_no_idea")
        was = idea["confirmed_field"]
        store.update_idea(idea_id, confirmed_field=field, updated_at=now)
        store.audit(now, actor, "idea.field_corrected", f"idea:{idea_id}", was=was, to=field)
    if nlp is not None and idea["embedding"] is not None:
        nlp.confirm(idea_id, field, from_blob(idea["embedding"]), now, was=was)
