"""Work that runs beside the channels: for now, regrouping all ideas now and then.

New ideas join a group the moment they arrive; a full recompute also lets groups split, merge
and move as the whole picture changes. It runs in a daemon thread so a channel never waits.
"""

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from mitreden.nlp.clusters import ClusterBook

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RegroupJob(threading.Thread):
    def __init__(
        self, book: ClusterBook, every_seconds: float, clock: Callable[[], str] = now
    ) -> None:
        super().__init__(name="regroup", daemon=True)
        self.book = book
        self.every_seconds = every_seconds
        self.clock = clock
        self._stopped = threading.Event()
        self._seen: tuple | None = None

    def run(self) -> None:
        while True:
            self.run_once()
            if self._stopped.wait(self.every_seconds):
                return

    def run_once(self) -> bool:
        """Regroup if ideas changed since the last run here; whether it did."""
        state = self.book.store.ideas_state()
        if state == self._seen:
            return False
        try:
            self.book.recompute(self.clock())
        except Exception:  # a failed run must not end the job; the next one tries again
            log.exception("regrouping failed; trying again in %.0f s", self.every_seconds)
            return False
        self._seen = state
        return True

    def stop(self) -> None:
        self._stopped.set()
