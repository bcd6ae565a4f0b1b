"""The `mitreden` command: chat in the terminal, run the channels, list and export ideas,
group and summarise them, and evaluate suggestion and grouping on labelled data."""

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from mitreden.config import ConfigError, Settings, load_settings
from mitreden.evaluate import EvalDataError
from mitreden.flows.catalogue import LANGUAGES, CatalogueError
from mitreden.flows.definition import FlowError
from mitreden.nlp.embedders import EmbedderError, make_embedder
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import TaxonomyError, load_taxonomy
from mitreden.reports import spreadsheet_safe
from mitreden.store import Store, StoreError

EXPECTED = (
    ConfigError,
    StoreError,
    TaxonomyError,
    EmbedderError,
    FlowError,
    CatalogueError,
    EvalDataError,
)
IDEA_COLUMNS = [
    "id",
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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML config file (or MITREDEN_CONFIG)")
    common.add_argument("--db", help="SQLite database file (or MITREDEN_DB)")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", parents=[common], help="chat with the bot in this terminal")
    chat.add_argument("--user", default="terminal-user", help="the simulated participant")
    commands.add_parser(
        "run",
        parents=[common],
        help="start the configured channel (Telegram if a token is set, else this terminal) "
        "and hourly regrouping",
    )
    ideas = commands.add_parser("ideas", parents=[common], help="list or export stored ideas")
    ideas.add_argument("--format", choices=["csv", "json"], default="csv")
    commands.add_parser(
        "cluster", parents=[common], help="regroup all stored ideas now (run does it hourly)"
    )
    summary = commands.add_parser(
        "summary", parents=[common], help="write the current summaries per action field"
    )
    summary.add_argument("--field", help="only this action field (its id, or new-topics)")
    summary.add_argument("--format", choices=["md", "csv", "json"], default="md")
    summary.add_argument("--language", choices=list(LANGUAGES), default="de")
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
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and Telegram's URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return settings


def _chat(settings: Settings, user: str, regroup: bool = False) -> None:
    """The terminal channel, or Telegram when a token is set (`run` only); `run` regroups."""
    from mitreden.app import build_engine
    from mitreden.bot.terminal import run_terminal
    from mitreden.identity import load_pseudonymizer
    from mitreden.jobs import RegroupJob
    from mitreden.nlp.clusters import ClusterBook

    webhook = settings.webhook() if regroup and settings.telegram_token else None
    engine = build_engine(settings)
    job = None
    if regroup and engine.nlp is not None:
        # Its own connection: the job reads and writes while the channel is mid-transaction.
        book = ClusterBook(Store(settings.db), engine.nlp.suggester)
        job = RegroupJob(book, settings.regroup_minutes * 60)
        job.start()
    try:
        if regroup and settings.telegram_token:
            from mitreden.bot.telegram import TelegramChannel

            pseudonymizer = load_pseudonymizer(settings)
            channel = TelegramChannel(
                engine,
                pseudonymizer,
                settings.telegram_token,
                settings.telegram_api_base_url or None,
            )
            if webhook is None:
                channel.run_polling()
            else:
                channel.run_webhook(*webhook, secret=pseudonymizer.token("telegram-webhook"))
        else:
            run_terminal(engine, load_pseudonymizer(settings), user)
    finally:
        if job is not None:
            job.stop()


def _existing_store(settings: Settings) -> Store:
    if not settings.db.exists():
        raise StoreError(f"no database at {settings.db}")
    return Store(settings.db)


def _ideas(settings: Settings, fmt: str) -> None:
    rows = _existing_store(settings).ideas()
    if fmt == "json":
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        writer = csv.DictWriter(sys.stdout, IDEA_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)


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
    from mitreden.nlp.clusters import NEW_TOPICS
    from mitreden.nlp.redact import KINDS
    from mitreden.nlp.summary import summarize

    taxonomy = load_taxonomy(settings.taxonomy)
    lanes = [f.id for f in taxonomy.leaves] + [NEW_TOPICS]
    if field is not None and field not in lanes:
        raise ConfigError(f"no action field {field!r}; choose one of {', '.join(lanes)}")
    catalogue = Catalogue.load()
    redaction = {kind: catalogue.text(language, f"redacted_{kind}") for kind in KINDS}
    fields = summarize(_existing_store(settings), taxonomy, redaction, language, field)
    if fmt == "md":
        sys.stdout.write(reports.to_markdown(fields, catalogue, language))
    elif fmt == "csv":
        sys.stdout.write(reports.to_csv(fields))
    else:
        sys.stdout.write(reports.to_json(fields))


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
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command in ("chat", "run"):
            _chat(settings, getattr(args, "user", "terminal-user"), args.command == "run")
        elif args.command == "ideas":
            _ideas(settings, args.format)
        elif args.command == "cluster":
            _cluster(settings)
        elif args.command == "summary":
            _summary(settings, args.field, args.format, args.language)
        elif args.command == "eval":
            _eval(settings, args)
    except EXPECTED as err:
        print(f"mitreden: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
