"""Replies in a language written right to left (Arabic) say so, and each platform is told in
its own way: Telegram's plain text line by line, Matrix's HTML with dir="rtl", the web page
with its dir attribute (tests/test_languages.py goes through whole conversations)."""

from hypothesis import given
from hypothesis import strategies as st

from mitreden.bot.matrix import render
from mitreden.bot.telegram import MAX_TEXT, RLM, TelegramChannel
from mitreden.flows.messages import Choice, Outbound, dump_outbound, load_outbound

# Lines that begin with a command, a number and Latin letters: Telegram would set them left
# to right by their first letter.
ARABIC = "اكتب /start للبدء.\n1. فكرة عن Gemeinsam Digital: Berlin"


def test_telegram_marks_each_line_of_a_right_to_left_reply() -> None:
    [text] = TelegramChannel._texts(Outbound(ARABIC, rtl=True))
    assert text.split("\n") == [RLM + line for line in ARABIC.split("\n")]
    assert TelegramChannel._texts(Outbound(ARABIC)) == [ARABIC]


def test_telegram_pieces_of_a_long_arabic_reply_fit_with_their_marks() -> None:
    text = "\n".join(["سطر قصير عن الحديقة"] * 400)
    pieces = TelegramChannel._texts(Outbound(text, rtl=True))
    assert len(pieces) > 1 and all(len(piece) <= MAX_TEXT for piece in pieces)
    assert all(line.startswith(RLM) for piece in pieces for line in piece.split("\n"))


@given(st.text(min_size=1))
def test_marks_only_add_marks(text: str) -> None:
    pieces = TelegramChannel._texts(Outbound(text, rtl=True))
    assert all(len(piece) <= MAX_TEXT for piece in pieces)
    assert "".join(pieces).replace(RLM, "").split() == text.replace(RLM, "").split()


def test_matrix_html_of_a_right_to_left_reply_is_set_from_the_right() -> None:
    event = render(Outbound(ARABIC, (Choice("yes", "نعم"),), rtl=True))
    assert event["formatted_body"].startswith('<div dir="rtl">')
    assert event["formatted_body"].endswith("</ol></div>")
    assert "dir=" not in render(Outbound("Hallo"))["formatted_body"]


def test_the_outbox_keeps_the_direction() -> None:
    assert load_outbound(dump_outbound(Outbound(ARABIC, rtl=True))).rtl is True
    assert load_outbound(dump_outbound(Outbound("Hallo"))).rtl is False
    assert '"rtl"' not in dump_outbound(Outbound("Hallo"))  # older outboxes read the same
