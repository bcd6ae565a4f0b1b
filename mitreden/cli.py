"""The `mitreden` command: chat in the terminal, run the channels, list and export ideas,
group and summarise them, review, approve and forward them as staff do on the dashboard,
and evaluate suggestion and grouping on labelled data."""

import argparse
import csv
import json
import os
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mitreden.clock import now
from mitreden.config import ConfigError, Settings, load_settings
from mitreden.errors import OperatorError
from mitreden.flows.catalogue import LANGUAGES
from mitreden.logs import setup_logging

# Each command imports what it uses: `mitreden --help` loads neither the store nor the NLP.
if TYPE_CHECKING:
    from mitreden.nlp.pipeline import IdeaNlp
    from mitreden.nlp.taxonomy import Taxonomy
    from mitreden.staff.forwarding import Forwarding
    from mitreden.staff.reach import Population
    from mitreden.store import Store
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
# SQLite's largest integer: a bigger id would overflow, not just find nothing.
MAX_ID = 2**63 - 1
# Review states an idea may be listed by (see mitreden.staff.review).
REVIEW_STATES = ["pending", "held", "approved", "rejected"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mitreden", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    config_help, db_help = (
        "TOML config file (or MITREDEN_CONFIG)",
        "SQLite database file (or MITREDEN_DB)",
    )
    common.add_argument("--config", type=Path, help=config_help)
    common.add_argument("--db", help=db_help)
    # The same for the actions of a command (`staff add`), before or after the action: given
    # no default, so that the action's parse does not overwrite what came before it.
    inner = argparse.ArgumentParser(add_help=False)
    inner.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    inner.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
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
    summary_work = summary.add_subparsers(
        dest="action", metavar="{draft,approve}", help="summaries moderators approve (audited)"
    )
    draft = summary_work.add_parser(
        "draft", parents=[inner], help="save a field's current summary as a draft; prints its id"
    )
    draft.add_argument("--field", dest="draft_field", required=True, help="its id, or new-topics")
    draft.add_argument(
        "--language",
        dest="draft_language",
        choices=list(LANGUAGES),
        help="default: moderator_language",
    )
    approve = summary_work.add_parser(
        "approve", parents=[inner], help="approve a summary, so that it can be forwarded"
    )
    approve.add_argument("summary", type=_id, help="its id")
    forward = commands.add_parser(
        "forward",
        parents=[common],
        help="send the current summaries to the strategy team's Matrix room; with --approved, "
        "forward approved summaries instead (files, Matrix, e-mail, residents' notices)",
    )
    forward.add_argument("--field", help="only this action field (its id, or new-topics)")
    forward.add_argument("--language", choices=list(LANGUAGES), help="default: moderator_language")
    forward.add_argument(
        "--wait", type=float, default=300.0, help="seconds to wait for a running mitreden to send"
    )
    forward.add_argument(
        "--approved",
        action="store_true",
        help="forward the approved summaries not yet forwarded: files in forward_dir, the "
        "strategy room and e-mail where configured, and a notice to each resident who asked; "
        "the running `mitreden run` sends the room's message and the notices (or it does at "
        "its next start)",
    )
    forward.add_argument("--summary", type=_id, help="with --approved: only this summary")
    evaluate = commands.add_parser(
        "eval", parents=[common], help="measure suggestion and grouping on labelled texts"
    )
    evaluate.add_argument("--data", type=Path, required=True, help="CSV with id,text,label")
    evaluate.add_argument(
        "--taxonomy", type=Path, required=True, help="YAML whose field ids are the labels"
    )
    evaluate.add_argument("--sample", type=_positive, help="evaluate on N random rows")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _staff_parsers(commands, common, inner)
    return parser


def _staff_parsers(
    commands: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    inner: argparse.ArgumentParser,
) -> None:
    """`staff`, `review` and `groups`: what moderators and admins do on the dashboard."""
    staff = commands.add_parser(
        "staff", parents=[common], help="accounts for the staff dashboard (audited)"
    )
    accounts = staff.add_subparsers(dest="action", required=True)
    add = accounts.add_parser(
        "add", parents=[inner], help="make an account; its password is asked twice"
    )
    add.add_argument("name", help="1 to 64 letters, digits or . _ @ -")
    add.add_argument("--role", required=True, help="moderator or admin")
    password_stdin = {
        "action": "store_true",
        "help": "read the password from one line of standard input (for scripts)",
    }
    add.add_argument("--password-stdin", **password_stdin)
    accounts.add_parser("list", parents=[inner], help="every account, its role and state")
    for action, text in [
        ("disable", "keep an account from signing in; ends its sessions"),
        ("enable", "let a disabled account sign in again"),
        ("logout", "end every session of an account"),
    ]:
        accounts.add_parser(action, parents=[inner], help=text).add_argument("name")
    role = accounts.add_parser("role", parents=[inner], help="give an account another role")
    role.add_argument("name")
    role.add_argument("role", help="moderator or admin")
    password = accounts.add_parser(
        "password", parents=[inner], help="set a new password (asked twice); ends its sessions"
    )
    password.add_argument("name")
    password.add_argument("--password-stdin", **password_stdin)

    review = commands.add_parser(
        "review",
        parents=[common],
        help="list the ideas waiting for review (pending and held, oldest first, redacted), "
        "or decide on one (audited)",
    )
    review.add_argument("--state", choices=REVIEW_STATES, help="list the ideas in this state")
    review.add_argument("--field", help="list only this action field's ideas")
    review.add_argument("--limit", type=_id, default=50, help="list at most this many")
    decide = review.add_subparsers(
        dest="action", metavar="{approve,reject,reopen,undo,field,duplicate}"
    )
    for action, text in [
        ("approve", "approve an idea"),
        ("reject", "reject an idea, with a reason; it leaves the summaries"),
        ("reopen", "set an idea back to pending"),
        ("undo", "go back to the state before an idea's last decision"),
        ("field", "file an idea under another action field; the suggester learns from it"),
        ("duplicate", "reject an idea as a repeat; its author supports the other one"),
    ]:
        decision = decide.add_parser(action, parents=[inner], help=text)
        decision.add_argument("idea", type=_id, help="the idea's id")
        if action == "reject":
            decision.add_argument(
                "--reason",
                required=True,
                help="off_topic, personal_attack, personal_data, duplicate or spam",
            )
            decision.add_argument("--note", help="why, in your words (kept with the idea)")
        elif action == "field":
            decision.add_argument("to_field", metavar="field", help="the action field's id")
        elif action == "duplicate":
            decision.add_argument("--of", type=_id, required=True, help="the idea it repeats")

    reach = commands.add_parser(
        "reach",
        parents=[common],
        help="who took part, by district, age band, group, channel, language and week, "
        "against the population (no figure from fewer than 5 people)",
    )
    reach.add_argument(
        "--format",
        choices=("table", "csv", "json", "svg", "png"),
        default="table",
        help="table, csv or json to standard output or --out; svg or png: a picture per "
        "dimension and the district map, into the folder --out",
    )
    reach.add_argument("--out", type=Path, help="the file (table, csv, json) or folder")
    reach.add_argument("--language", choices=LANGUAGES, help="default: moderator_language")

    groups = commands.add_parser(
        "groups", parents=[common], help="groups of similar ideas, as moderators shape them"
    )
    shape = groups.add_subparsers(dest="action", required=True)
    listed = shape.add_parser("list", parents=[inner], help="id, field, label and size of each")
    listed.add_argument("--field", help="only this action field's groups")
    rename = shape.add_parser(
        "rename", parents=[inner], help="label a group (audited); an empty label: its keywords"
    )
    rename.add_argument("group", type=_id, help="the group's id")
    rename.add_argument("label", help="at most 120 characters")
    merge = shape.add_parser("merge", parents=[inner], help="show a group inside another (audited)")
    merge.add_argument("group", type=_id, help="the group's id")
    merge.add_argument("--into", type=_id, required=True, help="the group it becomes part of")
    move = shape.add_parser(
        "move",
        parents=[inner],
        help="move an idea into a group, or a new group (audited); a group of another field "
        "files it there",
    )
    move.add_argument("idea", type=_id, help="the idea's id")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=_id, metavar="GROUP", help="the group's id")
    where.add_argument("--new", metavar="FIELD", help="a new group of this action field")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mitreden")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _id(raw: str) -> int:
    """An idea's, group's or summary's id: a whole number from 1 that SQLite can hold."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) <= MAX_ID:
        return int(raw)
    raise argparse.ArgumentTypeError(f"expected a whole number from 1, not {raw[:40]!r}")


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
    from mitreden.app import engine_with_nlp_to_load
    from mitreden.bot.terminal import run_terminal
    from mitreden.identity import load_pseudonymizer

    engine, load_nlp = engine_with_nlp_to_load(settings)
    run_terminal(engine, load_pseudonymizer(settings), user, ready=load_nlp)


def _run(settings: Settings) -> None:
    """Everything configured (the web chat, Telegram, Matrix, the jobs) until Ctrl-C."""
    import asyncio

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


def _existing_store(settings: Settings) -> "Store":
    from mitreden.store import Store, StoreError

    if not settings.db.exists():
        raise StoreError(f"no database at {settings.db}")
    return Store(settings.db)


def _ideas(settings: Settings, fmt: str, raw: bool) -> None:
    """Ideas as anyone but their authors may read them; `raw` gives the words as written, for
    the operator only: it warns and is audited."""
    from mitreden.flows.catalogue import Catalogue
    from mitreden.nlp import findings
    from mitreden.spreadsheets import spreadsheet_safe

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

    from mitreden.store import StoreError

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
    from mitreden.retention import purge

    store = _existing_store(settings)
    counts = purge(store, Catalogue.load(), now(), settings.retention_days, _operator())
    print("purged: " + ", ".join(f"{name} {count}" for name, count in counts.items()))


def _nlp(settings: Settings, store: "Store") -> "IdeaNlp":
    from mitreden.nlp.embedders import make_embedder
    from mitreden.nlp.pipeline import IdeaNlp
    from mitreden.nlp.taxonomy import load_taxonomy

    if settings.embedding_backend == "none":
        raise ConfigError("grouping needs an embedding backend; embedding_backend is none")
    embedder = make_embedder(settings.embedding_backend, settings.embedding_model or None)
    return IdeaNlp(embedder, load_taxonomy(settings.taxonomy), store)


def _cluster(settings: Settings) -> None:

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


def _lane_checked(settings: Settings, field: str | None) -> "Taxonomy":
    from mitreden.nlp.taxonomy import load_taxonomy
    from mitreden.reports import lanes

    taxonomy = load_taxonomy(settings.taxonomy)
    if field is not None and field not in lanes(taxonomy):
        raise ConfigError(f"no action field {field!r}; choose one of {', '.join(lanes(taxonomy))}")
    return taxonomy


def _forward(settings: Settings, field: str | None, language: str | None, wait: float) -> None:
    """Queue the summaries for the strategy room. A running `mitreden run` sends them; if
    none runs, this command signs in as the bot's device itself just long enough to send."""
    import asyncio
    import getpass
    import time

    from mitreden.bot import ChannelError
    from mitreden.bot.matrix import Session

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
        while _dispatch(store, dispatch_id)["sent_at"] is None:
            if time.monotonic() > deadline:
                print(f"queued as {dispatch_id}; the running mitreden has not sent it yet")
                return
            time.sleep(0.5)
    else:
        asyncio.run(_send_queued(settings, dispatch_id))
    sent = _dispatch(store, dispatch_id)
    if sent["error"]:
        raise ChannelError(f"the summary was not sent: {sent['error']}")
    print(f"sent to {settings.matrix_strategy_room} ({sent['message_key']})")


async def _send_queued(settings: Settings, dispatch_id: int) -> None:
    """Be the bot for a moment: sign in, send what is queued, sign off."""
    from mitreden.app import build_engine
    from mitreden.bot import ChannelError
    from mitreden.bot.matrix import MatrixChannel
    from mitreden.identity import load_pseudonymizer

    engine = build_engine(settings)
    channel = MatrixChannel(engine, load_pseudonymizer(settings), settings)
    await channel.start()  # sends what is queued before it returns
    await channel.stop()
    if _dispatch(engine.store, dispatch_id)["sent_at"] is None:
        raise ChannelError(f"the bot is not in {settings.matrix_strategy_room}")


def _dispatch(store: "Store", dispatch_id: int) -> dict:
    """A dispatch this command queued (a dispatch is never deleted)."""
    from mitreden.store import StoreError

    dispatch = store.dispatch(dispatch_id)
    if dispatch is None:
        raise StoreError(f"dispatch {dispatch_id} is gone")
    return dispatch


@contextmanager
def _refused(*errors: type[Exception]) -> Iterator[None]:
    """The staff service's refusals (a bad reason, an unknown account) as one-line errors;
    its modules are imported by the commands that use them, so `mitreden --help` stays fast."""
    try:
        yield
    except errors as err:
        raise ConfigError(str(err)) from None


def _one_line(text: str) -> str:
    """A resident's or moderator's words on one terminal line: line breaks, tabs, escape
    sequences and direction overrides cannot break the columns or take over the terminal."""
    cut = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    return " ".join(cut.split())


def _new_password(from_stdin: bool) -> str:
    """One line of standard input for scripts; else asked twice, not shown as it is typed."""
    import getpass

    if from_stdin:
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:
            raise ConfigError("the password on standard input is not UTF-8 text") from None
        return line.removesuffix("\n").removesuffix("\r")
    password = getpass.getpass("new password: ")
    if getpass.getpass("the same again: ") != password:
        raise ConfigError("the two passwords differ; nothing was changed")
    return password


def _staff(settings: Settings, args: argparse.Namespace) -> None:
    """Staff accounts, the first admin's too: the dashboard has no sign-up."""
    from mitreden.staff import accounts
    from mitreden.store import Store

    # The first admin is made before anything ran, so `add` may create the database.
    store = Store(settings.db) if args.action == "add" else _existing_store(settings)
    name, actor = getattr(args, "name", ""), _operator()
    with _refused(accounts.AccountError):
        if args.action == "list":
            print("name\trole\tcreated\tdisabled")
            for member in store.staff_members():
                disabled = member["disabled_at"] or ""
                print(f"{member['name']}\t{member['role']}\t{member['created_at']}\t{disabled}")
        elif args.action == "add":
            accounts.add(store, name, args.role, _new_password(args.password_stdin), actor, now())
            print(f"{name} added as {args.role}")
        elif args.action == "password":
            if store.staff_member(name) is None:  # said before the password is typed twice
                raise accounts.AccountError(f"there is no account {name!r}")
            accounts.change(store, name, actor, now(), password=_new_password(args.password_stdin))
            print(f"{name} has a new password; their sessions ended")
        elif args.action == "role":
            accounts.change(store, name, actor, now(), role=args.role)
            print(f"{name} is {args.role} now")
        elif args.action == "logout":
            accounts.end_sessions(store, name, actor, now())
            print(f"every session of {name} ended")
        else:
            disable = args.action == "disable"
            accounts.change(store, name, actor, now(), disabled=disable)
            print(f"{name} disabled; their sessions ended" if disable else f"{name} enabled")


def _review(settings: Settings, args: argparse.Namespace) -> None:
    """The review queue, or one decision on an idea, audited as the operator's."""
    from mitreden.staff import review
    from mitreden.store import StoreError

    store = _existing_store(settings)
    if args.action is None:
        _review_queue(settings, store, args.state, args.field, args.limit)
        return
    idea, actor, stamp = args.idea, _operator(), now()
    with _refused(review.ReviewError):
        if args.action == "undo":
            print(f"idea {idea} is {review.undo(store, idea, actor, stamp)} again")
        elif args.action == "duplicate":
            review.mark_duplicate(store, idea, args.of, actor, stamp)
            print(f"idea {idea} rejected as a repeat of idea {args.of}")
        elif args.action == "field":
            _correct_field(settings, store, idea, args.to_field, actor, stamp)
            print(f"idea {idea} filed under {args.to_field}")
        else:
            state = {"approve": review.APPROVED, "reject": review.REJECTED}.get(
                args.action, review.PENDING
            )
            reason, note = getattr(args, "reason", None), getattr(args, "note", None)
            if reason is not None and reason not in review.REASONS:
                choices = ", ".join(review.REASONS)
                raise ConfigError(f"--reason {reason[:40]!r}: choose one of {choices}")
            was = review.review(store, idea, state, actor, stamp, reason, note)
            if was is None:
                raise StoreError(f"there is no idea {idea}")
            print(f"idea {idea} is {state}" + (f" ({reason})" if reason else "") + f", was {was}")


def _review_queue(
    settings: Settings, store: "Store", state: str | None, field: str | None, limit: int
) -> None:
    """Ideas in a review state, oldest first, as moderators see them: personal data redacted."""
    from mitreden.flows.catalogue import Catalogue
    from mitreden.nlp import findings

    _lane_checked(settings, field)
    labels = Catalogue.load().redaction_labels(settings.moderator_language)
    states = (state,) if state else ("pending", "held")
    print("id\tstate\tfield\ttext")
    for idea in store.review_queue(states, field, limit):
        shown = idea["review"] + (f" ({idea['review_reason']})" if idea["review_reason"] else "")
        filed = idea["confirmed_field"] or idea["suggested_field"] or "-"
        text = _one_line(findings.for_others(idea, labels))
        print(f"{idea['id']}\t{shown}\t{filed}\t{text}")


def _correct_field(
    settings: Settings, store: "Store", idea_id: int, field: str, actor: str, stamp: str
) -> None:
    """File an idea under another field. With an embedding backend, the NLP places it in a
    group of that field at once; a running `mitreden run` learns from the confirmed field
    when it next starts."""
    from mitreden.nlp.taxonomy import load_taxonomy
    from mitreden.staff.review import correct_field
    from mitreden.store import StoreError

    taxonomy = load_taxonomy(settings.taxonomy)
    fields = [f.id for f in taxonomy.leaves]
    if field not in fields:
        raise ConfigError(f"no action field {field!r}; choose one of {', '.join(fields)}")
    if store.idea(idea_id) is None:  # said before the model is loaded
        raise StoreError(f"there is no idea {idea_id}")
    nlp = None if settings.embedding_backend == "none" else _nlp(settings, store)
    correct_field(store, taxonomy, nlp, idea_id, field, actor, stamp)


def _groups(settings: Settings, args: argparse.Namespace) -> None:
    """Groups as moderators shape them; each change audited as the operator's."""
    from mitreden.staff import groups

    store = _existing_store(settings)
    actor, stamp = _operator(), now()
    if args.action == "list":
        _group_list(settings, store, args.field)
    elif args.action == "rename":
        groups.rename(store, args.group, args.label, actor, stamp)
        print(f"group {args.group} renamed")
    elif args.action == "merge":
        groups.merge(store, args.group, args.into, actor, stamp)
        merged = store.cluster(args.group) or {"merged_into": args.into}
        print(f"group {args.group} is part of group {merged['merged_into']}")
    else:
        taxonomy = _lane_checked(settings, args.new)
        # No NLP: the idea stays where it is put, and what it would learn in this process
        # is lost when it ends; the confirmed field is what a restart learns from.
        group = groups.move(store, taxonomy, None, args.idea, args.to, actor, stamp, args.new)
        print(f"idea {args.idea} is in group {group}")


def _group_list(settings: Settings, store: "Store", field: str | None) -> None:
    """Each group with its label as summaries show it, its size (rejected ideas left out) and
    the group it was merged into."""
    from datetime import UTC, datetime

    from mitreden import reports
    from mitreden.flows.catalogue import Catalogue
    from mitreden.staff.groups import trend_since

    taxonomy = _lane_checked(settings, field)
    language = settings.moderator_language
    shown = reports.summaries(store, taxonomy, Catalogue.load(), language, field)
    labels = {group.id: group.label for lane in shown for group in lane.groups}
    sizes = store.group_trend(trend_since(datetime.now(UTC)))
    print("id\tfield\tlabel\tsize\tmerged_into")
    for group in store.clusters():
        if field is not None and group["lane"] != field:
            continue
        label = _one_line(group["custom_label"] or labels.get(group["id"], ""))
        size = sizes.get(group["id"], (0, 0))[1]
        merged = group["merged_into"] or ""
        print(f"{group['id']}\t{group['lane']}\t{label}\t{size}\t{merged}")


def _population(settings: Settings) -> "Population":
    from mitreden.staff import reach

    try:
        return reach.load_population(settings.population)
    except reach.PopulationError as err:
        raise ConfigError(str(err)) from err


def _reach(settings: Settings, form: str, out: Path | None, language: str | None) -> None:
    """The reach figures as a table, CSV or JSON, or as pictures in a folder."""
    from mitreden.flows.catalogue import Catalogue
    from mitreden.flows.definition import load_flow
    from mitreden.staff import charts, reach

    if form in ("svg", "png") and out is None:
        raise ConfigError(f"--format {form} writes a picture per dimension: give a folder --out")
    figures = reach.figures(_existing_store(settings), _population(settings))
    labels = reach.Labels(load_flow(), Catalogue.load(), language or settings.moderator_language)
    if form in ("table", "csv", "json"):
        if form == "table":
            written = reach.to_markdown(figures, labels)
        else:
            written = reach.to_csv(figures) if form == "csv" else reach.to_json(figures)
        if out is None:
            sys.stdout.write(written)
        else:
            out.write_text(written, encoding="utf-8")
        return
    assert out is not None  # refused above for pictures
    out.mkdir(parents=True, exist_ok=True)
    scenes = {f"reach-{d.name}": charts.bars(d, labels) for d in figures.dimensions}
    district = next(d for d in figures.dimensions if d.name == "district")
    try:
        scenes["reach-map"] = charts.district_map(district, labels, settings.districts)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"cannot draw the districts of {settings.districts}: {err}") from err
    for name, scene in scenes.items():
        path = out / f"{name}.{form}"
        if form == "svg":
            path.write_text(charts.svg(scene), encoding="utf-8")
        else:
            path.write_bytes(charts.png(scene))
        print(path)


def _summary_work(settings: Settings, args: argparse.Namespace) -> None:
    """A draft of a field's summary as it is now, or an approval, audited as the operator's."""
    from mitreden.flows.catalogue import Catalogue
    from mitreden.staff import summaries

    store = _existing_store(settings)
    with _refused(summaries.SummaryError):
        if args.action == "draft":
            taxonomy = _lane_checked(settings, args.draft_field)
            language = args.draft_language or settings.moderator_language
            catalogue = Catalogue.load()
            print(
                summaries.draft(
                    store,
                    taxonomy,
                    catalogue,
                    args.draft_field,
                    language,
                    _operator(),
                    now(),
                    _population(settings),
                )
            )
        else:
            summaries.approve(store, args.summary, _operator(), now())
            print(f"summary {args.summary} approved; `mitreden forward --approved` forwards it")


def _forward_approved(settings: Settings, field: str | None, summary_id: int | None) -> None:
    """Forward approved summaries, oldest first: files, the strategy room, e-mail and the
    residents' notices. The room's message and the notices wait in the database for the
    running `mitreden run` (or its next start) to send."""
    from mitreden.flows.catalogue import Catalogue
    from mitreden.staff import forwarding, summaries

    if field is not None and summary_id is not None:
        raise ConfigError("--summary and --field: give one of them")
    settings.smtp()  # a half e-mail setup is refused before anything is forwarded
    taxonomy = _lane_checked(settings, field)
    store = _existing_store(settings)
    if summary_id is not None:
        ids = [summary_id]
    else:
        newest_first = store.summaries_of(field, limit=-1)  # -1: no limit, as SQLite reads it
        ids = [s["id"] for s in reversed(newest_first) if s["state"] == summaries.APPROVED]
    if not ids:
        print("no approved summary is waiting to be forwarded")
        return
    catalogue = Catalogue.load()
    with _refused(summaries.SummaryError):
        for one in ids:
            try:
                done = forwarding.forward(
                    store, settings, taxonomy, catalogue, one, _operator(), now()
                )
            except OSError as err:  # the files come first: nothing was forwarded
                raise ConfigError(f"cannot write the summary's files: {err}") from None
            _forwarded(settings, done)


def _forwarded(settings: Settings, done: "Forwarding") -> None:
    """What forwarding one summary did, for the operator."""
    print(f"summary {done.summary_id} forwarded")
    for path in done.paths:
        print(f"  file: {path}")
    if done.matrix:
        print(f"  Matrix: queued for {settings.matrix_strategy_room}")
    if done.mailed is None:
        print("  e-mail: none configured")
    else:
        print("  e-mail: sent" if done.mailed else f"  e-mail: NOT sent: {done.mail_error}")
    print(f"  residents told: {done.notified}")
    if done.matrix or done.notified:
        print("  (the running `mitreden run` sends these, or it does when it next starts)")


def _eval(settings: Settings, args: argparse.Namespace) -> None:
    from mitreden import evaluate
    from mitreden.nlp.embedders import make_embedder
    from mitreden.nlp.taxonomy import load_taxonomy

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
        elif args.command == "summary" and args.action is None:
            _summary(settings, args.field, args.format, args.language)
        elif args.command == "summary":
            _summary_work(settings, args)
        elif args.command == "forward" and args.approved:
            if args.language is not None:
                raise ConfigError("--approved forwards summaries as approved: no --language")
            _forward_approved(settings, args.field, args.summary)
        elif args.command == "forward":
            if args.summary is not None:
                raise ConfigError("--summary goes with --approved")
            _forward(settings, args.field, args.language, args.wait)
        elif args.command == "staff":
            _staff(settings, args)
        elif args.command == "review":
            _review(settings, args)
        elif args.command == "groups":
            _groups(settings, args)
        elif args.command == "reach":
            _reach(settings, args.format, args.out, args.language)
        elif args.command == "eval":
            _eval(settings, args)
        sys.stdout.flush()  # so a closed pipe shows here, not as noise when Python exits
    except OperatorError as err:
        return _error(str(err))
    except BrokenPipeError:
        # Whoever read the output has gone (`mitreden ideas | head -1`). What is still
        # buffered for them goes nowhere, or flushing it at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _error("the output was closed before everything was written")
    except sqlite3.Error as err:
        from mitreden.store.store import unavailable

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
