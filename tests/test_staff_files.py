"""An approved summary as files: every format readable, residents' words intact, none of them
markup or a formula, and the files private and where they belong."""

import csv
import io
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from pypdf import PdfReader

from mitreden.spreadsheets import spreadsheet_safe
from mitreden.staff import pdf
from mitreden.staff.files import (
    COLUMNS,
    FORMATS,
    Forwarded,
    ForwardedIdea,
    helper_process,
    render,
    write,
)

ARABIC = "نريد المزيد من الأشجار في الشوارع"
MARKUP = "<script>alert(1)</script> und **bold** bleiben Text"
FORMULAS = ['=HYPERLINK("http://example.org","klick")', "+1", "@SUM(A1)", "-2", "\x07=1+1"]
MARKDOWN = f"""# Zusammenfassung: Mobilität

## Straßenbäume und Radwege

Größere Übergänge, mehr Grün für Kinder und Älteste; süße Straßen.

### Gruppe 1: Schattige Wege

- 3 Ideen von 3 Menschen
- Bezirke: Neukölln (2), Friedrichshain-Kreuzberg (1)

> {ARABIC}
> {MARKUP}
> {FORMULAS[0]}
"""
# The adhocracy4 / mein.berlin.de idea export's columns, in its order, before ours.
ADHOCRACY4 = [
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
]


def _idea(number: int, text: str, **changes: object) -> ForwardedIdea:
    values: dict = {
        "id": number,
        "text": text,
        "field": "mobilitaet",
        "field_name": "Mobilität",
        "created_at": "2025-05-01T10:00:00+00:00",
        "district": "Neukölln",
        "age_band": "18-29",
        "actor_group": None,
        "language": "de",
        "channel": "web",
        "supporters": number,
        "group": 1,
        "group_label": "Schattige Wege",
        "review": "approved",
    }
    return ForwardedIdea(**{**values, **changes})


IDEAS = [
    _idea(1, "Mehr Straßenbäume für heiße Sommer in Neukölln, damit Ältere Schatten finden"),
    _idea(2, ARABIC, language="ar", group=None, group_label=None, district=None),
    _idea(3, MARKUP, channel=None),
    *[_idea(4 + k, formula, group_label=formula) for k, formula in enumerate(FORMULAS)],
]
SUMMARY = Forwarded(
    summary_id=7,
    lane="mobilitaet",
    field_name="Mobilität",
    language="de",
    markdown=MARKDOWN,
    approved_by="moderatorin",
    approved_at="2025-05-02T12:30:00+00:00",
    ideas=IDEAS,
)


def _file(ext: str, forwarded: Forwarded = SUMMARY) -> tuple[str, bytes]:
    rendered = render(forwarded)
    (name,) = [name for name in rendered if name.endswith(f".{ext}")]
    return rendered[name]


def test_one_file_per_format_named_after_lane_id_and_date() -> None:
    names = list(render(SUMMARY))
    assert names == [f"zusammenfassung-mobilitaet-7-2025-05-02.{ext}" for ext in FORMATS]
    assert _file("pdf")[0] == "application/pdf"
    assert _file("xlsx")[0].endswith("spreadsheetml.sheet")


def test_markdown_is_the_approved_text_as_is() -> None:
    assert _file("md") == ("text/markdown", MARKDOWN.encode("utf-8"))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def test_pdf_has_every_word_umlauts_arabic_and_markup_as_text() -> None:
    _, content = _file("pdf")
    assert content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    latin = [word for line in MARKDOWN.splitlines() if ARABIC not in line for word in _words(line)]
    assert {"Mobilität", "Straßenbäume", "Größere", "Älteste", "süße"} <= set(latin)
    for word in latin:
        assert word in text, word
    # Printed, not interpreted: the characters of markup are on the page.
    assert "<script>alert(1)</script>" in text and "**bold**" in text
    # Headings and quotes were drawn, not shown as their Markdown.
    assert not [line for line in text.splitlines() if line.startswith(("#", ">"))]
    # Arabic is shaped (joined forms, right to left): the letters are there, if not in order.
    arabic = {char for char in text if "\u0600" <= char <= "\u06ff"}
    assert arabic >= set(ARABIC.replace(" ", ""))


def test_a_long_word_and_control_characters_still_make_a_pdf() -> None:
    hostile = Forwarded(
        **{
            **SUMMARY.__dict__,
            "markdown": "# " + "x" * 400 + "\n\n> tab\there\x00\x07 bell\n\n- 👍 ok\n" * 30,
        }
    )
    _, content = _file("pdf", hostile)
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) > 1
    assert "tab here bell" in reader.pages[0].extract_text()


@settings(max_examples=60, deadline=None)
@given(
    line=st.text(st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=300)
    | st.builds(lambda n, w: " ".join([w * n] * 3), st.integers(1, 300), st.sampled_from("iWß"))
)
def test_a_printed_line_is_broken_into_parts_that_fit_keeping_every_letter(line: str) -> None:
    document = FPDF(format="A4")
    document.add_font("DejaVuSans", "", pdf.font_path("DejaVuSans.ttf"))
    document.set_font("DejaVuSans", "", 11)
    width = 60.0
    parts = pdf.wrapped(line, width, {}, document)
    assert all(document.get_string_width(part) <= width + 1e-6 for part in parts)
    assert "".join(parts).replace(" ", "") == line.replace(" ", "")
    if all(document.get_string_width(word) <= width for word in line.split(" ")):
        assert " ".join(parts) == line  # only spaces where a line ends are left out


def _cells(rows: list[list[object]]) -> dict[str, list[object]]:
    header, *body = rows
    return {str(name): [row[k] for row in body] for k, name in enumerate(header)}


def test_csv_has_adhocracy4_columns_first_and_no_formula() -> None:
    mimetype, content = _file("csv")
    assert mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    assert rows[0] == COLUMNS and rows[0][: len(ADHOCRACY4)] == ADHOCRACY4
    assert len(rows) == 1 + len(IDEAS)
    cells = _cells(rows)  # type: ignore[arg-type]
    assert cells["Description"][:3] == [IDEAS[0].text, ARABIC, MARKUP]
    assert cells["Description"][3:] == ["'" + formula for formula in FORMULAS]
    assert cells["Labels"][3:] == ["'" + formula for formula in FORMULAS]
    assert cells["Title"][0] == "Mehr Straßenbäume für heiße Sommer in Neukölln, damit…"
    assert set(cells["Creator"]) == {"pseudonymous"}
    assert cells["Reference No."] == [str(idea.id) for idea in IDEAS]
    assert cells["Positive ratings"] == [str(idea.supporters) for idea in IDEAS]
    assert cells["Category"][0] == "Mobilität" and cells["Status"][0] == "approved"
    assert cells["Group"][:2] == ["1", ""] and cells["Language"][1] == "ar"
    for row in rows[1:]:
        assert not any(cell[:1] in ("=", "+", "-", "@") for cell in row), row


def test_xlsx_has_adhocracy4_columns_first_and_no_formula() -> None:
    _, content = _file("xlsx")
    sheet = load_workbook(io.BytesIO(content)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == COLUMNS and rows[0][: len(ADHOCRACY4)] == ADHOCRACY4
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f", cell.coordinate
    cells = _cells(rows)
    assert cells["Description"][:3] == [IDEAS[0].text, ARABIC, MARKUP]
    # Quoted, and without the control character XML cannot hold.
    assert cells["Description"][3:] == ["'" + f.replace("\x07", "") for f in FORMULAS]
    assert cells["Reference No."] == [idea.id for idea in IDEAS]  # numbers stay numbers
    assert cells["Negative ratings"] == [0] * len(IDEAS)


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=60) | st.sampled_from(["\r", "\x00", "_x0041_", "a_x5F_"]))
def test_xlsx_holds_any_text_as_text(text: str) -> None:
    """Any words, control characters included, open again as the same text: control
    characters dropped (the format cannot hold them), a formula quoted."""
    forwarded = replace(SUMMARY, ideas=[_idea(1, text, group_label=text)])
    content = _file("xlsx", forwarded)[1]
    sheet = load_workbook(io.BytesIO(content)).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    expected = spreadsheet_safe(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text))
    assert expected in as_excel_shows(content) or expected == ""  # an empty cell holds none


def as_excel_shows(content: bytes) -> set[str]:
    """The file's texts as Excel reads them: its escapes (`_x000D_` for a carriage return,
    `_x005F_` for the underscore of a written `_x0041_`) decoded once, left to right, which
    openpyxl does only in part."""
    with zipfile.ZipFile(io.BytesIO(content)) as package:
        strings = ElementTree.fromstring(package.read("xl/sharedStrings.xml"))
    unescape = re.compile(r"_x([0-9A-Fa-f]{4})_")
    return {
        unescape.sub(lambda m: chr(int(m.group(1), 16)), "".join(item.itertext()))
        for item in strings
    }


def test_json_round_trips() -> None:
    mimetype, content = _file("json")
    assert mimetype == "application/json"
    assert "Mobilität".encode() in content  # not \u-escaped
    document = json.loads(content)
    summary = document["summary"]
    assert summary == {
        "id": 7,
        "lane": "mobilitaet",
        "field_name": "Mobilität",
        "language": "de",
        "approved_by": "moderatorin",
        "approved_at": "2025-05-02T12:30:00+00:00",
        "markdown": MARKDOWN,
    }
    assert [ForwardedIdea(**idea) for idea in document["ideas"]] == IDEAS


def test_a_helper_process_makes_the_same_files() -> None:
    with helper_process() as helper:
        made_there = render(SUMMARY, helper)
    assert _shown(made_there) == _shown(render(SUMMARY))


def test_what_the_helper_process_runs_loads_neither_store_nor_nlp() -> None:
    """Its work (`pdf.document`, `xlsx.pickled_workbook`, `logs.setup_logging`) imports only
    what it needs, so the helper is ready soon after the moderator opens a summary."""
    code = (
        "import sys, mitreden.staff.pdf, mitreden.staff.xlsx, mitreden.logs\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlite_utils', 'sklearn', 'spacy', 'torch') or m.startswith(("
        "'mitreden.store', 'mitreden.nlp', 'mitreden.flows', 'mitreden.reports'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def _shown(rendered: dict[str, tuple[str, bytes]]) -> dict[str, tuple[str, object]]:
    """What a reader finds in each file: a PDF and an XLSX also hold when they were made."""
    shown: dict[str, tuple[str, object]] = {}
    for name, (mimetype, content) in rendered.items():
        if name.endswith(".pdf"):
            shown[name] = mimetype, [p.extract_text() for p in PdfReader(io.BytesIO(content)).pages]
        elif name.endswith(".xlsx"):
            shown[name] = mimetype, list(load_workbook(io.BytesIO(content)).active.values)
        else:
            shown[name] = mimetype, content
    return shown


def test_write_makes_private_files_atomically_in_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "forwarded"
    paths = write(render(SUMMARY), directory)
    assert [path.name for path in paths] == list(render(SUMMARY))
    assert sorted(directory.iterdir()) == sorted(paths)  # no temporary file left behind
    for path in paths:
        assert path.parent == directory
        assert path.stat().st_mode & 0o777 == 0o600
    assert (directory / paths[0].name).read_text(encoding="utf-8") == MARKDOWN
    assert write(render(SUMMARY), directory) == paths  # written again: replaced, not duplicated
    assert len(list(directory.iterdir())) == len(FORMATS)


def test_a_lane_is_never_a_path(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "forwarded"
    for lane in ("../../etc", "/etc/passwd", "..", "Ämter\\und/Bürger", ""):
        hostile = Forwarded(**{**SUMMARY.__dict__, "lane": lane, "approved_at": "x/../y"})
        paths = write(render(hostile), directory)
        for path in paths:
            assert path.parent == directory
            assert re.fullmatch(r"[a-z0-9-]+\.[a-z]+", path.name), path.name
    names = {path.name.rsplit(".", 1)[0] for path in directory.iterdir()}
    assert names == {
        "zusammenfassung-etc-7",
        "zusammenfassung-etc-passwd-7",
        "zusammenfassung-feld-7",
        "zusammenfassung-amter-und-burger-7",
    }
    assert not (tmp_path / "etc").exists()
