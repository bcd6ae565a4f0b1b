"""Einfache Sprache, measured: Amstad's reading ease (nlp/readability.py) of every message in
the de-simple catalogue stays above a bar. The README gives the bar and the figures."""

import statistics

from hypothesis import given
from hypothesis import strategies as st

from mitreden.flows.catalogue import Catalogue, is_plural
from mitreden.nlp.readability import reading_ease, sentences, syllables, words

# Amstad's scale: 60-70 reads as "mittel", 70-80 "mittelleicht", 80-90 "leicht".
EASE_BAR = 60
# The formula needs sentences: a button label of one long word ("Zusammenfassung") scores
# below zero. Short texts are held by test_catalogue's rules (no abbreviation, no passive).
MIN_WORDS = 8
NOT_PROSE = ("words_", "redacted_", "lang_", "choose_language")


def ease_by_message(catalogue: Catalogue, language: str) -> dict[str, float]:
    """Each message of at least MIN_WORDS words (each plural form its own), by key."""
    scores = {}
    for key, entry in catalogue.messages[language].items():
        if key.startswith(NOT_PROSE):
            continue
        forms = entry.items() if is_plural(entry) else [("", entry)]
        for form, text in forms:
            if isinstance(text, str) and len(words(text)) >= MIN_WORDS:
                scores[f"{key}.{form}".rstrip(".")] = reading_ease(text)
    return scores


def test_every_einfache_sprache_message_reads_easily(catalogue: Catalogue) -> None:
    simple, plain = ease_by_message(catalogue, "de-simple"), ease_by_message(catalogue, "de")
    hard = {key: round(score, 1) for key, score in simple.items() if score < EASE_BAR}
    assert hard == {}, f"below {EASE_BAR}: {hard}"
    assert len(simple) > 80, "the bar holds only if it measures most of the catalogue"
    # The figures the README gives, beside the de catalogue's (pytest -s shows them).
    print(
        f"\nreading ease (Amstad), {len(simple)} messages: de-simple mean "
        f"{statistics.mean(simple.values()):.1f}, lowest {min(simple.values()):.1f}; "
        f"de mean {statistics.mean(plain.values()):.1f}, lowest {min(plain.values()):.1f}"
    )
    assert statistics.mean(simple.values()) > statistics.mean(plain.values()) + 5


def test_syllables_are_vowel_groups() -> None:
    assert [syllables(w) for w in ("Idee", "Eigentum", "Straße", "Bürgeramt", "Rhythmus")] == [
        2,
        3,
        2,
        3,
        2,
    ]
    assert syllables("BVG") == 1  # no vowel still reads as a syllable


def test_placeholders_and_commands_are_not_read() -> None:
    assert words("Schreib /start oder {idea} - 3 Ideen!") == ["Schreib", "oder", "Ideen"]
    assert len(sentences("Hallo! Wie geht's?\nGut: danke.")) == 4


def test_known_texts_score_as_amstad_scores_them() -> None:
    # 6 words in 1 sentence, 7 syllables: 180 - 6 - 58.5 * 7 / 6
    assert reading_ease("Ich will mehr Bänke im Park.") == 105.75
    # 2 words in 1 sentence, 12 + 3 syllables: 180 - 2 - 58.5 * 15 / 2
    assert reading_ease("Verwaltungsdigitalisierungsstrategie beschlossen.") == -260.75
    assert reading_ease("{idea} /start 123") is None


@given(st.text())
def test_any_text_gets_a_score_or_none(text: str) -> None:
    score = reading_ease(text)
    assert (score is None) == (not words(text))
