"""The redactor (nlp/redact.py, nlp/addresses.py, nlp/names.py) on its own examples: each kind
found with the agreed span, the things it must leave alone, and properties on random text.

The shared test set (testing/data/redaction.yaml) is measured by tests/test_redaction_set.py and
bench/redaction_bench.py; these examples are separate from it, so that rules are not tuned to
one set of sentences only.
"""

import re
import subprocess
import sys
import unicodedata
from importlib.resources import files
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mitreden.nlp.redact import (
    FORMAT_PLANES,
    KINDS,
    SOFT_HYPHEN,
    Finding,
    apply,
    find,
    iban_valid,
    redact,
    strip,
    visible,
)

LABELS = {kind: f"[{kind}]" for kind in KINDS}


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail, also written around the spam filters of the last century
        ("Bitte an m.schulze@web.de schreiben.", [("email", "m.schulze@web.de")]),
        ("Schreibt mir: lisa [at] kiez [dot] org", [("email", "lisa [at] kiez [dot] org")]),
        ("Info unter kontakt(at)kiez-moabit.de", [("email", "kontakt(at)kiez-moabit.de")]),
        ("Mail: kiezrat at posteo dot de", [("email", "kiezrat at posteo dot de")]),
        ("oder peter.m at gmx.de fragen", [("email", "peter.m at gmx.de")]),
        # phone: German and international, as written
        ("Handy: 0160-9876543", [("phone", "0160-9876543")]),
        ("Anruf unter +49 (0)30 9012 3456 bitte", [("phone", "+49 (0)30 9012 3456")]),
        ("or ring 0049 176 5556667 after six", [("phone", "0049 176 5556667")]),
        # IBAN, with inner spaces, not running into the next word
        ("an DE89 3704 0044 0532 0130 00 mit Betreff", [("iban", "DE89 3704 0044 0532 0130 00")]),
        ("iban: de89 3704 0044 0532 0130 00", [("iban", "de89 3704 0044 0532 0130 00")]),
        # web addresses with and without scheme, without the full stop after them
        ("Fotos auf instagram.com/kiezgarten.", [("url", "instagram.com/kiezgarten")]),
        ("Kanal: t.me/kiezrat_nk", [("url", "t.me/kiezrat_nk")]),
        ("Die Seite (berlin.de/ba-pankow) ist alt", [("url", "berlin.de/ba-pankow")]),
        ("siehe https://example.org/a?b=c, danke", [("url", "https://example.org/a?b=c")]),
        # addresses: street and number, and the postcode and city right after
        ("Adresse: Hermannstr. 48, 12049 Berlin", [("address", "Hermannstr. 48, 12049 Berlin")]),
        ("Wir wohnen in der Frankfurter Allee 35-37.", [("address", "Frankfurter Allee 35-37")]),
        ("In der Kastanienallee 12a wohnen viele", [("address", "Kastanienallee 12a")]),
        ("Wohne Str. der Pariser Kommune 12.", [("address", "Str. der Pariser Kommune 12")]),
        ("Treffpunkt Alt-Moabit 88 um 5", [("address", "Alt-Moabit 88")]),
        ("I live at 22 Oxford Road now", [("address", "22 Oxford Road")]),
        ("My address is 221B Baker Street.", [("address", "221B Baker Street")]),
        ("Wir wohnen Weserstr.17, Hinterhaus.", [("address", "Weserstr.17")]),
        ("Die Adresse ist Hauptstraße Nr. 12.", [("address", "Hauptstraße Nr. 12")]),
        # licence plates
        ("Autos TF-XY 123 und K AB 1234", [("plate", "TF-XY 123"), ("plate", "K AB 1234")]),
        ("das auto b-ks 2231 steht da", [("plate", "b-ks 2231")]),
        # dates of birth: the date only, and only with a birth word
        ("geb. 03.04.1985", [("birthdate", "03.04.1985")]),
        ("Ich bin am 5.5.1960 geboren.", [("birthdate", "5.5.1960")]),
        ("Born 12/07/1979 in Leeds.", [("birthdate", "12/07/1979")]),
        ("My birthday is 7 August 1992.", [("birthdate", "7 August 1992")]),
        # names: the name tokens only, in context
        ("Herr Nguyen und Frau Tran vom Jugendamt", [("name", "Nguyen"), ("name", "Tran")]),
        ("Fr. Meier und Hr. Yilmaz vom Amt", [("name", "Meier"), ("name", "Yilmaz")]),
        ("Prof. Dr. Schulz hat es geschrieben.", [("name", "Schulz")]),
        ("Anna Schulz geb. Müller, 86 Jahre", [("name", "Anna Schulz"), ("name", "Müller")]),
        ("Ich heiße Małgorzata Wiśniewska.", [("name", "Małgorzata Wiśniewska")]),
        ("hallo, ich heiße ahmed", [("name", "ahmed")]),
        ("Our neighbour Mrs. Okafor waters the trees.", [("name", "Okafor")]),
        ("Unsere Nachbarin Frau Schwarz gießt die Bäume.", [("name", "Schwarz")]),
        ("Mein Nachbar Herr Dr. Karl-Heinz Ober klagt.", [("name", "Karl-Heinz Ober")]),
        ("Unser Hausmeister Dariusz Nowicki fegt.", [("name", "Dariusz Nowicki")]),
        ("Ansprechpartnerin: Claudia Weber, sonst keiner", [("name", "Claudia Weber")]),
        ("Ich bin der Klaus vom Kleingartenverein.", [("name", "Klaus")]),
        ("Thomas Müller und Anna Nowak", [("name", "Thomas Müller"), ("name", "Anna Nowak")]),
        ("Grüße aus Neukölln, Fatma", [("name", "Fatma")]),
        ("Danke!\nSabine Meier", [("name", "Sabine Meier")]),
    ],
)
def test_each_kind_is_found_with_its_span(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # nouns that are also surnames; German capitalises every noun
        "Der Koch der Kantine und der Fischer am Müggelsee sind sich einig.",
        "Der Bäcker im Wald, Sommer am See, Berg und Tal.",
        "Jede Frau Anfang 40 kennt das Problem.",
        "Im August Sommerfest, im Juli Baustelle und im Mai Demo.",
        "Das Schreiben vom Bezirksamt kam erst nach drei Wochen, seit Mai beim Landesamt.",
        "Ich bin Rentnerin und wohne in Marzahn.",
        "Danke Berlin, danke BVG!",
        # public figures, places named after people, first names alone
        "Angela Merkel hat hier mal eingekauft, Olaf Scholz auch.",
        "Frau Giffey und Herr Wegner sollen sich das ansehen.",
        "Die Sophie-Scholl-Schule und die Anna Seghers Schule am Käthe Kollwitz Platz.",
        "In Berlin leben viele Menschen, Peter ist einer davon.",
        # streets without numbers, parks, districts, lines
        "Wir brauchen mehr Bäume in der Hauptstraße und im Görlitzer Park.",
        "Wir treffen uns Unter den Linden vor der Humboldt-Universität.",
        "Die Linie M10 und der Bus 100 sind immer voll, 2023 war es schlimmer.",
        # numbers that are not personal data
        "Ruf die 115 an, die Bürgerhotline hilft, Preise ab 2,90 Euro.",
        "Treffen am Alexanderplatz 15 Uhr, PLZ 10115, Der Platz 2 ging an uns.",
        "Auf dem Bahnhof 3 Aufzüge kaputt, der Spielplatz Nr. 7 ist zu.",
        "Am 03.04.2024 ist Sitzung, am 3. Oktober 1990 war die Einheit.",
        "Das kostet 3.50€ pro Person, etwa 1.200 Leute kamen.",
        "Die Tram M4 fährt alle 10 Minuten, die U8 alle 5, die B 96 ist voll.",
        # abbreviations that look like domains
        "z.B. fehlen Untertitel u.a. bei Videos, Nr.3 auch, d.h. überall.",
        "Bestellnummer DE12345678901234567 bleibt",
    ],
)
def test_what_is_not_personal_data_stays(text: str) -> None:
    assert found(text) == []


def test_overlaps_keep_the_longer_finding() -> None:
    text = "Schreib an anna.berlin@kiez.de"  # the domain alone would be a URL
    assert found(text) == [("email", "anna.berlin@kiez.de")]


def test_apply_puts_the_labels_and_strip_removes_the_spans() -> None:
    text = "Herr Müller wohnt in der Weserstraße 183, Tel. 030 4521 8876."
    findings = find(text)
    assert [f.kind for f in findings] == ["name", "address", "phone"]
    assert apply(text, findings, LABELS) == "Herr [name] wohnt in der [address], Tel. [phone]."
    assert strip(text, findings) == "Herr wohnt in der , Tel. ."
    assert redact(text, LABELS) == apply(text, findings, LABELS)


def test_redact_sees_through_invisible_characters() -> None:
    assert redact("Mail an anna\u200b@beispiel.de", LABELS) == "Mail an [email]"


def test_format_characters_are_only_in_the_planes_searched() -> None:
    """`visible` looks for format characters where this Python's Unicode has them: planes 4
    to 13 and 15 to 16 are skipped to build its pattern quickly."""
    searched = set().union(*FORMAT_PLANES)
    outside = [
        code
        for code in range(sys.maxunicode + 1)
        if code not in searched and unicodedata.category(chr(code)) == "Cf"
    ]
    assert outside == []
    latin1 = [code for code in range(256) if unicodedata.category(chr(code)) == "Cf"]
    assert latin1 == [ord(SOFT_HYPHEN)]
    assert visible("Stra\u00adße") == "Straße"
    assert visible("a\u200bb\U000e0041c\u202e") == "abc"


def test_iban_check_digits() -> None:
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_valid("DE88 3704 0044 0532 0130 00")


def test_the_word_lists_are_read_only_when_first_needed() -> None:
    code = (
        "import mitreden.cli, mitreden.nlp.redact as r, mitreden.nlp.lexicon as l;"
        "assert l.words.cache_info().currsize == 0 and l.table.cache_info().currsize == 0;"
        "r.find('Herr Müller');"
        "assert l.words.cache_info().currsize > 0"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_data_file_names_its_source_and_licence() -> None:
    folder = files("mitreden.data") / "redaction"
    names = sorted(p.name for p in folder.iterdir())
    assert {"first_names.txt", "surnames.txt", "berlin_streets.txt", "plate_codes.txt"} <= set(
        names
    )
    for name in names:
        header = [
            line for line in (folder / name).read_text("utf-8").splitlines() if line.startswith("#")
        ]
        text = "\n".join(header)
        assert "Source" in text and "Licence" in text and "Date" in text, name


# ------------------------------------------------------------------ properties on random text
LETTERS = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZ"
FILLER = st.text(alphabet=st.sampled_from(list(LETTERS + " .,;:!?-")), max_size=60)
ANY_TEXT = st.text(max_size=200)
EMAILS = st.builds(
    "{}.{}@{}.de".format,
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8),
)
AREA, MOBILE = st.sampled_from(["30", "40", "89"]), st.sampled_from(["151", "160", "176"])
PHONES = st.one_of(
    st.builds("0{} {}".format, AREA, st.integers(2 * 10**6, 10**8 - 1)),
    st.builds("0{} {}".format, MOBILE, st.integers(10**7, 10**8 - 1)),
)


def well_formed(text: str, findings: list[Finding]) -> bool:
    inside = all(0 <= f.start < f.end <= len(text) and f.kind in KINDS for f in findings)
    ordered = all(a.end <= b.start for a, b in pairwise(findings))
    return inside and ordered


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_find_never_fails_and_its_spans_are_in_order(text: str) -> None:
    assert well_formed(text, find(text))


@settings(max_examples=200, deadline=None)
@given(FILLER, EMAILS, FILLER, PHONES, FILLER)
def test_no_trace_of_a_redacted_email_or_phone_is_left(
    before: str, email: str, middle: str, phone: str, after: str
) -> None:
    text = f"{before} {email} {middle} {phone} {after}"
    findings = find(text)
    assert well_formed(text, findings)
    shown = apply(text, findings, LABELS)
    assert email not in shown and "@" not in shown
    assert not re.search(r"\d", shown), "the filler has no digits, so any digit is the phone's"
