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
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from importlib.resources import files as package_files
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from mitreden.reports import spreadsheet_safe
from mitreden.staff import xlsx

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
TITLE_WORDS = 8
TITLE_LENGTH = 120  # meinberlin's Idea.name max_length
FONT = "DejaVuSans"
# The bold font size of a Markdown heading by its level.
HEADINGS = {"# ": 18, "## ": 15, "### ": 13}
BODY_SIZE = 11
INDENT = 8  # mm, for list items and quotes
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
    """Every format as {file name: (mimetype, content)}, ready to write or attach."""
    rows = _rows(forwarded)
    contents = {
        "md": forwarded.markdown.encode("utf-8"),
        "pdf": _pdf(forwarded),
        "csv": _csv(rows),
        "json": _json(forwarded),
        "xlsx": _xlsx(rows),
    }
    name = stem(forwarded)
    return {f"{name}.{ext}": (MIMETYPES[ext], contents[ext]) for ext in FORMATS}


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
    """One idea in COLUMNS' order; what mitreden has no counterpart for stays empty or 0."""
    return [
        idea.id,
        "",
        _title(idea.text),
        idea.text,
        idea.supporters,
        0,
        idea.field_name,
        idea.group_label or "",
        0,
        idea.review,
        "",
        "",
        CREATOR,
        idea.created_at,
        idea.field,
        "" if idea.group is None else idea.group,
        idea.district or "",
        idea.age_band or "",
        idea.actor_group or "",
        idea.language,
        idea.channel or "",
    ]


def _rows(forwarded: Forwarded) -> list[list[object]]:
    """Every idea's row for the spreadsheets, no cell a formula."""
    return [[spreadsheet_safe(value) for value in _row(idea)] for idea in forwarded.ideas]


def _csv(rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _xlsx(rows: list[list[object]]) -> bytes:
    """The rows with the title and the text wide enough to read."""
    return xlsx.workbook(
        COLUMNS, rows, widths={COLUMNS.index("Title"): 40, COLUMNS.index("Description"): 80}
    )


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
    ideas = ",\n".join(json.dumps(vars(idea), ensure_ascii=False) for idea in forwarded.ideas)
    head = json.dumps(summary, ensure_ascii=False, indent=2)
    return f'{{"summary": {head},\n"ideas": [\n{ideas}\n]}}\n'.encode()


def _font_path(name: str) -> Path:
    return Path(str(package_files("mitreden.data") / "fonts" / name))


def _complex(text: str) -> bool:
    """Whether a line holds letters that must be shaped to be read (Hebrew, Arabic, the scripts
    of India and South-East Asia, Arabic presentation forms). Shaping every line would make a
    summary of 20,000 ideas twice as slow to print."""
    return any(0x0590 <= ord(c) <= 0x1CFF or 0xFB1D <= ord(c) <= 0xFEFF for c in text)


def _right_to_left(text: str) -> bool:
    """Whether a line's first strongly directed character is Arabic or Hebrew."""
    for char in text:
        direction = unicodedata.bidirectional(char)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


def _printable(line: str) -> str:
    """A line without control characters, which a PDF page cannot show (a tab is a space)."""
    return "".join(
        " " if char == "\t" else char
        for char in line
        if char == "\t" or unicodedata.category(char) != "Cc"
    )


def _wrapped(line: str, width: float, widths: dict[str, float], pdf: FPDF) -> list[str]:
    """A line broken at spaces into parts no wider than `width` in the PDF's current font; a
    word wider than that is broken between letters. fpdf2's multi_cell measures its line
    again for every letter it adds, which takes seconds for the summary of a large field;
    this measures each distinct word once (`widths` keeps them for the font)."""

    def measure(text: str) -> float:
        if text not in widths:
            widths[text] = pdf.get_string_width(text)
        return widths[text]

    def letters_that_fit(word: str) -> int:
        used = 0.0
        for i, letter in enumerate(word):
            used += measure(letter)
            if used > width:
                return max(i, 1)
        return len(word)

    space = measure(" ")
    parts: list[str] = []
    words: list[str] = []
    used = 0.0
    for word in line.split(" "):
        wide = measure(word)
        if words and used + space + wide > width:
            parts.append(" ".join(words))
            words, used = [], 0.0
        while wide > width:  # longer than a line: as many letters as fit, then the rest
            cut = letters_that_fit(word)
            parts.append(word[:cut])
            word = word[cut:]
            wide = measure(word)
        used += (space if words else 0.0) + wide
        words.append(word)
    parts.append(" ".join(words))
    return parts


def _pdf(forwarded: Forwarded) -> bytes:
    """The Markdown drawn simply: headings, paragraphs, "- " items and "> " quotes. Nothing
    else is read as markup, so residents' words are printed exactly as they wrote them."""
    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font(FONT, "", _font_path("DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", _font_path("DejaVuSans-Bold.ttf"))
    pdf.set_title(forwarded.field_name)
    pdf.set_lang(forwarded.language.partition("-")[0])
    pdf.add_page()
    widths: dict[tuple[bool, int], dict[str, float]] = {}  # by font: each word's width
    for raw in forwarded.markdown.splitlines():
        line = _printable(raw).rstrip()
        size, bold, indent, grey = BODY_SIZE, False, 0, False
        heading = next((prefix for prefix in HEADINGS if line.startswith(prefix)), None)
        if heading:
            line, size, bold = line[len(heading) :], HEADINGS[heading], True
            pdf.ln(size * 0.2)
        elif line.startswith("- "):
            line, indent = "• " + line[2:], INDENT
        elif line.startswith("> "):
            line, indent, grey = line[2:], INDENT, True
        if not line.strip():
            pdf.ln(BODY_SIZE * 0.35)
            continue
        pdf.set_font(FONT, "B" if bold else "", size)
        pdf.set_text_color(90 if grey else 0)
        if _complex(line):
            # Arabic letters join and run right to left only through HarfBuzz's shaping,
            # which fpdf2's own line breaking knows.
            pdf.set_text_shaping(True)
            pdf.set_x(pdf.l_margin + indent)
            pdf.multi_cell(
                0,
                size * 0.5,
                line,
                align=Align.R if _right_to_left(line) else Align.L,
                markdown=False,
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
            pdf.set_text_shaping(False)
        else:
            width = pdf.epw - indent
            for part in _wrapped(line, width, widths.setdefault((bold, size), {}), pdf):
                pdf.set_x(pdf.l_margin + indent)
                pdf.cell(
                    width, size * 0.5, part, markdown=False, new_x=XPos.LMARGIN, new_y=YPos.NEXT
                )
        if grey:
            pdf.ln(1.5)  # quotes are residents' ideas: keep each one apart
    return bytes(pdf.output())
