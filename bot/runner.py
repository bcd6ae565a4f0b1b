"""Runs the configured channels side by side in one event loop until SIGINT or SIGTERM.

Channels share one engine and its one worker thread, so SQLite and the model are used from
one thread whichever platform a message came from.
"""

import asyncio
import logging
import signal
from typing import Protocol

log = logging.getLogger(__name__)


class Channel(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(channels: list[Channel]) -> None:
    """Start each channel in turn, wait for a stop signal, stop them in reverse order: each
    answers what it has in hand and saves its place before it ends."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stopping.set)
    started: list[Channel] = []
    try:
        for channel in channels:
            await channel.start()
            started.append(channel)
        log.info("running %d channel(s); stop with Ctrl-C", len(started))
        await stopping.wait()
    finally:
        for channel in reversed(started):
            await channel.stop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
