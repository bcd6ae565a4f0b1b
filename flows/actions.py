"""What steps do with an answer (actions) and where run-time choices come from (sources).

A flow file names these; `check` makes sure every name it uses exists, so a typo in a flow
fails at start, not in the middle of someone's conversation.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import Flow, FlowError, Step
from mitreden.flows.messages import Choice, Outbound
from mitreden.nlp import abuse, findings
from mitreden.nlp.pipeline import StoredIdea
from mitreden.nlp.redact import Finding, find, visible
from mitreden.store.ideas import IDEA_COLUMNS
from mitreden.store.records import from_blob

if TYPE_CHECKING:
    from mitreden.flows.engine import Turn

Action = Callable[["Turn", Step, str], str | None]
Source = Callable[["Turn"], tuple[list[Choice], dict[str, object]]]
Renderer = Callable[["Turn", list[str]], dict[str, object]]
ACTIONS: dict[str, Action] = {}
SOURCES: dict[str, Source] = {}
# Question parameters made anew each time a question is shown, from the values of the choices
# it offers: what must not be kept in a conversation (other people's words) is kept as ids.
RENDERERS: dict[str, Renderer] = {}
# An action may return this instead of a step: go back to where a command interrupted.
RESUME = "@resume"
SIMILAR_SHOWN = 2
SNIPPET = 280


def action(name: str) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


def source(name: str) -> Callable[[Source], Source]:
    def register(fn: Source) -> Source:
        SOURCES[name] = fn
        return fn

    return register


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[name] = fn
        return fn

    return register


def check(flow: Flow, catalogue: Catalogue) -> None:
    for step in flow.steps.values():
        if step.action and step.action not in ACTIONS:
            raise FlowError(f"step {step.name!r}: unknown action {step.action!r}")
        if step.choices_from and step.choices_from not in SOURCES:
            raise FlowError(f"step {step.name!r}: unknown source {step.choices_from!r}")
        keys = [*step.say, step.ask] + [c.label for c in (*step.choices, *step.extra)]
        missing = [k for k in keys if k and not catalogue.has(k)]
        if missing:
            raise FlowError(f"step {step.name!r}: no message {missing}")
        if not step.end and not step.ask:
            raise FlowError(f"step {step.name!r} neither asks nor ends")
        if step.action == "set_idea_detail" and step.store_as not in IDEA_COLUMNS:
            raise FlowError(f"step {step.name!r}: store_as must be one of the idea's details")


def redaction_labels(turn: "Turn") -> dict[str, str]:
    return turn.engine.catalogue.redaction_labels(turn.lang)


# sources


@source("suggested_fields")
def suggested_fields(turn: "Turn") -> tuple[list[Choice], dict[str, object]]:
    taxonomy = turn.engine.taxonomy
    ids = turn.data.get("suggestions") or [f.id for f in taxonomy.leaves[:3]]
    choices = [Choice(i, taxonomy.get(i).label(turn.lang)) for i in ids]
    return choices, {"idea": turn.data.get("idea_text", "")}


@source("all_fields")
def all_fields(turn: "Turn") -> tuple[list[Choice], dict[str, object]]:
    return [Choice(f.id, f.label(turn.lang)) for f in turn.engine.taxonomy.leaves], {}


@source("similar_ideas")
def similar_ideas(turn: "Turn") -> tuple[list[Choice], dict[str, object]]:
    """Up to SIMILAR_SHOWN ideas of others like this one, as choices to support. Only their
    ids are kept in the conversation; `similar_listing` shows their words each time."""
    idea = turn.store.idea(turn.data.get("idea_id", -1))
    if turn.nlp is None or idea is None or idea["embedding"] is None:
        return [], {}
    owner = turn.conv.participant_id
    ids = turn.nlp.similar(
        from_blob(idea["embedding"]),
        owner,
        idea["confirmed_field"] or idea["suggested_field"],
        exclude=frozenset(turn.store.supported_by(owner)),
        k=SIMILAR_SHOWN * 2,
    )
    shown = [i for i in ids if _shareable(turn.store.idea(i))][:SIMILAR_SHOWN]
    choices = [
        Choice(str(other_id), turn.text("support_choice", number=number))
        for number, other_id in enumerate(shown, start=1)
    ]
    return choices, {}


def _shareable(idea: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether other residents may see an idea: not erased, not held for review (an insult)
    and not rejected by a moderator."""
    return idea is not None and idea["review"] not in ("held", "rejected")


@renderer("similar_ideas")
def similar_listing(turn: "Turn", values: list[str]) -> dict[str, object]:
    labels, listing = redaction_labels(turn), []
    for number, value in enumerate((v for v in values if v.isdigit()), start=1):
        other = turn.store.idea(int(value))
        if _shareable(other):
            text = findings.for_others(other, labels)
            if len(text) > SNIPPET:
                text = text[:SNIPPET].rsplit(" ", 1)[0] + " …"
        else:  # erased or taken back since it was offered
            text = turn.text("workshop_option_gone")
        listing.append(turn.text("similar_item", number=number, text=text))
    return {"listing": "\n".join(listing)}


@source("redactions")
def redactions(turn: "Turn") -> tuple[list[Choice], dict[str, object]]:
    """The author's preview: their idea as others will read it, and one "keep this word"
    choice per piece of personal data found (for a word that is none)."""
    text = visible(turn.data["idea_text"])
    found = _findings(turn)
    choices = [
        Choice(f"keep:{n}", turn.text("preview_keep", word=text[f.start : f.end]))
        for n, f in enumerate(found)
    ]
    shown = findings.for_others(
        {"text": turn.data["idea_text"], "findings": findings.dump(found)}, redaction_labels(turn)
    )
    return choices, {"shown": shown}


# actions


@action("set_language")
def set_language(turn: "Turn", step: Step, value: str) -> str | None:
    turn.conv.language = value
    if turn.data.pop("detected", False):
        turn.say("language_detected")
    if "resume" in turn.data:
        return RESUME
    if turn.consented():
        turn.say("welcome_back")
        return turn.engine.flow.roles["idea"]
    return None


def give_consent(turn: "Turn") -> None:
    pid, version = turn.conv.participant_id, turn.engine.flow.consent_version
    turn.store.ensure_participant(pid, turn.msg.channel, turn.now)
    turn.store.record_consent(pid, version, True, turn.lang, turn.now)
    turn.store.audit(turn.now, "participant", "consent.given", version=version)


@action("record_consent")
def record_consent(turn: "Turn", step: Step, value: str) -> str | None:
    pid, version = turn.conv.participant_id, turn.engine.flow.consent_version
    if value == turn.engine.flow.answers["yes"]:
        give_consent(turn)
    elif turn.store.consented_version(pid) is not None:
        # Withdrawing an earlier consent is recorded; a first "no" leaves no trace at all.
        turn.store.record_consent(pid, version, False, turn.lang, turn.now)
        turn.store.audit(turn.now, "participant", "consent.withdrawn", version=version)
    return None


def _understood(turn: "Turn", text: str) -> tuple[Any, list[tuple[str, float]]]:
    """An idea's embedding and its suggested fields, best first; none without NLP."""
    if turn.nlp is None:
        return None, []
    vector = turn.nlp.embed(text, turn.lang)
    return vector, turn.nlp.suggest(vector, k=3)


def keep_idea(
    turn: "Turn",
    text: str,
    workshop_id: int | None = None,
    found: list[Finding] | None = None,
    kept: list[Finding] | None = None,
) -> tuple[int, list[str]]:
    """Store an idea with its embedding, field suggestion and personal data found; returns its
    id and the suggested fields, best first. Memory (index, groups) learns it after the
    commit. An idea that insults someone is held for a moderator instead of shown to others."""
    pid, nlp = turn.conv.participant_id, turn.nlp
    vector, suggestions = _understood(turn, text)
    held = abuse.insulting(text)
    idea_id = turn.store.add_idea(
        participant_id=pid,
        text=text,
        language=turn.lang,
        suggested_field=suggestions[0][0] if suggestions else None,
        suggested_score=suggestions[0][1] if suggestions else None,
        created_at=turn.now,
        updated_at=turn.now,
        embedding=vector,
        embedding_model=nlp.model if nlp else None,
        workshop_id=workshop_id,
        findings=findings.dump(find(visible(text)) if found is None else found),
        kept=findings.dump(kept) if kept else None,
        review="held" if held else "pending",
    )
    turn.store.audit(turn.now, "participant", "idea.created", f"idea:{idea_id}")
    if held:
        turn.store.audit(turn.now, "system", "idea.held", f"idea:{idea_id}", why="insult")
        turn.say("idea_held")
    if nlp is not None and vector is not None:
        best, now = suggestions[0], turn.now
        turn.after_commit.append(lambda: nlp.remember(idea_id, pid, best, vector, now))
    return idea_id, [f for f, _ in suggestions]


def _rewrite_idea(
    turn: "Turn", idea_id: int, text: str, found: list[Finding], kept: list[Finding]
) -> list[str]:
    """The author changed the words of an idea already stored: everything derived from the
    words is made anew, and memory forgets the old vector and learns the new one."""
    old = turn.store.idea(idea_id)
    if old is None:  # the caller found it in this step's transaction
        raise LookupError(f"idea {idea_id} is gone")
    nlp = turn.nlp
    vector, suggestions = _understood(turn, text)
    turn.store.replace_text(
        idea_id,
        text=text,
        findings=findings.dump(found),
        kept=findings.dump(kept) if kept else None,
        embedding=vector,
        suggested_field=suggestions[0][0] if suggestions else None,
        suggested_score=suggestions[0][1] if suggestions else None,
        updated_at=turn.now,
    )
    turn.store.audit(turn.now, "participant", "idea.rewritten", f"idea:{idea_id}")
    if abuse.insulting(text) and old["review"] != "held":
        turn.store.set_review(idea_id, "held", turn.now)
        turn.store.audit(turn.now, "system", "idea.held", f"idea:{idea_id}", why="insult")
        turn.say("idea_held")
    if nlp is not None and vector is not None:
        pid, best, now = turn.conv.participant_id, suggestions[0], turn.now
        before = []
        if old["embedding"] is not None:
            before = [StoredIdea(idea_id, old["confirmed_field"], from_blob(old["embedding"]))]

        def relearn() -> None:
            nlp.forget(before)
            nlp.remember(idea_id, pid, best, vector, now)

        turn.after_commit.append(relearn)
    return [f for f, _ in suggestions]


def field_label(turn: "Turn", field: str | None, language: str) -> str:
    try:
        return turn.engine.taxonomy.get(field).label(language)
    except KeyError:  # none suggested yet, or a field an operator has since removed
        return turn.engine.catalogue.text(language, "workshop_no_field")


@action("save_idea")
def save_idea(turn: "Turn", step: Step, text: str) -> str | None:
    """A new idea's words (step `idea`) or the author's new words for the current one
    (`edit_idea`). Keyboard mashing is asked again, a repeat is not stored twice, and words
    that hold personal data are first shown to the author as others will read them."""
    if abuse.gibberish(text):
        turn.say("idea_gibberish")
        return step.name
    editing = step.name != turn.engine.flow.roles["idea"]
    if not editing:
        turn.data.pop("idea_id", None)
        if _repeated(turn, text):
            turn.say("idea_repeated")
            return "another"
        if _over_daily_limit(turn):
            turn.data["draft"] = {"text": text}
            return "idea_limit"
    turn.data["idea_text"] = text
    turn.data["findings"] = findings.dump(find(visible(text)))
    turn.data.pop("kept", None)
    if _findings(turn):
        return "preview"
    _store(turn)
    return "field"


def _findings(turn: "Turn") -> list[Finding]:
    return findings.load(turn.data.get("findings", "[]"), "")


def _repeated(turn: "Turn", text: str) -> bool:
    """The same words as one of the person's own ideas: a double send, not a second idea."""
    folded = " ".join(text.casefold().split())
    return any(
        " ".join(row["text"].casefold().split()) == folded
        for row in turn.store.ideas_since(turn.conv.participant_id, "")
    )


def _over_daily_limit(turn: "Turn") -> bool:
    limit = turn.engine.limits.ideas_per_day
    since = (datetime.fromisoformat(turn.now) - timedelta(days=1)).isoformat()
    return len(turn.store.ideas_since(turn.conv.participant_id, since)) >= limit


@action("preview")
def preview(turn: "Turn", step: Step, value: str) -> str | None:
    """The author's answer to the preview: fine, change the words (routed by the flow), or a
    word to keep because it is no personal data, recorded for this idea only."""
    if value == turn.engine.flow.answers["change"]:
        return None
    if value.startswith("keep:"):
        found = _findings(turn)
        number = int(value.removeprefix("keep:"))
        if 0 <= number < len(found):
            kept = [*findings.load(turn.data.get("kept", "[]"), ""), found.pop(number)]
            turn.data["findings"], turn.data["kept"] = findings.dump(found), findings.dump(kept)
        if found:
            return "preview"
    _store(turn)
    return None


def _store(turn: "Turn") -> None:
    """Write the idea the conversation holds: new, or the current one rewritten."""
    text, found = turn.data["idea_text"], _findings(turn)
    kept = findings.load(turn.data.pop("kept", "[]"), "")
    if kept:
        kinds = sorted({f.kind for f in kept})
        turn.store.audit(turn.now, "participant", "idea.redaction_kept", kinds=kinds)
    if "idea_id" in turn.data:
        turn.data["suggestions"] = _rewrite_idea(turn, turn.data["idea_id"], text, found, kept)
        return
    joined = turn.store.workshop(turn.data.get("workshop", -1))
    if joined is not None and joined["ended_at"] is not None:
        turn.data.pop("workshop")
        joined = None
    idea_id, suggestions = keep_idea(turn, text, joined["id"] if joined else None, found, kept)
    turn.data["idea_id"], turn.data["suggestions"] = idea_id, suggestions
    if joined is not None:
        language = joined["language"]
        notice = turn.engine.catalogue.text(
            language,
            "workshop_private_idea",
            number=turn.store.workshop_number(joined["id"], idea_id),
            field=field_label(turn, suggestions[0] if suggestions else None, language),
        )
        turn.out.append(Outbound(notice, to=joined["address"]))


def confirm(turn: "Turn", idea_id: int, field: str | None) -> None:
    """The author's own choice of field; teaches the suggester after the commit."""
    turn.store.update_idea(idea_id, confirmed_field=field, updated_at=turn.now)
    turn.store.audit(
        turn.now, "participant", "idea.field_confirmed", f"idea:{idea_id}", field=field
    )
    idea = turn.store.idea(idea_id)
    if turn.nlp is not None and idea and idea["embedding"] is not None:
        vector, nlp, now = from_blob(idea["embedding"]), turn.nlp, turn.now
        turn.after_commit.append(lambda: nlp.confirm(idea_id, field, vector, now))


@action("confirm_field")
def confirm_field(turn: "Turn", step: Step, value: str) -> str | None:
    answers = turn.engine.flow.answers
    if value not in (answers["other"], answers["change"]):
        confirm(turn, turn.data["idea_id"], None if value == answers["unsure"] else value)
    return None


@action("set_idea_detail")
def set_idea_detail(turn: "Turn", step: Step, value: str) -> str | None:
    if step.store_as is None:
        raise FlowError(f"step {step.name!r} sets an idea's detail but names no store_as")
    turn.store.update_idea(turn.data["idea_id"], **{step.store_as: value, "updated_at": turn.now})
    return None


@action("set_notify")
def set_notify(turn: "Turn", step: Step, value: str) -> str | None:
    wanted = value == turn.engine.flow.answers["yes"]
    turn.store.update_idea(turn.data["idea_id"], notify=int(wanted), updated_at=turn.now)
    if wanted and turn.msg.address:
        turn.store.set_contact(
            turn.conv.participant_id, turn.msg.channel, turn.msg.address, turn.now
        )
    return None


@action("support")
def support(turn: "Turn", step: Step, value: str) -> str | None:
    if value != turn.engine.flow.answers["none"] and _shareable(turn.store.idea(int(value))):
        turn.store.add_support(turn.conv.participant_id, int(value), turn.now)
        turn.store.audit(turn.now, "participant", "idea.supported", f"idea:{value}")
        turn.say("support_saved")
    return None


@action("erase")
def erase(turn: "Turn", step: Step, value: str) -> str | None:
    if value != turn.engine.flow.answers["yes"]:
        turn.say("delete_cancelled")
        return RESUME
    pid = turn.conv.participant_id
    forgotten = [
        StoredIdea(row["id"], row["confirmed_field"], from_blob(row["embedding"]))
        for row in turn.store.ideas_of(pid)
        if row["embedding"] is not None
    ]
    counts = turn.store.erase_participant(pid)
    turn.store.audit(turn.now, "participant", "participant.erased", **counts)
    turn.say("deleted")
    turn.erased = True
    turn.after_commit.append(turn.store.checkpoint)
    if turn.nlp is not None and forgotten:
        nlp = turn.nlp
        turn.after_commit.append(lambda: nlp.forget(forgotten))
    return None
