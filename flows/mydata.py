"""What `/meinedaten` gives a person (GDPR Art. 15): a short summary they can read in the
chat, and a file with every field stored about them.

The file keeps everything, but says what the technical parts are instead of letting them
fill the page: an idea's embedding is one line with its explanation, and the conversation's
internal state is named as such.
"""

import json
from typing import TYPE_CHECKING, Any

from mitreden.flows.messages import Attachment, Outbound
from mitreden.nlp import findings

if TYPE_CHECKING:
    from mitreden.flows.engine import Turn

SNIPPET = 120


def reply(turn: "Turn") -> Outbound:
    export = turn.store.export_participant(turn.conv.participant_id)
    content = json.dumps(document(turn, export), ensure_ascii=False, indent=2).encode("utf-8")
    attachment = Attachment(turn.text("mydata_file"), "application/json", content)
    return Outbound(summary(turn, export), attachment=attachment)


def summary(turn: "Turn", export: dict[str, Any]) -> str:
    lines = [turn.text("mydata_intro")]
    ideas = export["ideas"]
    lines.append(turn.text("mydata_ideas", count=len(ideas)))
    for number, idea in enumerate(ideas, start=1):
        text = " ".join(idea["text"].split())
        if len(text) > SNIPPET:
            text = text[:SNIPPET].rsplit(" ", 1)[0] + " …"
        field = _field(turn, idea["confirmed_field"] or idea["suggested_field"])
        lines.append(turn.text("mydata_idea", number=number, text=text, field=field))
    lines.append(turn.text("mydata_supports", count=len(export["supports"])))
    given = [c for c in export["consents"] if c["given"]]
    if given:
        lines.append(turn.text("mydata_consent", date=given[-1]["at"][:10]))
    lines.append(turn.text("mydata_contact_yes" if export["contacts"] else "mydata_contact_no"))
    if export["blocks"]:
        lines.append(turn.text("mydata_blocked", until=export["blocks"][-1]["until"][:10]))
    lines.append(turn.text("mydata_shared"))
    lines.append(turn.text("mydata_file_note"))
    return "\n".join(lines)


def document(turn: "Turn", export: dict[str, Any]) -> dict[str, Any]:
    labels = turn.engine.catalogue.redaction_labels(turn.lang)
    for idea in export["ideas"]:
        idea["shown_to_others"] = findings.for_others(idea, labels)
        if idea["embedding"] is not None:
            idea["embedding"] = {
                "what": turn.text("mydata_embedding_note"),
                "values": " ".join(f"{x:.6f}" for x in idea["embedding"]),
            }
    # The web chat's page: who said what, as the person read it.
    export["web_page"] = [
        {"at": line["at"], "side": line["side"], "text": json.loads(line["message"])["text"]}
        for line in export["web_page"]
    ]
    if export["conversation"] is not None:
        export["conversation"] = {
            "what": turn.text("mydata_state_note"),
            "state": export["conversation"],
        }
    return export


def _field(turn: "Turn", field: str | None) -> str:
    try:
        return turn.engine.taxonomy.get(field).label(turn.lang)
    except KeyError:
        return turn.text("workshop_no_field")
