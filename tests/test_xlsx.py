"""The spreadsheet writer, read back as a spreadsheet program reads it (openpyxl)."""

import io
import re
import zipfile
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from mitreden.staff.xlsx import MAX_CELL, column_letters, workbook


def test_columns_are_named_as_spreadsheets_name_them() -> None:
    assert [column_letters(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA",
    ]  # fmt: skip


def test_a_sheet_opens_with_its_cells_header_widths_and_frozen_first_row() -> None:
    rows = [[1, "eins", "", 0], [2, "zwei", "Mitte", -7], [3, "eins", "", 12345678901234]]
    content = workbook(["Nr.", "Text", "Bezirk", "Zahl"], rows, widths={1: 80})
    sheet = load_workbook(io.BytesIO(content)).active
    assert [[cell.value for cell in row] for row in sheet.iter_rows()] == [
        ["Nr.", "Text", "Bezirk", "Zahl"],
        [1, "eins", None, 0],
        [2, "zwei", "Mitte", -7],
        [3, "eins", None, 12345678901234],
    ]
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.b and not sheet["A2"].font.b
    assert sheet.column_dimensions["B"].width == 80
    with zipfile.ZipFile(io.BytesIO(content)) as package:
        assert package.testzip() is None
        strings = ElementTree.fromstring(package.read("xl/sharedStrings.xml"))
    assert len(strings) == 7  # four headers, eins, zwei, Mitte: each string kept once


def test_a_sheet_of_only_a_header_opens() -> None:
    sheet = load_workbook(io.BytesIO(workbook(["a"], []))).active
    assert [[cell.value for cell in row] for row in sheet.iter_rows()] == [["a"]]


def test_many_rows_are_written_in_order() -> None:
    rows = [[n, f"Idee {n}"] for n in range(5_001)]  # more than two chunks
    sheet = load_workbook(io.BytesIO(workbook(["n", "text"], rows)), read_only=True).active
    read = [list(row) for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert read == rows


def test_only_text_and_whole_numbers_are_cells() -> None:
    for value in (1.5, True, None, b"x", ["x"]):
        with pytest.raises(TypeError):
            workbook(["a"], [[value]])


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError):
        workbook(["a", "b"], [["only one"]])


def test_a_text_longer_than_a_cell_holds_is_cut() -> None:
    sheet = load_workbook(io.BytesIO(workbook(["a"], [["x" * (MAX_CELL + 10)]]))).active
    assert sheet["A2"].value == "x" * MAX_CELL


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1, max_size=40) | st.sampled_from(["\r", "_x0041_", "\x00", "\ufffe"]))
def test_markup_formulas_and_escapes_are_text(value: str) -> None:
    hostile = [f"={value}", f"<b>{value}</b>", f"&amp;{value}", f"]]>{value}", value]
    content = workbook(["a"], [[h] for h in hostile])
    sheet = load_workbook(io.BytesIO(content)).active
    assert [cell.data_type for cell in sheet["A"][1:]] == ["s"] * len(hostile)
    unwritable = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
    assert as_excel_reads(content)[1:] == [unwritable.sub("", h) for h in hostile]


def as_excel_reads(content: bytes) -> list[str]:
    """Column A's cells as Excel shows them: each `_xHHHH_` in its shared string is the
    character it names, read once from left to right (openpyxl decodes only some of them).
    Read through the cells' indexes, since equal strings (a value equal to the header) are
    kept once."""
    with zipfile.ZipFile(io.BytesIO(content)) as package:
        strings = ElementTree.fromstring(package.read("xl/sharedStrings.xml"))
        sheet = ElementTree.fromstring(package.read("xl/worksheets/sheet1.xml"))
    escape = re.compile(r"_x([0-9A-Fa-f]{4})_")
    shown = [escape.sub(lambda m: chr(int(m.group(1), 16)), "".join(s.itertext())) for s in strings]
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    return [shown[int(cell.findtext(f"{main}v"))] for cell in sheet.iter(f"{main}c")]
