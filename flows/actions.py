"""What steps do with an answer (actions) and where run-time choices come from (sources).

A flow file names these; `check` makes sure every name it uses exists, so a typo in a flow
fails at start, not in the middle of someone's conversation.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import Flow, FlowError, Step
from mitreden.flows.messages import Choice, Outbound
from mitreden.nlp.pipeline import StoredIdea
from mitreden.nlp.redact import redact
from mitreden.store.store import IDEA_COLUMNS, from_blob

if TYPE_CHECKING:
    from mitreden.flows.engine import Turn

Action = Callable[["Turn", Step, str], str | None]
Source = Callable[["Turn"], tuple[list[Choice], dict[str, object]]]
ACTIONS: dict[str, Action] = {}
SOURCES: dict[str, Source] = {}
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
    idea = turn.store.idea(turn.data.get("idea_id", -1))
    if turn.nlp is None or idea is None or idea["embedding"] is None:
        return [], {}
    owner = turn.conv.participant_id
    ids = turn.nlp.similar(
        from_blob(idea["embedding"]),
        owner,
        idea["confirmed_field"] or idea["suggested_field"],
        exclude=frozenset(turn.store.supported_by(owner)),
        k=SIMILAR_SHOWN,
    )
    labels = redaction_labels(turn)
    listing, choices = [], []
    for other_id in ids:
        other = turn.store.idea(other_id)
        if other is None:  # erased by its author since the index was built
            continue
        number = len(choices) + 1
        text = redact(other["text"], labels)
        if len(text) > SNIPPET:
            text = text[:SNIPPET].rsplit(" ", 1)[0] + " …"
        listing.append(turn.text("similar_item", number=number, text=text))
        choices.append(Choice(str(other_id), turn.text("support_choice", number=number)))
    return choices, {"listing": "\n".join(listing)}


# actions


@action("set_language")
def set_language(turn: "Turn", step: Step, value: str) -> str | None:
    turn.conv.language = value
    if "resume" in turn.data:
        return RESUME
    if turn.consented():
        turn.say("welcome_back")
        return "idea"
    return None


def give_consent(turn: "Turn") -> None:
    pid, version = turn.conv.participant_id, turn.engine.flow.consent_version
    turn.store.ensure_participant(pid, turn.msg.channel, turn.now)
    turn.store.record_consent(pid, version, True, turn.lang, turn.now)
    turn.store.audit(turn.now, "participant", "consent.given", version=version)


@action("record_consent")
def record_consent(turn: "Turn", step: Step, value: str) -> str | None:
    pid, version = turn.conv.participant_id, turn.engine.flow.consent_version
    if value == "yes":
        give_consent(turn)
    elif turn.store.consented_version(pid) is not None:
        # Withdrawing an earlier consent is recorded; a first "no" leaves no trace at all.
        turn.store.record_consent(pid, version, False, turn.lang, turn.now)
        turn.store.audit(turn.now, "participant", "consent.withdrawn", version=version)
    return None


def keep_idea(turn: "Turn", text: str, workshop_id: int | None = None) -> tuple[int, list[str]]:
    """Store an idea with its embedding and field suggestion; returns its id and the
    suggested fields, best first. Memory (index, groups) learns it after the commit."""
    pid, nlp = turn.conv.participant_id, turn.nlp
    vector, suggestions = None, []
    if nlp is not None:
        vector = nlp.embed(text)
        suggestions = nlp.suggest(vector, k=3)
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
    )
    turn.store.audit(turn.now, "participant", "idea.created", f"idea:{idea_id}")
    if nlp is not None and vector is not None:
        best, now = suggestions[0], turn.now
        turn.after_commit.append(lambda: nlp.remember(idea_id, pid, best, vector, now))
    return idea_id, [f for f, _ in suggestions]


def field_label(turn: "Turn", field: str | None, language: str) -> str:
    try:
        return turn.engine.taxonomy.get(field).label(language)
    except KeyError:  # none suggested yet, or a field an operator has since removed
        return turn.engine.catalogue.text(language, "workshop_no_field")


@action("save_idea")
def save_idea(turn: "Turn", step: Step, text: str) -> str | None:
    """Keep the idea; one written through a workshop's private link also counts for that
    workshop while it runs, and its group hears of it without a name."""
    joined = turn.store.workshop(turn.data.get("workshop", -1))
    if joined is not None and joined["ended_at"] is not None:
        turn.data.pop("workshop")
        joined = None
    idea_id, suggestions = keep_idea(turn, text, joined["id"] if joined else None)
    turn.data.update(idea_id=idea_id, idea_text=text, suggestions=suggestions)
    if joined is not None:
        language = joined["language"]
        notice = turn.engine.catalogue.text(
            language,
            "workshop_private_idea",
            number=turn.store.workshop_number(joined["id"], idea_id),
            field=field_label(turn, suggestions[0] if suggestions else None, language),
        )
        turn.out.append(Outbound(notice, to=joined["address"]))
    return None


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
    if value != "other":
        confirm(turn, turn.data["idea_id"], None if value == "unsure" else value)
    return None


@action("set_idea_detail")
def set_idea_detail(turn: "Turn", step: Step, value: str) -> str | None:
    turn.store.update_idea(turn.data["idea_id"], **{step.store_as: value, "updated_at": turn.now})
    return None


@action("set_notify")
def set_notify(turn: "Turn", step: Step, value: str) -> str | None:
    wanted = value == "yes"
    turn.store.update_idea(turn.data["idea_id"], notify=int(wanted), updated_at=turn.now)
    if wanted and turn.msg.address:
        turn.store.set_contact(
            turn.conv.participant_id, turn.msg.channel, turn.msg.address, turn.now
        )
    return None


@action("support")
def support(turn: "Turn", step: Step, value: str) -> str | None:
    if value != "none":
        turn.store.add_support(turn.conv.participant_id, int(value), turn.now)
        turn.store.audit(turn.now, "participant", "idea.supported", f"idea:{value}")
        turn.say("support_saved")
    return None


@action("erase")
def erase(turn: "Turn", step: Step, value: str) -> str | None:
    if value != "yes":
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
    if turn.nlp is not None and forgotten:
        nlp = turn.nlp
        turn.after_commit.append(lambda: nlp.forget(forgotten))
    return None
