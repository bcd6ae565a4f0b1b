"""Channel adapters: each turns its platform's updates into Inbound and renders Outbound back."""

import asyncio

from mitreden.errors import OperatorError


class ChannelError(OperatorError, RuntimeError):
    """A channel cannot start or go on (refused login, a room it cannot join); the message
    says what to fix."""


class Failure:
    """Where a running channel reports an error it cannot go on from (a database that cannot
    be written, a token refused later on). The runner waits on it, stops every channel and
    `mitreden run` ends with the error's one line."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.reported = asyncio.Event()

    def report(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            self.reported.set()
