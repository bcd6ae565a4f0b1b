"""What a conversation remembers between messages, written by the engine, its actions and
workshop mode, and stored as JSON with the conversation (`store.conversations`).

One TypedDict, so that every key the three modules use is named here with its type, and the
type checker refuses a misspelt one. Every key is optional: a conversation starts empty, and
an erasure or a fresh start drops what it no longer needs.
"""

from typing import Any, TypedDict


class Draft(TypedDict, total=False):
    text: str
    """Words typed before the idea question was reached, or past the limit: never lost."""
    too_long: bool


class Waiting(TypedDict):
    """Ideas a member wrote in a workshop before they consented (flows/workshop.py)."""

    ask: str
    """The code on the consent buttons, so an old button does not answer a new question."""
    ideas: list[dict]


class State(TypedDict, total=False):
    offered: list[list[str]]
    """The choices of the question asked last: [value, label] pairs."""
    params: dict[str, object]
    """The parameters of that question's sentence."""
    resume: str
    """The step to go back to after /sprache or /loeschen was answered."""
    detected: bool
    """The language was chosen by writing in it: the person is told how to switch."""
    draft: Draft
    idea_text: str
    """The idea's words while it is read back and its personal data are looked at."""
    findings: str
    """Personal data found in them (`nlp.findings.dump`)."""
    kept: str
    """Findings the author chose to keep ("keep this word")."""
    idea_id: int
    """The idea being completed (field, district, ...) or rewritten."""
    suggestions: list[str]
    """The fields suggested for it, best first."""
    workshop: int
    """The workshop an idea joins (a join code, or a member's first private message)."""
    room_drafts: Waiting
    rate: list[Any]
    """[window start, messages in it, warned] (flows/limits.py)."""
    blocked_told: str
    """The day a blocked person was last told so."""
