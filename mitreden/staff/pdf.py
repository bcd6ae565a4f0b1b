"""An approved summary's Markdown as a PDF to print: headings, paragraphs, "- " items and
"> " quotes, in the DejaVu fonts shipped with mitreden (umlauts, Cyrillic, and Arabic shaped
right to left). Nothing else is read as markup, so residents' words are printed exactly as
they wrote them.

Its own module, importing fpdf2 and nothing of mitreden's, so that the process that makes
files beside the dashboard (`files.helper_process`) has little to load.
"""

import unicodedata
from importlib.resources import files as package_files
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

FONT = "DejaVuSans"
# The bold font size of a Markdown heading by its level.
HEADINGS = {"# ": 18, "## ": 15, "### ": 13}
BODY_SIZE = 11
INDENT = 8  # mm, for list items and quotes


def font_path(name: str) -> Path:
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


def wrapped(line: str, width: float, widths: dict[str, float], pdf: FPDF) -> list[str]:
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


def document(markdown: str, title: str, language: str) -> bytes:
    """`markdown` drawn simply; `title` and `language` are the document's own (what a
    screen reader announces)."""
    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font(FONT, "", font_path("DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", font_path("DejaVuSans-Bold.ttf"))
    pdf.set_title(title)
    pdf.set_lang(language.partition("-")[0])
    pdf.add_page()
    widths: dict[tuple[bool, int], dict[str, float]] = {}  # by font: each word's width
    for raw in markdown.splitlines():
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
            for part in wrapped(line, width, widths.setdefault((bold, size), {}), pdf):
                pdf.set_x(pdf.l_margin + indent)
                pdf.cell(
                    width, size * 0.5, part, markdown=False, new_x=XPos.LMARGIN, new_y=YPos.NEXT
                )
        if grey:
            pdf.ln(1.5)  # quotes are residents' ideas: keep each one apart
    return bytes(pdf.output())
