"""The Telegram adapter's own rules; conversations over the Bot API are in test_telegram_chat."""

from mitreden.bot.telegram import MENU_LANGUAGES, ButtonValues, split_text
from mitreden.flows import Choice, Outbound
from mitreden.flows.definition import load_flow


def test_long_replies_are_split_below_telegrams_limit_at_a_line() -> None:
    text = "\n".join(f"Zeile {n}: " + "x" * 90 for n in range(100))
    pieces = split_text(text)
    assert len(pieces) == 3 and all(len(p) <= 4096 for p in pieces)
    assert "\n".join(pieces) == text
    assert split_text("kurz") == ["kurz"]
    assert split_text("y" * 5000) == ["y" * 4096, "y" * 904]


def test_choices_become_one_button_a_row_with_their_value() -> None:
    buttons = ButtonValues()
    markup = buttons.keyboard(Outbound("Frage", (Choice("yes", "Ja"), Choice("no", "Nein"))))
    rows = markup.inline_keyboard
    assert [(r[0].text, r[0].callback_data) for r in rows] == [("Ja", "yes"), ("Nein", "no")]
    assert buttons.keyboard(Outbound("ohne Auswahl")) is None


def test_a_value_longer_than_telegram_carries_travels_as_a_hash() -> None:
    buttons = ButtonValues()
    long_id = "Foment de la cultura al Coll, Vallcarca i els Penitents i la Salut - ÄÖÜ"
    markup = buttons.keyboard(Outbound("Frage", (Choice(long_id, "Kultur"),)))
    data = markup.inline_keyboard[0][0].callback_data
    assert len(data.encode("utf-8")) <= 64 and data != long_id
    assert buttons.value(data) == long_id
    assert ButtonValues().value(data) == data, "after a restart the press reads as stale"


def test_every_menu_command_is_one_the_flow_understands(catalogue) -> None:
    flow = load_flow()
    for language in MENU_LANGUAGES:
        menu = catalogue.entries(language, "command_menu")
        assert set(menu) <= set(flow.commands), language
        assert all(name.islower() and len(name) <= 32 for name in menu)
