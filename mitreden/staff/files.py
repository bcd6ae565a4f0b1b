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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mitreden.logs import setup_logging
from mitreden.reports import spreadsheet_safe
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
WIDTHS = {COLUMNS.index("Title"): 40, COLUMNS.index("Description"): 80}
TITLE_WORDS = 8
TITLE_LENGTH = 120  # meinberlin's Idea.name max_length
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
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


def render(forwarded: Forwarded) -> dict[str, tuple[str, bytes]]:
    """Every format as {file name: (mimetype, content)}, ready to write or attach, made in
    this thread (the command line; the dashboard makes them in helper processes, see
    `forwarding.render_aside`)."""
    rows = _rows(forwarded)
    contents = {
        "md": forwarded.markdown.encode("utf-8"),
        "pdf": pdf.document(forwarded.markdown, forwarded.field_name, forwarded.language),
        "csv": _csv_lines([COLUMNS, *rows]).encode("utf-8"),
        "json": _json_document(forwarded, [_json_lines(forwarded)]),
        "xlsx": xlsx.workbook(COLUMNS, rows, WIDTHS),
    }
    return named(forwarded, contents)


@dataclass
class Part:
    """A run of a summary's ideas made ready in a helper process (`part`): their CSV and JSON
    lines, and their spreadsheet rows, pickled, for the XLSX, which needs all of them."""

    csv: str
    json: str
    rows: bytes


def part(forwarded: Forwarded) -> Part:
    """`forwarded`'s ideas (a run of a summary's) as a Part of its files."""
    rows = _rows(forwarded)
    return Part(
        _csv_lines(rows), _json_lines(forwarded), pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)
    )


def joined(
    forwarded: Forwarded, parts: list[Part], pdf_file: bytes, xlsx_file: bytes
) -> dict[str, tuple[str, bytes]]:
    """Every format, as `render` gives them, from a summary without its ideas and the Parts
    of its ideas in order."""
    header = _csv_lines([COLUMNS])
    contents = {
        "md": forwarded.markdown.encode("utf-8"),
        "pdf": pdf_file,
        "csv": (header + "".join(p.csv for p in parts)).encode("utf-8"),
        "json": _json_document(forwarded, [p.json for p in parts]),
        "xlsx": xlsx_file,
    }
    return named(forwarded, contents)


def workbook_of_parts(pickled_rows: list[bytes]) -> bytes:
    """The XLSX of the Parts' rows, in order (in a helper process)."""
    rows = [row for pickled in pickled_rows for row in pickle.loads(pickled)]
    return xlsx.workbook(COLUMNS, rows, WIDTHS)


def named(forwarded: Forwarded, contents: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """{file name: (mimetype, content)} in FORMATS' order, from contents by extension."""
    name = stem(forwarded)
    return {f"{name}.{ext}": (MIMETYPES[ext], contents[ext]) for ext in FORMATS}


def helper_process() -> ProcessPoolExecutor:
    """Two processes to make a forward's files in, beside the server's, so that both cores
    work and residents' answers do not wait for the GIL: one makes the spreadsheets, the
    other the JSON and the PDF, each reading and redacting the ideas itself (reading twice
    costs less than sending 100,000 ideas from one process to another). Started afresh
    ("spawn": a forked copy of a process with threads may inherit a lock one of them held),
    and logging as every mitreden process does, so that a warning of fpdf2's about a missing
    glyph quotes no one's words."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    return ProcessPoolExecutor(
        max_workers=2,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=setup_logging,
        initargs=(level,),
    )


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


def _csv_lines(rows: list[list[object]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _json_lines(forwarded: Forwarded) -> str:
    """One idea per line: readable, and written by json's C encoder, which indenting would
    turn off (20,000 ideas in a tenth of the time). vars(): asdict would copy deeply."""
    return ",\n".join(_ENCODE(vars(idea)) for idea in forwarded.ideas)


def _json_document(forwarded: Forwarded, idea_lines: list[str]) -> bytes:
    summary = {
        "id": forwarded.summary_id,
        "lane": forwarded.lane,
        "field_name": forwarded.field_name,
        "language": forwarded.language,
        "approved_by": forwarded.approved_by,
        "approved_at": forwarded.approved_at,
        "markdown": forwarded.markdown,
    }
    ideas = ",\n".join(lines for lines in idea_lines if lines)
    head = json.dumps(summary, ensure_ascii=False, indent=2)
    return f'{{"summary": {head},\n"ideas": [\n{ideas}\n]}}\n'.encode()
