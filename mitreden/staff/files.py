"""An approved summary as the files it is forwarded as: Markdown as approved, a PDF to print,
CSV and XLSX for the spreadsheets city staff already use, and JSON for tools.

The spreadsheets begin with the columns of mein.berlin.de's idea export, so organisers who know
that export find the same columns in the same order; mitreden's own follow. Read from
https://github.com/liqd/a4-meinberlin/blob/main/meinberlin/apps/ideas/exports.py (IdeaExportView:
its mixins in order, and Idea's verbose names) and the mixins it combines in
https://github.com/liqd/adhocracy4/tree/main/adhocracy4/exports/mixins/ (reference number, link,
title and description, positive and negative ratings, category, labels, comment count, moderator
status and feedback, remark, creator, created).
"""

import csv
import io
import json
import logging
import multiprocessing
import os
import pickle
import re
import tempfile
import unicodedata
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mitreden.logs import setup_logging
from mitreden.spreadsheets import spreadsheet_safe
from mitreden.staff import pdf, xlsx

FORMATS = ("md", "pdf", "csv", "json", "xlsx")
MIMETYPES = {
    "md": "text/markdown",
    "pdf": "application/pdf",
    "csv": "text/csv",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# mein.berlin.de's idea export, in its order; then ours. English, as adhocracy4's own are.
COLUMNS = [
    "Reference No.",
    "Link",
    "Title",
    "Description",
    "Positive ratings",
    "Negative ratings",
    "Category",
    "Labels",
    "Comment count",
    "Status",
    "Feedback",
    "Remark",
    "Creator",
    "Created",
    "Action field ID",
    "Group",
    "District",
    "Age band",
    "Actor group",
    "Language",
    "Channel",
]
# Ideas are pseudonymous: no name, and never the participant id, leaves mitreden.
CREATOR = "pseudonymous"
# One encoder for every idea: json.dumps(..., ensure_ascii=False) makes a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
# Column widths in characters: the title and the text wide enough to read.
WIDTHS = {COLUMNS.index("Title"): 40.0, COLUMNS.index("Description"): 80.0}
TITLE_WORDS = 8
TITLE_LENGTH = 120  # meinberlin's Idea.name max_length
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass  # not frozen: a frozen dataclass takes three times as long to make, 20,000 at a time
class ForwardedIdea:
    id: int
    text: str
    """Already redacted."""
    field: str
    """The action field's id (the lane)."""
    field_name: str
    """Its name in the summary's language."""
    created_at: str
    """ISO 8601, UTC."""
    district: str | None
    age_band: str | None
    actor_group: str | None
    language: str
    channel: str | None
    supporters: int
    group: int | None
    group_label: str | None
    review: str
    """pending, approved or rejected."""


@dataclass(frozen=True)
class Forwarded:
    summary_id: int
    lane: str
    field_name: str
    language: str
    markdown: str
    """The summary as moderators approved it."""
    approved_by: str
    approved_at: str
    ideas: list[ForwardedIdea]


def stem(forwarded: Forwarded) -> str:
    """zusammenfassung-<lane>-<id>-<approval date>, only [a-z0-9-]: a lane is never a path."""
    ascii_lane = unicodedata.normalize("NFKD", forwarded.lane).encode("ascii", "ignore").decode()
    lane = re.sub(r"[^a-z0-9]+", "-", ascii_lane.lower()).strip("-") or "feld"
    name = f"zusammenfassung-{lane}-{int(forwarded.summary_id)}"
    approved = DATE.match(forwarded.approved_at)
    return f"{name}-{approved.group()}" if approved else name


def render(
    forwarded: Forwarded, helper: Executor | None = None, pdf_file: "Future[bytes] | None" = None
) -> dict[str, tuple[str, bytes]]:
    """Every format as {file name: (mimetype, content)}, ready to write or attach. With a
    `helper` (see `helper_process()`), the PDF and the spreadsheet are made there while this
    thread makes the rest; `pdf_file` is the PDF if it was started earlier (it needs only the
    summary's text, so it can be made while the ideas are read)."""
    run = helper.submit if helper else _at_once
    if pdf_file is None:
        pdf_file = run(pdf.document, forwarded.markdown, forwarded.field_name, forwarded.language)
    rows = _rows(forwarded)
    if helper:
        # Pickled here and now: left to the executor's feeder thread, the rows waited for
        # the GIL until the CSV and JSON below were made, and the helper idled meanwhile.
        pickled = pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)
        xlsx_file = helper.submit(xlsx.pickled_workbook, COLUMNS, pickled, WIDTHS)
    else:
        xlsx_file = _at_once(xlsx.workbook, COLUMNS, rows, WIDTHS)
    csv_file, json_file = _csv(rows), _json(forwarded)
    contents = {
        "md": forwarded.markdown.encode("utf-8"),
        "pdf": pdf_file.result(),
        "csv": csv_file,
        "json": json_file,
        "xlsx": xlsx_file.result(),
    }
    name = stem(forwarded)
    return {f"{name}.{ext}": (MIMETYPES[ext], contents[ext]) for ext in FORMATS}


def helper_process() -> ProcessPoolExecutor:
    """A process to make the PDF and the spreadsheet of `render` in, beside the thread that
    makes the rest, so that both cores work (the files of 100,000 ideas took 6.8 s instead
    of 8.9 s, and the PDF is made while the ideas are read). Started afresh ("spawn": a
    forked copy of a process with threads may inherit a lock one of them held), and logging
    as every mitreden process does, so that a warning of fpdf2's about a missing glyph
    quotes no one's words."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=setup_logging,
        initargs=(level,),
    )


def _at_once(call: Callable[..., bytes], *args: object) -> "Future[bytes]":
    """`call(*args)` made here and now, as a finished future."""
    done: Future[bytes] = Future()
    done.set_result(call(*args))
    return done


def write(rendered: dict[str, tuple[str, bytes]], directory: Path) -> list[Path]:
    """`render()`'s files in `directory`, readable by the owner only. Each appears whole or
    not at all (written beside, then renamed), so a reader never picks up half a file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = []
    for name, (_, content) in rendered.items():
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)  # mode 0600
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        paths.append(directory / name)
    return paths


def _title(text: str) -> str:
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(words) > TITLE_WORDS or len(title) > TITLE_LENGTH:
        title = title[: TITLE_LENGTH - 1].rstrip() + "…"
    return title


def _row(idea: ForwardedIdea) -> list[object]:
    """One idea in COLUMNS' order, no cell a formula; what mitreden has no counterpart for
    stays empty or 0. (`safe` only where text comes from people or the store: 100,000
    ideas have two million cells.)"""
    safe = spreadsheet_safe
    return [
        idea.id,
        "",
        safe(_title(idea.text)),
        safe(idea.text),
        idea.supporters,
        0,
        safe(idea.field_name),
        safe(idea.group_label or ""),
        0,
        safe(idea.review),
        "",
        "",
        CREATOR,
        safe(idea.created_at),
        safe(idea.field),
        "" if idea.group is None else idea.group,
        safe(idea.district or ""),
        safe(idea.age_band or ""),
        safe(idea.actor_group or ""),
        safe(idea.language),
        safe(idea.channel or ""),
    ]


def _rows(forwarded: Forwarded) -> list[list[object]]:
    """Every idea's row for the spreadsheets."""
    return [_row(idea) for idea in forwarded.ideas]


def _csv(rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _json(forwarded: Forwarded) -> bytes:
    summary = {
        "id": forwarded.summary_id,
        "lane": forwarded.lane,
        "field_name": forwarded.field_name,
        "language": forwarded.language,
        "approved_by": forwarded.approved_by,
        "approved_at": forwarded.approved_at,
        "markdown": forwarded.markdown,
    }
    # One idea per line: readable, and written by json's C encoder, which indenting would
    # turn off (20,000 ideas in a tenth of the time). vars(): asdict would copy deeply.
    ideas = ",\n".join(_ENCODE(vars(idea)) for idea in forwarded.ideas)
    head = json.dumps(summary, ensure_ascii=False, indent=2)
    return f'{{"summary": {head},\n"ideas": [\n{ideas}\n]}}\n'.encode()
