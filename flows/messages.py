"""What adapters hand to the engine and get back: the only types a channel needs to know."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Inbound:
    """One message from a resident, already normalised by its adapter.

    `participant` is the adapter's keyed hash of the platform user id, never the raw id.
    `choice` is the value of a pressed button; `text` is what was typed. `address` is where
    replies go on the platform; the engine keeps it only if the person asks to be notified.
    `key` is the platform's id for this message: one delivered twice is answered once.
    `media` names what was sent instead of text (photo, voice, ...); it is never stored.
    """

    channel: str
    participant: str
    text: str | None = None
    choice: str | None = None
    address: str | None = None
    key: str | None = None
    media: str | None = None


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class Outbound:
    text: str
    choices: tuple[Choice, ...] = ()
    attachment: Attachment | None = None
