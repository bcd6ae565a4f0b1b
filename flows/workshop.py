"""Workshop mode: a group gathers ideas together, votes on them and gets a summary.

A youth worker adds the bot to a group chat and starts a session with `/workshop <Titel>`.
Members give ideas with `/idee <text>` in the group, or privately through the link the bot
posts (the private flow then counts their ideas for the session). `/abstimmen` posts a poll
over the ideas and `/ende` closes the session with a summary. Only whoever added the bot first,
the one who started the session, or an admin of the group may start, vote or end; adding the bot
again later makes nobody a leader (see `Store.add_room`).

Group messages never name anyone: confirmations say "idea 3", polls and summaries show
redacted idea texts. A member who has not agreed to the privacy notice yet sees it once, with
buttons; what they wrote waits in their conversation until they answer and is dropped on "no".

Unlike the private flow this is not a sequence of questions, so it is a set of command and
button handlers here; every sentence still comes from the catalogues.
"""

import re
import secrets
from typing import TYPE_CHECKING, Any

import numpy as np

from mitreden.flows import actions
from mitreden.flows.messages import Choice, Outbound, Poll
from mitreden.nlp import findings
from mitreden.nlp.redact import visible
from mitreden.store.records import from_blob

if TYPE_CHECKING:
    from mitreden.flows.engine import Turn

# The commands that only make sense in a group.
GROUP_COMMANDS = frozenset({"workshop", "idea", "vote", "end"})
JOIN_PREFIX = "ws-"
POLL_OPTIONS = 10  # the limit; Telegram itself allows 12
OPTION_CHARS = 100  # Telegram's limit for a poll option
TITLE_CHARS = 120
WAITING_LIMIT = 10  # ideas one member may have waiting for their consent
# An idea id is ASCII digits that fit SQLite's 64-bit integers: a forged value like
# "field:99…9:x" or "field:٣:x" is no button of ours.
FIELD_CHOICE = re.compile(r"^field:([0-9]{1,18}):([\w-]+)$")
# A consent button names the question it belongs to, so a press on someone else's question
# never answers one's own.
CONSENT_CHOICE = re.compile(r"^consent:(yes|no):(\w+)$")
# Where a member's group ideas wait in their conversation until they answer the notice:
# {"ask": the question's id, "ideas": [{"workshop": id, "text": ...}]}.
WAITING = "room_drafts"


def join_code(payload: str) -> str | None:
    """The workshop code in a private `/start ws-…` payload, if it is one."""
    return payload[len(JOIN_PREFIX) :] if payload.startswith(JOIN_PREFIX) else None


def handle(turn: "Turn", command: str | None, rest: str) -> None:
    """One message or button press in a group chat."""
    msg = turn.msg
    room, address = _group(turn)
    running = turn.store.running_workshop(msg.channel, room)
    if running is not None:
        turn.language = running["language"]
    if msg.event == "added":
        turn.store.add_room(msg.channel, room, address, turn.conv.participant_id, turn.now)
        turn.store.audit(turn.now, "participant", "room.added")
        turn.say("workshop_hello")
    elif msg.choice is not None:
        _press(turn, msg.choice)
    elif command == "workshop":
        _start(turn, running, rest)
    elif command == "idea":
        _idea(turn, running, rest)
    elif command in ("vote", "end"):
        if running is None:
            turn.say("workshop_none")
        elif not _may_lead(turn, running):
            turn.say("workshop_not_allowed")
        elif command == "vote":
            _vote(turn, running)
        else:
            _end(turn, running)
    elif command == "help":
        turn.say("workshop_help")
    elif command in ("start", "language", "mydata", "delete", "cancel"):
        choice = Choice("", turn.text("workshop_private_button"), private_start=True)
        turn.out.append(Outbound(turn.text("workshop_private_only"), (choice,)))
    # Anything else in a group is talk among members (or for another bot): not ours to answer.


def _group(turn: "Turn") -> tuple[str, str]:
    """The group's room and address: every message this module is given has both."""
    if turn.msg.room is None or turn.msg.address is None:
        raise ValueError("a group message without its room")
    return turn.msg.room, turn.msg.address


def _may_lead(turn: "Turn", running: dict[str, Any] | None) -> bool:
    """Group admins, whoever added the bot first, and whoever started the running session."""
    if turn.msg.room_admin:
        return True
    room = turn.store.room(turn.msg.channel, _group(turn)[0])
    leaders = {room and room["added_by"], running and running["facilitator"]} - {None}
    return turn.conv.participant_id in leaders


def _start(turn: "Turn", running: dict[str, Any] | None, title: str) -> None:
    if not _may_lead(turn, running):
        turn.say("workshop_not_allowed")
        return
    if running is not None:
        turn.say("workshop_running", title=running["title"])
        return
    title = visible(title).strip()[:TITLE_CHARS]  # the whole group reads it
    if not title:
        turn.say("workshop_needs_title")
        return
    room, address = _group(turn)
    room_id = turn.store.room_id(turn.msg.channel, room, address, turn.now)
    code = secrets.token_urlsafe(9)
    workshop_id = turn.store.start_workshop(
        room_id, title, code, turn.lang, turn.conv.participant_id, turn.now
    )
    turn.store.audit(turn.now, "participant", "workshop.started", f"workshop:{workshop_id}")
    link = Choice(JOIN_PREFIX + code, turn.text("workshop_link_button"), private_start=True)
    turn.out.append(Outbound(turn.text("workshop_started", title=title), (link,)))


def _idea(turn: "Turn", running: dict[str, Any] | None, text: str) -> None:
    if running is None:
        turn.say("workshop_none")
        return
    flow = turn.engine.flow
    validate = flow.steps[flow.roles["idea"]].validate
    limit = validate.get("max_chars", 2000)
    if not text:
        turn.say("workshop_idea_how")
    elif len(text) > limit:
        turn.say("workshop_idea_long", length=len(text), limit=limit)
    elif len(text.split()) < validate.get("min_words", 0):
        turn.say("workshop_idea_short")
    elif turn.consented():
        _keep(turn, running, text)
    else:
        waiting = turn.data.setdefault("room_drafts", {"ask": secrets.token_hex(4), "ideas": []})
        if len(waiting["ideas"]) >= WAITING_LIMIT:
            turn.say("workshop_consent_first")
            return
        waiting["ideas"].append({"workshop": running["id"], "text": text})
        if len(waiting["ideas"]) == 1:
            text = "\n\n".join(
                turn.text(key)
                for key in ("workshop_consent_intro", "privacy_notice", "consent_question")
            )
            choices = (
                Choice(f"consent:yes:{waiting['ask']}", turn.text("consent_yes")),
                Choice(f"consent:no:{waiting['ask']}", turn.text("consent_no")),
            )
            turn.out.append(Outbound(text, choices))


def _keep(turn: "Turn", workshop: dict[str, Any], text: str) -> None:
    idea_id, suggestions = actions.keep_idea(turn, text, workshop["id"])
    number = turn.store.workshop_number(workshop["id"], idea_id)
    best = actions.field_label(turn, suggestions[0] if suggestions else None, turn.lang)
    choices = [
        Choice(f"field:{idea_id}:{field}", actions.field_label(turn, field, turn.lang))
        for field in suggestions
    ]
    choices.append(Choice(f"field:{idea_id}:unsure", turn.text("field_unsure")))
    turn.out.append(
        Outbound(turn.text("workshop_idea_kept", number=number, field=best), tuple(choices))
    )


def _press(turn: "Turn", value: str) -> None:
    """A button under one of the bot's group messages. Buttons belong to one member: a press
    by anyone else changes nothing and is not answered, so the group is not flooded."""
    consent = CONSENT_CHOICE.match(value)
    if consent is not None:
        waiting = turn.data.get("room_drafts")
        if not waiting or waiting["ask"] != consent.group(2):
            return
        del turn.data["room_drafts"]
        if consent.group(1) == "no":
            turn.out.append(Outbound(turn.text("workshop_declined"), edit=True))
            return
        actions.give_consent(turn)
        turn.out.append(Outbound(turn.text("workshop_consent_thanks"), edit=True))
        for draft in waiting["ideas"]:
            workshop = turn.store.workshop(draft["workshop"])
            if workshop is not None:
                _keep(turn, workshop, draft["text"])
        return
    match = FIELD_CHOICE.match(value)
    idea = turn.store.idea(int(match.group(1))) if match else None
    if match is None or idea is None or idea["participant_id"] != turn.conv.participant_id:
        return
    field = None if match.group(2) == "unsure" else match.group(2)
    fields = {leaf.id for leaf in turn.engine.taxonomy.leaves}
    if idea["workshop_id"] is None or (field is not None and field not in fields):
        return  # not a button we made: a forged or outdated value
    actions.confirm(turn, idea["id"], field)
    number = turn.store.workshop_number(idea["workshop_id"], idea["id"])
    label = actions.field_label(turn, field, turn.lang)
    turn.out.append(
        Outbound(turn.text("workshop_field_set", number=number, field=label), edit=True)
    )


# polls


def _groups(turn: "Turn", ideas: list[dict[str, Any]]) -> list[list[int]]:
    """At most POLL_OPTIONS sets of idea ids: one idea each while they fit, otherwise the
    ideas' groups of similar ideas, the most alike of those merged until they fit."""
    if len(ideas) <= POLL_OPTIONS:
        return [[idea["id"]] for idea in ideas]
    with_vectors = [idea for idea in ideas if idea["embedding"] is not None]
    if turn.nlp is None or len(with_vectors) < len(ideas):
        ids = [idea["id"] for idea in ideas]
        return [[int(i) for i in chunk] for chunk in np.array_split(ids, POLL_OPTIONS)]
    by_cluster: dict[object, list[int]] = {}
    for idea in ideas:
        key = turn.nlp.clusters.cluster_of(idea["id"]) or f"idea:{idea['id']}"
        by_cluster.setdefault(key, []).append(idea["id"])
    groups = list(by_cluster.values())
    if len(groups) <= POLL_OPTIONS:
        return groups
    vectors = {idea["id"]: from_blob(idea["embedding"]) for idea in ideas}
    means = np.stack([np.mean([vectors[i] for i in group], axis=0) for group in groups])
    from sklearn.cluster import AgglomerativeClustering  # slow to import: only when voting

    labels = AgglomerativeClustering(
        n_clusters=POLL_OPTIONS, metric="cosine", linkage="average"
    ).fit_predict(means)
    merged: dict[int, list[int]] = {}
    for label, group in zip(labels, groups, strict=True):
        merged.setdefault(int(label), []).extend(group)
    return sorted(merged.values(), key=min)


def _option_text(turn: "Turn", idea_ids: list[int]) -> str:
    """The poll label of a set of ideas, rebuilt from the ideas each time it is shown, so an
    erased idea's words are never kept here: the most typical idea, redacted, and how many
    more it stands for."""
    ideas = [idea for i in idea_ids if (idea := turn.store.idea(i)) is not None]
    if not ideas:
        return turn.text("workshop_option_gone")
    typical = ideas[0]
    if len(ideas) > 2 and all(idea["embedding"] is not None for idea in ideas):
        vectors = np.stack([from_blob(idea["embedding"]) for idea in ideas])
        typical = ideas[int(np.argmax(vectors @ vectors.mean(axis=0)))]
    text = " ".join(findings.for_others(typical, actions.redaction_labels(turn)).split())
    more = f" (+{len(ideas) - 1})" if len(ideas) > 1 else ""
    room = OPTION_CHARS - len(more)
    if len(text) > room:
        text = text[: room - 1].rsplit(" ", 1)[0] + "…"
    return text + more


def _close_open_poll(turn: "Turn", workshop_id: int) -> list[Outbound]:
    polls = [p for p in turn.store.polls(workshop_id) if p["closed_at"] is None]
    for poll in polls:
        turn.store.close_poll(poll["id"], turn.now)
    return [Outbound("", close_poll=p["message_key"]) for p in polls if p["message_key"]]


def _vote(turn: "Turn", workshop: dict[str, Any]) -> None:
    ideas = turn.store.workshop_ideas(workshop["id"])
    if not ideas:
        turn.say("workshop_poll_empty")
        return
    turn.out.extend(_close_open_poll(turn, workshop["id"]))
    groups = _groups(turn, ideas)
    poll_id = turn.store.add_poll(workshop["id"], groups, turn.now)
    turn.store.audit(turn.now, "participant", "workshop.poll", f"workshop:{workshop['id']}")
    question = turn.text("workshop_poll_question", title=workshop["title"])
    options = tuple(_option_text(turn, group) for group in groups)
    grouped = len(groups) < len(ideas)
    intro = turn.text("workshop_poll_grouped" if grouped else "workshop_poll_intro")
    turn.out.append(Outbound(intro, poll=Poll(question, options, poll_id)))


def _end(turn: "Turn", workshop: dict[str, Any]) -> None:
    turn.out.extend(_close_open_poll(turn, workshop["id"]))
    turn.store.end_workshop(workshop["id"], turn.now)
    turn.store.audit(turn.now, "participant", "workshop.ended", f"workshop:{workshop['id']}")
    turn.say("workshop_summary", **_summary(turn, workshop))


def _summary(turn: "Turn", workshop: dict[str, Any]) -> dict[str, object]:
    """The parts of the closing message: counts, ideas per field, the last poll's result."""
    ideas = turn.store.workshop_ideas(workshop["id"])
    per_field: dict[str, int] = {}
    for idea in ideas:
        label = actions.field_label(
            turn, idea["confirmed_field"] or idea["suggested_field"], turn.lang
        )
        per_field[label] = per_field.get(label, 0) + 1
    fields = "\n".join(
        turn.text("workshop_summary_line", name=name, count=count)
        for name, count in sorted(per_field.items(), key=lambda item: (-item[1], item[0]))
    )
    polls = turn.store.polls(workshop["id"])
    votes = turn.text("workshop_summary_no_poll")
    if polls:
        options = polls[-1]["options"]
        counts = polls[-1]["counts"] or [0] * len(options)
        ranked = sorted(range(len(options)), key=lambda n: -counts[n])  # stable: ties keep order
        votes = "\n".join(
            turn.text("workshop_summary_line", name=_option_text(turn, options[n]), count=counts[n])
            for n in ranked
        )
    return {
        "title": workshop["title"],
        "ideas": len(ideas),
        "people": len({idea["participant_id"] for idea in ideas}),
        "fields": fields or turn.text("workshop_summary_no_ideas"),
        "votes": votes,
    }
