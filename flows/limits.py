"""How much one participant may send: behaviour signals before content classifiers.

A person who writes faster than anyone types (a script, a stuck client, a flood) is told once
per minute to slow down; what they write to a text question meanwhile is kept in their draft,
so nothing a person typed is lost. Ideas per day are counted at the idea step
(`actions.save_idea`). The counter lives in the conversation, so it goes with an erasure.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from mitreden.flows.state import State

WINDOW = timedelta(minutes=1)
# What of a conversation's state a fresh start keeps: counting starts over for nobody.
KEYS = ("rate", "blocked_told")


@dataclass(frozen=True)
class Limits:
    messages_per_minute: int = 20
    """More than anyone types by hand; a person pasting an idea line by line stays below."""
    ideas_per_day: int = 10


def rate(state: State, now: datetime, limit: int) -> str:
    """Count one message in the conversation's state: "ok", "warn" for the first message over
    the limit in a minute, "quiet" for the rest of that minute."""
    counted = state.get("rate")
    start, count, warned = counted if counted else ("", 0, False)
    if not start or now - datetime.fromisoformat(start) >= WINDOW:
        start, count, warned = now.isoformat(timespec="seconds"), 0, False
    count += 1
    verdict = "ok"
    if count > limit:
        verdict = "quiet" if warned else "warn"
        warned = True
    state["rate"] = [start, count, warned]
    return verdict
