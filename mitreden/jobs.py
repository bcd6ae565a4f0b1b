"""Work that runs beside the channels: regrouping all ideas now and then, and the daily purge.

New ideas join a group the moment they arrive; a full recompute also lets groups split, merge
and move as the whole picture changes. Each job runs in a daemon thread with its own
database connection, so a channel never waits.
"""

import abc
import logging
import threading
from collections.abc import Callable

from mitreden.clock import now
from mitreden.flows.catalogue import Catalogue
from mitreden.logs import describe
from mitreden.nlp.clusters import ClusterBook
from mitreden.retention import purge
from mitreden.store import Store

log = logging.getLogger(__name__)
DAY = 24 * 60 * 60.0


class Repeating(threading.Thread, abc.ABC):
    """Runs `run_once` now and then every `every_seconds` until stopped; a run that fails is
    logged and tried again at the next turn, it never ends the job."""

    def __init__(self, name: str, every_seconds: float, clock: Callable[[], str] = now) -> None:
        super().__init__(name=name, daemon=True)
        self.every_seconds = every_seconds
        self.clock = clock
        self._stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception as err:
                log.error(
                    "%s failed; trying again in %.0f s: %s",
                    self.name,
                    self.every_seconds,
                    describe(err),
                )
            if self._stopped.wait(self.every_seconds):
                return

    @abc.abstractmethod
    def run_once(self) -> object:
        """One turn of the job's work."""

    def stop(self) -> None:
        self._stopped.set()


class RegroupJob(Repeating):
    def __init__(
        self, book: ClusterBook, every_seconds: float, clock: Callable[[], str] = now
    ) -> None:
        super().__init__("regroup", every_seconds, clock)
        self.book = book

    def run_once(self) -> bool:
        """Regroup if the ideas, the model or the fields changed since the latest recompute,
        in this process or before a restart; whether it did."""
        if self.book.state() == self.book.store.grouped_state():
            return False
        self.book.recompute(self.clock())
        return True


class PurgeJob(Repeating):
    """`retention.purge` once a day, as the system."""

    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        retention_days: float,
        clock: Callable[[], str] = now,
    ) -> None:
        super().__init__("purge", DAY, clock)
        self.store, self.catalogue, self.retention_days = store, catalogue, retention_days

    def run_once(self) -> dict:
        counts = purge(self.store, self.catalogue, self.clock(), self.retention_days, "system")
        if any(counts.values()):
            log.info("purge: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
        return counts
