"""The `mitreden` command: chat in the terminal, run the channels, list and export ideas."""

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from mitreden.config import ConfigError, Settings, load_settings
from mitreden.flows.catalogue import CatalogueError
from mitreden.flows.definition import FlowError
from mitreden.nlp.embedders import EmbedderError
from mitreden.nlp.taxonomy import TaxonomyError
from mitreden.store import Store, StoreError

EXPECTED = (ConfigError, StoreError, TaxonomyError, EmbedderError, FlowError, CatalogueError)
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
        "run", parents=[common], help="start every configured channel (now: the terminal chat)"
    )
    ideas = commands.add_parser("ideas", parents=[common], help="list or export stored ideas")
    ideas.add_argument("--format", choices=["csv", "json"], default="csv")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, db=args.db)
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def _chat(settings: Settings, user: str) -> None:
    from mitreden.app import build_engine
    from mitreden.bot.terminal import run_terminal
    from mitreden.identity import load_pseudonymizer

    engine = build_engine(settings)
    run_terminal(engine, load_pseudonymizer(settings), user)


def _ideas(settings: Settings, fmt: str) -> None:
    if not settings.db.exists():
        raise StoreError(f"no database at {settings.db}")
    rows = Store(settings.db).ideas()
    if fmt == "json":
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        writer = csv.DictWriter(sys.stdout, IDEA_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command in ("chat", "run"):
            _chat(settings, getattr(args, "user", "terminal-user"))
        elif args.command == "ideas":
            _ideas(settings, args.format)
    except EXPECTED as err:
        print(f"mitreden: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
