"""The `mitreden` command: chat in the terminal, run the channels, list and export ideas,
group and summarise them, and evaluate suggestion and grouping on labelled data."""

import argparse
import asyncio
import csv
import json
import os
import re
import sqlite3
import sys
from pathlib import Path

from mitreden.bot import ChannelError
from mitreden.config import ConfigError, Settings, load_settings
from mitreden.evaluate import EvalDataError
from mitreden.flows.catalogue import LANGUAGES, CatalogueError
from mitreden.flows.definition import FlowError
from mitreden.logs import setup_logging
from mitreden.nlp.embedders import EmbedderError, make_embedder
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from mitreden.reports import spreadsheet_safe
from mitreden.store import Store, StoreError
from mitreden.store.store import unavailable

EXPECTED = (
    ChannelError,
    ConfigError,
    StoreError,
    TaxonomyError,
    EmbedderError,
    FlowError,
    CatalogueError,
    EvalDataError,
)
# How much of a pseudonymous participant id `mitreden ideas` shows: enough to name one for
# `mitreden block`, too little to be the key of anything.
PARTICIPANT_SHOWN = 12
IDEA_COLUMNS = [
    "id",
    "participant",
    "created_at",
    "language",
    "text",
    "suggested_field",
    "suggested_score",
    "confirmed_field",
    "district",
    "age_band",
    "actor_group",
    "notify",
    "supporters",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mitreden", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML config file (or MITREDEN_CONFIG)")
    common.add_argument("--db", help="SQLite database file (or MITREDEN_DB)")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", parents=[common], help="chat with the bot in this terminal")
    chat.add_argument("--user", default="terminal-user", help="the simulated participant")
    commands.add_parser(
        "run",
        parents=[common],
        help="serve the web chat (web_listen, default http://127.0.0.1:8080/) and every "
        "configured messenger, with hourly regrouping and daily purging",
    )
    ideas = commands.add_parser(
        "ideas", parents=[common], help="list or export stored ideas, personal data redacted"
    )
    ideas.add_argument("--format", choices=["csv", "json"], default="csv")
    ideas.add_argument(
        "--raw", action="store_true", help="the residents' own words, unredacted (audited)"
    )
    block = commands.add_parser(
        "block", parents=[common], help="keep a participant from sending ideas (audited)"
    )
    block.add_argument(
        "who", help="idea:N (the author of idea N) or the participant column of `ideas`"
    )
    block.add_argument("--days", type=float, required=True, help="how long, in days")
    rounds = commands.add_parser(
        "round", parents=[common], help="participation rounds: `round close` ends the current one"
    )
    rounds.add_argument("action", choices=["close"])
    commands.add_parser(
        "purge",
        parents=[common],
        help="keep only redacted text of rounds past retention_days (run does it daily)",
    )
    commands.add_parser(
        "cluster", parents=[common], help="regroup all stored ideas now (run does it hourly)"
    )
    summary = commands.add_parser(
        "summary", parents=[common], help="write the current summaries per action field"
    )
    summary.add_argument("--field", help="only this action field (its id, or new-topics)")
    summary.add_argument("--format", choices=["md", "csv", "json"], default="md")
    summary.add_argument("--language", choices=list(LANGUAGES), default="de")
    forward = commands.add_parser(
        "forward",
        parents=[common],
        help="send the current summaries to the strategy team's Matrix room",
    )
    forward.add_argument("--field", help="only this action field (its id, or new-topics)")
    forward.add_argument("--language", choices=list(LANGUAGES), help="default: moderator_language")
    forward.add_argument(
        "--wait", type=float, default=300.0, help="seconds to wait for a running mitreden to send"
    )
    evaluate = commands.add_parser(
        "eval", parents=[common], help="measure suggestion and grouping on labelled texts"
    )
    evaluate.add_argument("--data", type=Path, required=True, help="CSV with id,text,label")
    evaluate.add_argument(
        "--taxonomy", type=Path, required=True, help="YAML whose field ids are the labels"
    )
    evaluate.add_argument("--sample", type=_positive, help="evaluate on N random rows")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mitreden")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs a whole number of at least 2, not {raw!r}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, db=args.db)
    setup_logging(
        settings.log_level,
        [
            settings.telegram_token,
            settings.matrix_password,
            settings.matrix_access_token,
            settings.secret,
        ],
    )
    return settings


def _chat(settings: Settings, user: str) -> None:
    """A conversation in this terminal; it opens with the first question."""
    from mitreden.app import build_engine
    from mitreden.bot.terminal import run_terminal
    from mitreden.identity import load_pseudonymizer

    run_terminal(build_engine(settings), load_pseudonymizer(settings), user)


def _run(settings: Settings) -> None:
    """Everything configured (the web chat, Telegram, Matrix, the jobs) until Ctrl-C."""
    from mitreden.app import App

    async def run() -> None:
        app = App(settings)

        async def announce() -> None:
            await app.started.wait()
            if app.web is not None:
                print(f"mitreden is running: open {app.web.address} (stop with Ctrl-C)", flush=True)
            else:
                print("mitreden is running (stop with Ctrl-C)", flush=True)

        shown = asyncio.create_task(announce())
        try:
            await app.run()
        finally:
            shown.cancel()

    asyncio.run(run())


def _existing_store(settings: Settings) -> Store:
    if not settings.db.exists():
        raise StoreError(f"no database at {settings.db}")
    return Store(settings.db)


def _ideas(settings: Settings, fmt: str, raw: bool) -> None:
    """Ideas as anyone but their authors may read them; `raw` gives the words as written, for
    the operator only: it warns and is audited."""
    from mitreden.flows.catalogue import Catalogue
    from mitreden.jobs import now
    from mitreden.nlp import findings

    store = _existing_store(settings)
    rows = store.ideas()
    if raw:
        print(
            "mitreden: warning: these are the residents' own words with every name, address and "
            "number in them; the export is recorded in the audit log",
            file=sys.stderr,
        )
        with store.transaction():
            store.audit(now(), _operator(), "ideas.exported_raw", ideas=len(rows))
    labels = Catalogue.load().redaction_labels(settings.moderator_language)
    for row in rows:
        if not raw:
            row["text"] = findings.for_others(row, labels)
        row["participant"] = row.pop("participant_id")[:PARTICIPANT_SHOWN]
        for column in ("findings", "kept"):
            row.pop(column)
    if fmt == "json":
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        writer = csv.DictWriter(sys.stdout, IDEA_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)


def _operator() -> str:
    """Who is at the keyboard, for the audit log: the system account's name, not a person's."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _block(settings: Settings, who: str, days: float) -> None:
    from datetime import UTC, datetime, timedelta

    if not (0 < days <= 3650):
        raise ConfigError(f"--days {days:g}: expected a number of days from 0 to 3650")
    store = _existing_store(settings)
    with store.transaction():
        if who.startswith("idea:") and who[5:].isdigit():
            idea = store.idea(int(who[5:]))
            if idea is None:
                raise StoreError(f"there is no idea {who[5:]}")
            found = [idea["participant_id"]]
        elif re.fullmatch(r"[0-9a-f]{8,32}", who):
            found = store.participants_starting(who)
        else:
            raise ConfigError(f"{who!r}: expected idea:N or a participant id from `mitreden ideas`")
        if len(found) != 1:
            raise StoreError(f"{len(found) or 'no'} participants match {who!r}; give more of it")
        start = datetime.now(UTC)
        stamp = start.isoformat(timespec="seconds")
        until = (start + timedelta(days=days)).isoformat(timespec="seconds")
        block_id = store.block(found[0], until, stamp)
        store.audit(stamp, _operator(), "participant.blocked", f"block:{block_id}", until=until)
    print(f"blocked until {until}")


def _round_close(settings: Settings) -> None:
    from mitreden.jobs import now

    store = _existing_store(settings)
    stamp = now()
    with store.transaction():
        round_id = store.close_round(stamp, _operator())
        store.audit(stamp, _operator(), "round.closed", f"round:{round_id}")
    print(
        f"round {round_id} closed; its raw texts and addresses are purged after "
        f"{settings.retention_days:g} days"
    )


def _purge(settings: Settings) -> None:
    from mitreden.flows.catalogue import Catalogue
    from mitreden.jobs import now
    from mitreden.retention import purge

    store = _existing_store(settings)
    counts = purge(store, Catalogue.load(), now(), settings.retention_days, _operator())
    print("purged: " + ", ".join(f"{name} {count}" for name, count in counts.items()))


def _nlp(settings: Settings, store: Store) -> IdeaNlp:
    if settings.embedding_backend == "none":
        raise ConfigError("grouping needs an embedding backend; embedding_backend is none")
    embedder = make_embedder(settings.embedding_backend, settings.embedding_model or None)
    return IdeaNlp(embedder, load_taxonomy(settings.taxonomy), store)


def _cluster(settings: Settings) -> None:
    from mitreden.jobs import now

    report = _nlp(settings, _existing_store(settings)).clusters.recompute(now())
    print(
        f"{report.ideas} ideas in {report.clusters} groups "
        f"({report.kept_ids} kept their id) in {report.seconds:.1f} s"
    )


def _summary(settings: Settings, field: str | None, fmt: str, language: str) -> None:
    from mitreden import reports
    from mitreden.flows.catalogue import Catalogue

    taxonomy = _lane_checked(settings, field)
    catalogue = Catalogue.load()
    fields = reports.summaries(_existing_store(settings), taxonomy, catalogue, language, field)
    if fmt == "md":
        sys.stdout.write(reports.to_markdown(fields, catalogue, language))
    elif fmt == "csv":
        sys.stdout.write(reports.to_csv(fields))
    else:
        sys.stdout.write(reports.to_json(fields))


def _lane_checked(settings: Settings, field: str | None) -> Taxonomy:
    from mitreden.reports import lanes

    taxonomy = load_taxonomy(settings.taxonomy)
    if field is not None and field not in lanes(taxonomy):
        raise ConfigError(f"no action field {field!r}; choose one of {', '.join(lanes(taxonomy))}")
    return taxonomy


def _forward(settings: Settings, field: str | None, language: str | None, wait: float) -> None:
    """Queue the summaries for the strategy room. A running `mitreden run` sends them; if
    none runs, this command signs in as the bot's device itself just long enough to send."""
    import getpass
    import time

    from mitreden.bot.matrix import Session
    from mitreden.jobs import now

    if not settings.matrix() or not settings.matrix_strategy_room:
        raise ConfigError(
            "forward sends to the strategy team's Matrix room: set matrix_homeserver, "
            "matrix_user_id, matrix_password (or matrix_access_token) and matrix_strategy_room"
        )
    _lane_checked(settings, field)
    store = _existing_store(settings)
    with store.transaction():
        dispatch_id = store.add_dispatch(
            field, language or settings.moderator_language, f"cli:{getpass.getuser()}", now()
        )
    if Session(settings, "").is_locked():
        deadline = time.monotonic() + wait
        while store.dispatch(dispatch_id)["sent_at"] is None:
            if time.monotonic() > deadline:
                print(f"queued as {dispatch_id}; the running mitreden has not sent it yet")
                return
            time.sleep(0.5)
    else:
        asyncio.run(_send_queued(settings, dispatch_id))
    sent = store.dispatch(dispatch_id)
    if sent["error"]:
        raise ChannelError(f"the summary was not sent: {sent['error']}")
    print(f"sent to {settings.matrix_strategy_room} ({sent['message_key']})")


async def _send_queued(settings: Settings, dispatch_id: int) -> None:
    """Be the bot for a moment: sign in, send what is queued, sign off."""
    from mitreden.app import build_engine
    from mitreden.bot.matrix import MatrixChannel
    from mitreden.identity import load_pseudonymizer

    engine = build_engine(settings)
    channel = MatrixChannel(engine, load_pseudonymizer(settings), settings)
    await channel.start()  # sends what is queued before it returns
    await channel.stop()
    if engine.store.dispatch(dispatch_id)["sent_at"] is None:
        raise ChannelError(f"the bot is not in {settings.matrix_strategy_room}")


def _eval(settings: Settings, args: argparse.Namespace) -> None:
    from mitreden import evaluate

    taxonomy = load_taxonomy(args.taxonomy)
    items, skipped = evaluate.read_items(args.data, taxonomy)
    items = evaluate.sample(items, args.sample)
    embedder = make_embedder(settings.embedding_backend, settings.embedding_model or None)
    result = evaluate.evaluate(items, taxonomy, embedder)
    result.skipped = skipped
    if args.json:
        json.dump(result.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(evaluate.as_table(result))


def main(argv: list[str] | None = None) -> int:
    # Whatever this process creates (the database and its log, the key, the Matrix device's
    # store, a library's cache) is its owner's alone.
    os.umask(0o077)
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "chat":
            _chat(settings, args.user)
        elif args.command == "run":
            _run(settings)
        elif args.command == "ideas":
            _ideas(settings, args.format, args.raw)
        elif args.command == "block":
            _block(settings, args.who, args.days)
        elif args.command == "round":
            _round_close(settings)
        elif args.command == "purge":
            _purge(settings)
        elif args.command == "cluster":
            _cluster(settings)
        elif args.command == "summary":
            _summary(settings, args.field, args.format, args.language)
        elif args.command == "forward":
            _forward(settings, args.field, args.language, args.wait)
        elif args.command == "eval":
            _eval(settings, args)
        sys.stdout.flush()  # so a closed pipe shows here, not as noise when Python exits
    except EXPECTED as err:
        return _error(str(err))
    except BrokenPipeError:
        # Whoever read the output has gone (`mitreden ideas | head -1`). What is still
        # buffered for them goes nowhere, or flushing it at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _error("the output was closed before everything was written")
    except sqlite3.Error as err:
        down = unavailable(err)
        if down is None:  # not the file or the disk but a statement: a bug, worth its traceback
            raise
        return _error(str(down))
    except KeyboardInterrupt:
        return 130
    return 0


def _error(message: str) -> int:
    """An error the operator can fix: one line, no traceback, exit code 2 (as argparse)."""
    print(f"mitreden: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
