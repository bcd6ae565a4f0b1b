"""The one object that builds and runs mitreden: the store, the engine and its one thread, the
NLP, the channels and the background jobs. `mitreden run`, the tests and the benches all start
the same `App`; `build_engine` is the part commands that only read or chat need."""

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from mitreden.bot import Failure
from mitreden.bot.ahead import Ahead
from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import load_flow
from mitreden.flows.engine import Engine
from mitreden.flows.limits import Limits
from mitreden.identity import load_pseudonymizer
from mitreden.logs import describe
from mitreden.nlp import abuse
from mitreden.nlp.embedders import Embedder, make_embedder
from mitreden.nlp.redact import find
from mitreden.nlp.taxonomy import load_taxonomy
from mitreden.store import Store

if TYPE_CHECKING:
    from mitreden.bot.web import WebChannel
    from mitreden.jobs import Repeating

log = logging.getLogger(__name__)


class Channel(Protocol):
    failure: Failure

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deliver_unsent(self) -> None: ...


def warm_word_lists() -> None:
    """Load the word lists of redaction and abuse signals (about 2 s together) beside the
    start, rather than while the first resident waits for their idea to be read back."""
    try:
        abuse.vocabulary()
        abuse.insulting("")
        find("Herr Muster wohnt in der Musterstraße 1")
    except Exception as err:  # the first idea will load them, and meet the error there
        log.warning("loading the word lists failed: %s", describe(err))


def load_nlp(engine: Engine, embedder: Embedder | None) -> None:
    """Give the engine its NLP: the field prototypes and the index of stored ideas, which
    takes seconds on a large database."""
    if embedder is None:
        return
    from mitreden.nlp.pipeline import IdeaNlp

    engine.nlp = IdeaNlp(
        embedder, engine.taxonomy, engine.store, parallel=engine.catalogue.parallel()
    )
    log.info("NLP ready: %s, %d ideas indexed", embedder.name, len(engine.nlp.index))


def _engine(settings: Settings, store: Store | None) -> tuple[Engine, Embedder | None]:
    """The engine without its NLP, and the embedder the NLP will use. Everything that can be
    wrong with the settings (taxonomy, flow, catalogues, embedding backend and model) is
    loaded before the database is opened, so a bad setting leaves no database file behind."""
    taxonomy = load_taxonomy(settings.taxonomy)
    embedder = None
    if settings.embedding_backend != "none":
        embedder = make_embedder(settings.embedding_backend, settings.embedding_model or None)
    flow, catalogue = load_flow(), Catalogue.load()
    store = store or Store(settings.db)
    threading.Thread(target=warm_word_lists, name="word-lists", daemon=True).start()
    engine = Engine(
        store,
        taxonomy,
        None,
        flow,
        catalogue,
        idle_timeout=timedelta(hours=settings.idle_timeout_hours),
        limits=Limits(int(settings.messages_per_minute), int(settings.ideas_per_day)),
    )
    return engine, embedder


def build_engine(settings: Settings, store: Store | None = None) -> Engine:
    """The engine for `settings`, its NLP loaded: for commands that chat or send once."""
    engine, embedder = _engine(settings, store)
    load_nlp(engine, embedder)
    return engine


def engine_with_nlp_to_load(settings: Settings) -> tuple[Engine, Callable[[], None]]:
    """The engine for `settings` without its NLP yet, and the call that loads it: the
    terminal asks its first question before the model loads (seconds, on a large database)."""
    engine, embedder = _engine(settings, None)
    return engine, lambda: load_nlp(engine, embedder)


class App:
    """Everything `mitreden run` runs, built from one Settings.

    The engine has one worker thread; every channel hands it work through `in_engine`, so
    SQLite and the model are used from one thread whichever platform a message came from.
    The NLP is the worker's first job: the web chat listens at once, and a message that
    arrives while the model loads waits its turn behind it instead of being refused.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine, self._embedder = _engine(settings, None)
        self.pseudonymizer = load_pseudonymizer(settings)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.failure = Failure()
        self.ahead = Ahead(self.engine)
        self.web: WebChannel | None = None
        self.channels: list[Channel] = self._channels()
        self.jobs: list[Repeating] = []
        self.nlp_loaded: asyncio.Future[None] | None = None
        self.started = asyncio.Event()
        self._started: list[Channel] = []
        self._deliveries: set[asyncio.Task[None]] = set()

    def _channels(self) -> list[Channel]:
        settings, channels = self.settings, list[Channel]()
        if settings.web_listen:
            from mitreden.bot.web import WebChannel

            self.web = WebChannel(self)
            channels.append(self.web)
        if settings.telegram_token:
            from mitreden.bot.telegram import TelegramChannel

            channels.append(
                TelegramChannel(
                    self.engine,
                    self.pseudonymizer,
                    settings.telegram_token,
                    settings.telegram_api_base_url or None,
                    worker=self.worker,
                    webhook=settings.webhook(),
                    secret=self.pseudonymizer.token("telegram-webhook"),
                    ahead=self.ahead,
                )
            )
        if settings.matrix():
            from mitreden.bot.matrix import MatrixChannel

            channels.append(
                MatrixChannel(self.engine, self.pseudonymizer, settings, worker=self.worker)
            )
        return channels

    async def in_engine(self, call: Any, *args: Any) -> Any:
        """Run `call(*args)` in the engine's thread, after everything queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, call, *args)

    @property
    def ready(self) -> bool:
        """Whether the NLP has loaded, so a message is answered without waiting for it."""
        return self.nlp_loaded is not None and self.nlp_loaded.done()

    async def start(self) -> None:
        """Queue the NLP's loading, then start each channel; the jobs start once it loaded."""
        self.nlp_loaded = asyncio.ensure_future(self.in_engine(self._load))
        self.nlp_loaded.add_done_callback(self._loaded)
        try:
            for channel in self.channels:
                await channel.start()
                self._started.append(channel)
        except BaseException:
            await self.stop()
            raise
        log.info("running %d channel(s); stop with Ctrl-C", len(self._started))
        self.started.set()

    async def deliver_unsent(self) -> None:
        """Have every running channel send what the engine's outbox holds for it: messages
        written outside a resident's step, such as the notices of a forwarded summary. The web
        chat's go onto their pages and Matrix's are sent before this returns; Telegram's are
        queued and go out from its per-chat queues."""
        for channel in list(self._started):
            await channel.deliver_unsent()

    def deliver_soon(self) -> None:
        """`deliver_unsent` beside whoever asked for it. The notices of a forwarded field are
        committed in the outbox already; putting 20,000 of them on web pages takes most of a
        second, and Matrix sends its own before it returns, and the moderator who forwarded
        should wait for neither. `stop` lets these finish before it stops a channel."""
        task = asyncio.ensure_future(self.deliver_unsent())
        self._deliveries.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, task: "asyncio.Task[None]") -> None:
        self._deliveries.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            # What was not sent stays in the outbox; the next delivery or start sends it.
            log.warning("sending queued messages failed: %s", describe(error))

    def _load(self) -> None:
        load_nlp(self.engine, self._embedder)

    def _loaded(self, done: "asyncio.Future[None]") -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            self.failure.report(error)
            return
        self._start_jobs()

    def _start_jobs(self) -> None:
        from mitreden.jobs import PurgeJob, RegroupJob
        from mitreden.nlp.clusters import ClusterBook

        settings, engine = self.settings, self.engine
        # Each its own connection: a job reads and writes while a channel is mid-transaction.
        self.jobs.append(PurgeJob(Store(settings.db), engine.catalogue, settings.retention_days))
        if engine.nlp is not None:
            book = ClusterBook(Store(settings.db), engine.nlp.suggester, load_now=False)
            self.jobs.append(RegroupJob(book, settings.regroup_minutes * 60))
        for job in self.jobs:
            job.start()

    async def stop(self) -> None:
        """Stop the channels in reverse order (each answers what it holds and saves its
        place), then the jobs and the engine's thread. Deliveries begun by `deliver_soon`
        finish first, while every channel still runs."""
        if self._deliveries:
            await asyncio.wait(list(self._deliveries))
        for channel in reversed(self._started):
            await channel.stop()
        self._started.clear()
        if self.nlp_loaded is not None and not self.nlp_loaded.done():
            await asyncio.wait([self.nlp_loaded])
        for job in self.jobs:
            job.stop()
        self.jobs.clear()
        self.ahead.stop()
        self.worker.shutdown(wait=True)

    async def run(self) -> None:
        """Start, run until SIGINT or SIGTERM or a failure nothing can go on from, stop. A
        failure is raised again afterwards, so `mitreden run` ends with its one line."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stopping.set)
        waiting: list[asyncio.Task[object]] = []
        try:
            await self.start()
            failures = [self.failure, *(channel.failure for channel in self.channels)]
            waiting = [asyncio.create_task(stopping.wait())]
            waiting += [asyncio.create_task(f.reported.wait()) for f in failures]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiting:
                task.cancel()
            await self.stop()
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
        for failure in [self.failure, *(channel.failure for channel in self.channels)]:
            if failure.error is not None:
                raise failure.error
