"""Wiring: from settings to a ready engine. Channels and commands build on this."""

import logging
import threading
from datetime import timedelta

from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import load_flow
from mitreden.flows.engine import Engine
from mitreden.flows.limits import Limits
from mitreden.logs import describe
from mitreden.nlp import abuse
from mitreden.nlp.embedders import make_embedder
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.redact import find
from mitreden.nlp.taxonomy import load_taxonomy
from mitreden.store import Store

log = logging.getLogger(__name__)


def warm_word_lists() -> None:
    """Load the word lists of redaction and abuse signals (about 2 s together) beside the
    start, rather than while the first resident waits for their idea to be read back."""
    try:
        abuse.vocabulary()
        abuse.insulting("")
        find("Herr Muster wohnt in der Musterstraße 1")
    except Exception as err:  # the first idea will load them, and meet the error there
        log.warning("loading the word lists failed: %s", describe(err))


def build_engine(settings: Settings, store: Store | None = None) -> Engine:
    """The engine for `settings`. Everything that can be wrong with them (taxonomy, flow,
    catalogues, embedding backend and model) is loaded before the database is opened, so a
    bad setting leaves no database file behind."""
    taxonomy = load_taxonomy(settings.taxonomy)
    flow, catalogue = load_flow(), Catalogue.load()
    embedder = None
    if settings.embedding_backend != "none":
        embedder = make_embedder(settings.embedding_backend, settings.embedding_model or None)
    store = store or Store(settings.db)
    threading.Thread(target=warm_word_lists, name="word-lists", daemon=True).start()
    nlp = None
    if embedder is not None:
        nlp = IdeaNlp(embedder, taxonomy, store)
        log.info("NLP ready: %s, %d ideas indexed", embedder.name, len(nlp.index))
    return Engine(
        store,
        taxonomy,
        nlp,
        flow,
        catalogue,
        idle_timeout=timedelta(hours=settings.idle_timeout_hours),
        limits=Limits(int(settings.messages_per_minute), int(settings.ideas_per_day)),
    )
