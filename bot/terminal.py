"""The terminal channel: a real conversation on stdin/stdout, one line per message.

It works the same typed by hand or piped from a script; end of input ends the session.
Choices are shown numbered; the engine understands the number or the label.
"""

import io
import sys
from collections.abc import Callable
from typing import TextIO

from mitreden.flows import Engine, Inbound, Outbound
from mitreden.identity import Pseudonymizer

CHANNEL = "terminal"


def render(message: Outbound) -> str:
    lines = [message.text]
    lines += [f"  {n}) {choice.label}" for n, choice in enumerate(message.choices, start=1)]
    if message.attachment is not None:
        lines += [
            f"--- {message.attachment.filename} ---",
            message.attachment.content.decode("utf-8"),
            "---",
        ]
    return "\n".join(lines)


def run_terminal(
    engine: Engine,
    pseudonymizer: Pseudonymizer,
    user: str,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    ready: Callable[[], None] = lambda: None,
) -> int:
    """Chat until end of input; returns how many messages were handled. `ready` runs once the
    opening question is shown, before the first answer is read: `mitreden chat` loads the
    model there, while the resident reads."""
    if isinstance(stdin, io.TextIOWrapper):
        # Bytes that are no UTF-8 (a file in another encoding, a cut character) become U+FFFD;
        # in a UTF-8 locale Python would otherwise end the chat with a UnicodeDecodeError.
        stdin.reconfigure(errors="replace")
    participant = pseudonymizer.participant(CHANNEL, user)
    interactive = stdin.isatty()
    handled = 0
    # The bot speaks first: the question the conversation stands at, or the first one.
    for opening in engine.opening(participant):
        stdout.write(render(opening) + "\n\n")
    stdout.flush()
    ready()
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            return handled
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        replies = engine.handle(Inbound(CHANNEL, participant, text=text, address=user))
        handled += 1
        for reply in replies:
            stdout.write(render(reply) + "\n\n")
        stdout.flush()
