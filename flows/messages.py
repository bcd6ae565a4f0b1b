"""What adapters hand to the engine and get back: the only types a channel needs to know."""

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Inbound:
    """One message from a resident, already normalised by its adapter.

    `participant` is the adapter's keyed hash of the platform user id, never the raw id.
    `choice` is the value of a pressed button; `text` is what was typed. `address` is where
    replies go on the platform; the engine keeps it only if the person asks to be notified.
    `key` is the platform's id for this message: one delivered twice is answered once.
    `media` names what was sent instead of text (photo, voice, ...); it is never stored.

    In a group, `room` is the adapter's keyed hash of the group's id (`address` is then the
    group, where replies go), `room_admin` says the platform counts the sender as an admin of
    it, and `event="added"` says the sender just added the bot to it.

    `event="unreadable"` says a message came that the adapter cannot read yet (end-to-end
    encrypted, its key still missing); the adapter sends it again as text once it can.

    `pressed` is the platform's id of the bot message whose button was pressed, so a reply
    that replaces it (`Outbound.edit`) can still do so when it is sent after a restart.
    """

    channel: str
    participant: str
    text: str | None = None
    choice: str | None = None
    address: str | None = None
    key: str | None = None
    media: str | None = None
    room: str | None = None
    room_admin: bool = False
    event: str | None = None
    pressed: str | None = None


@dataclass(frozen=True)
class Choice:
    """A button. With `private_start` it opens a private chat with the bot instead, which
    begins with `/start <value>` (Telegram's deep links)."""

    value: str
    label: str
    private_start: bool = False


@dataclass(frozen=True)
class Attachment:
    filename: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class Poll:
    """A native poll with multiple answers. `ref` is the engine's id for it: the adapter reports
    the platform's ids back through `Engine.poll_posted`, and vote counts through
    `Engine.poll_counted`."""

    question: str
    options: tuple[str, ...]
    ref: int


@dataclass(frozen=True)
class Outbound:
    """One message to send. `to` is an address other than the chat the inbound came from;
    `edit` replaces the message whose button was pressed, where the platform can;
    `close_poll` is a message key from `Engine.poll_posted` whose poll voting ends now;
    `rtl` says the text is in a language written right to left (Arabic), which a platform
    without markup must be told line by line."""

    text: str
    choices: tuple[Choice, ...] = ()
    attachment: Attachment | None = None
    to: str | None = None
    edit: bool = False
    poll: Poll | None = None
    close_poll: str | None = None
    rtl: bool = False


@dataclass(frozen=True)
class Parcel:
    """A reply waiting in the outbox: written in the step's transaction, sent after commit.

    `address` is where it goes (the chat the message came from, or `Outbound.to`); `edit_key`
    the message it replaces, if the platform can edit; `parts_sent` how many of its pieces
    (text pieces, a poll, a file) are out already, so a reply cut off by a crash goes on
    where it stopped. The channel reports progress with `Engine.sent`."""

    id: int
    address: str | None
    message: Outbound
    edit_key: str | None = None
    parts_sent: int = 0


def dump_outbound(message: Outbound) -> str:
    """An Outbound as JSON for the outbox (a file's bytes as base64)."""
    data: dict[str, Any] = {
        "text": message.text,
        "choices": [[c.value, c.label, c.private_start] for c in message.choices],
        "to": message.to,
        "edit": message.edit,
        "close_poll": message.close_poll,
    }
    if message.rtl:
        data["rtl"] = True
    if message.attachment is not None:
        attachment = message.attachment
        content = base64.b64encode(attachment.content).decode("ascii")
        data["attachment"] = [attachment.filename, attachment.media_type, content]
    if message.poll is not None:
        data["poll"] = [message.poll.question, list(message.poll.options), message.poll.ref]
    return json.dumps(data, ensure_ascii=False)


def load_outbound(raw: str) -> Outbound:
    data = json.loads(raw)
    attachment = poll = None
    if "attachment" in data:
        filename, media_type, content = data["attachment"]
        attachment = Attachment(filename, media_type, base64.b64decode(content))
    if "poll" in data:
        question, options, ref = data["poll"]
        poll = Poll(question, tuple(options), ref)
    return Outbound(
        data["text"],
        tuple(Choice(value, label, private) for value, label, private in data["choices"]),
        attachment=attachment,
        to=data["to"],
        edit=data["edit"],
        poll=poll,
        close_poll=data["close_poll"],
        rtl=data.get("rtl", False),
    )
