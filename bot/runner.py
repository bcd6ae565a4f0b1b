"""Runs the configured channels side by side in one event loop until SIGINT or SIGTERM, or
until one of them fails in a way it cannot go on from.

Channels share one engine and its one worker thread, so SQLite and the model are used from
one thread whichever platform a message came from.
"""

import asyncio
import logging
import signal
from typing import Protocol

from mitreden.bot import Failure

log = logging.getLogger(__name__)


class Channel(Protocol):
    failure: Failure

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(channels: list[Channel]) -> None:
    """Start each channel in turn, wait for a stop signal or a channel's failure, stop them in
    reverse order: each answers what it has in hand and saves its place before it ends. A
    failure is raised again afterwards, so `mitreden run` ends with its one line."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stopping.set)
    started: list[Channel] = []
    waiting: list[asyncio.Task[object]] = []
    try:
        for channel in channels:
            await channel.start()
            started.append(channel)
        log.info("running %d channel(s); stop with Ctrl-C", len(started))
        waiting = [asyncio.create_task(stopping.wait())]
        waiting += [asyncio.create_task(ch.failure.reported.wait()) for ch in started]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
        for channel in reversed(started):
            await channel.stop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
    for channel in started:
        if channel.failure.error is not None:
            raise channel.failure.error
