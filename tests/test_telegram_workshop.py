"""Workshop mode in a Telegram group: the real python-telegram-bot Application, our adapter and
engine, and the Bot API test server playing Telegram, a youth worker and three young people."""

import time
from typing import Any

from telegram_server import TelegramTestServer
from test_telegram_chat import Person

from mitreden.bot.telegram import TelegramChannel

IDEAS = {
    "mia": "Mehr WLAN und Steckdosen im Jugendclub, damit wir dort lernen können",
    "ali": "Die Busse nach Marzahn sollen abends öfter fahren",
    "jo": "Eine App, in der man kaputte Spielplätze melden kann",
}


class Group:
    """The group chat as the test sees it: who is in it, and the bot's messages there."""

    def __init__(self, server: TelegramTestServer) -> None:
        self.server = server
        self.people = {name: server.user(name.title()) for name in ("leader", "admin", *IDEAS)}
        self.chat = server.group_chat(
            "Jugendclub Zukunft",
            members=[u for n, u in self.people.items() if n != "admin"],
            admins=[self.people["admin"]],
        )
        self.seen = 0

    def says(self, name: str, text: str) -> None:
        self.server.send_text(self.chat, self.people[name], text)

    def presses(self, name: str, message: dict[str, Any], value: str) -> None:
        self.server.press(self.chat, self.people[name], message, value)

    def bot_is_added_by(self, name: str) -> None:
        self._bot_status_changed_by(name, "left", "member")

    def bot_is_removed_by(self, name: str) -> None:
        self._bot_status_changed_by(name, "member", "left")

    def _bot_status_changed_by(self, name: str, old: str, new: str) -> None:
        bot = self.server.bot
        self.server.deliver(
            {
                "my_chat_member": {
                    "chat": self.chat,
                    "from": self.people[name],
                    "date": int(time.time()),
                    "old_chat_member": {"status": old, "user": bot},
                    "new_chat_member": {"status": new, "user": bot},
                }
            }
        )

    async def expect(self, text: str) -> dict[str, Any]:
        """The first new bot message (or poll) containing `text`."""

        def found() -> dict[str, Any] | None:
            new = self.server.sent(self.chat)[self.seen :]
            return next((m for m in new if text in _shown(m)), None)

        await self.server.wait_until(found, timeout=20, what=f"a group message with {text!r}")
        message = found()
        self.seen = self.server.sent(self.chat).index(message) + 1
        return message


def _shown(message: dict[str, Any]) -> str:
    if "poll" in message:
        return message["poll"]["question"]
    return message.get("text", "")


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    return [row[0] for row in message.get("reply_markup", {}).get("inline_keyboard", [])]


async def test_a_workshop_with_three_members_a_poll_and_the_summary(channel, server) -> None:
    store = channel.engine.store
    group = Group(server)
    group.bot_is_added_by("leader")
    await group.expect("/workshop")

    group.says("mia", "/workshop Wir übernehmen")
    await group.expect("Das darf nur")
    group.says("leader", "/workshop Unser Kiez digital")
    started = await group.expect("„Unser Kiez digital“ läuft")
    [link] = buttons(started)
    assert link["url"].startswith("https://t.me/mitreden_test_bot?start=ws-")

    # Mia: the privacy notice once, in the group, and her own button press.
    group.says("mia", f"/idee {IDEAS['mia']}")
    prompt = await group.expect("Datenschutz")
    yes, no = (b["callback_data"] for b in buttons(prompt))
    assert yes.startswith("consent:yes:") and no.startswith("consent:no:")
    group.presses("ali", prompt, yes)
    group.presses("mia", prompt, yes)
    kept = await group.expect("Idee 1 ist gespeichert")
    assert "Danke" in server.message(group.chat, prompt["message_id"])["text"], "edited in place"
    field = buttons(kept)[0]["callback_data"]
    group.presses("mia", kept, field)
    await server.wait_until(
        lambda: "Idee 1: Thema" in server.message(group.chat, kept["message_id"])["text"],
        timeout=20,
        what="the confirmation edited to the chosen field",
    )
    assert store.idea(1)["confirmed_field"] == field.split(":")[2]

    group.says("ali", f"/idee {IDEAS['ali']}")
    prompt = await group.expect("Datenschutz")
    group.presses("ali", prompt, buttons(prompt)[0]["callback_data"])
    await group.expect("Idee 2 ist gespeichert")

    # Jo writes privately through the link; the group hears of it without a name.
    jo = Person(server, "Jo", user=group.people["jo"])
    jo.says("/start " + link["url"].split("start=")[1])
    await jo.expect("Unser Kiez digital")
    await jo.expect("Welche Sprache")
    jo.presses("de")
    await jo.expect("einverstanden")
    jo.presses("yes")
    await jo.expect("Was ist deine Idee")
    jo.says(IDEAS["jo"])
    private_note = await group.expect("privat dazu: Idee 3")
    assert "Jo" not in private_note["text"]

    group.says("mia", "/ende")
    await group.expect("Das darf nur")
    group.says("mia", "/ende@some_other_bot")
    group.says("leader", "/abstimmen")
    await group.expect("Jetzt wird abgestimmt")
    poll_message = await group.expect("Welche Ideen")
    options = [o["text"] for o in poll_message["poll"]["options"]]
    assert len(options) == 3 and poll_message["poll"]["allows_multiple_answers"]
    assert poll_message["poll"]["is_anonymous"], "nobody sees who voted for what"
    server.vote(poll_message, group.people["mia"], [0, 1])
    server.vote(poll_message, group.people["ali"], [1])
    server.vote(poll_message, group.people["jo"], [1, 2])
    await server.wait_until(
        lambda: store.polls(1)[0]["counts"] == [1, 3, 1], timeout=20, what="the vote counts"
    )

    group.says("admin", "/ende")
    summary = await group.expect("ist zu Ende")
    assert server.message(group.chat, poll_message["message_id"])["poll"]["is_closed"]
    text = summary["text"]
    assert "3 Ideen von 3 Personen" in text
    votes = text.split("Abstimmung:")[1].strip().splitlines()
    assert votes[0].startswith("• Die Busse nach Marzahn") and votes[0].endswith(": 3")
    for person in ("Mia", "Ali", "Jo", "Leader"):
        assert person not in text
    assert store.running_workshop("telegram", engine_room(channel, group)) is None
    assert server.unknown_methods == [] and server.errors == []
    in_groups = server.commands_for("de", {"type": "all_group_chats"})
    assert [c["command"] for c in in_groups][:2] == ["idee", "workshop"]
    # Mia's /workshop and /ende were refused; "/ende@some_other_bot" was not for us.
    refusals = [m for m in server.sent(group.chat) if "Das darf nur" in m.get("text", "")]
    assert len(refusals) == 2


def engine_room(channel: TelegramChannel, group: Group) -> str:
    return channel.pseudonymizer.participant("telegram", f"chat:{group.chat['id']}")


async def test_a_member_cannot_end_and_chatter_stays_unread(channel, server) -> None:
    group = Group(server)
    group.says("admin", "/workshop Kurz")
    await group.expect("„Kurz“ läuft")
    group.says("mia", "hallo ihr, was machen wir heute?")
    server.send_photo(group.chat, group.people["ali"])
    group.says("jo", "/ende")
    await group.expect("Das darf nur")
    assert channel.engine.store.running_workshop("telegram", engine_room(channel, group))
    assert (
        channel.engine.store.conversation(
            channel.pseudonymizer.participant("telegram", str(group.people["mia"]["id"]))
        )
        is None
    ), "members' chatter never reaches the engine"
    assert len(server.sent(group.chat)) == 2


async def test_a_member_who_re_adds_the_bot_cannot_end_the_workshop(channel, server) -> None:
    """Removing the bot and adding it back does not make a member a leader."""
    store = channel.engine.store
    group = Group(server)
    group.bot_is_added_by("leader")
    await group.expect("/workshop")
    group.says("admin", "/workshop Zukunftswerkstatt")
    await group.expect("„Zukunftswerkstatt“ läuft")
    group.bot_is_removed_by("mia")
    group.bot_is_added_by("mia")
    await group.expect("/workshop")
    group.says("mia", "/ende")
    await group.expect("Das darf nur")
    room = engine_room(channel, group)
    assert store.running_workshop("telegram", room) is not None
    leader = channel.pseudonymizer.participant("telegram", str(group.people["leader"]["id"]))
    assert store.room("telegram", room)["added_by"] == leader
    group.says("leader", "/ende")
    await group.expect("„Zukunftswerkstatt“ ist zu Ende")
    assert store.running_workshop("telegram", room) is None
    assert server.unknown_methods == [] and server.errors == []


async def test_a_group_at_its_rate_limit_holds_up_no_private_answer(channel, server) -> None:
    """Telegram allows 20 messages a minute into a group; PTB's limiter makes the rest wait.
    Meanwhile a resident in a private chat is answered at once, and nothing is lost."""
    group = Group(server)
    asks = 23
    for _ in range(asks):
        group.says("mia", "/hilfe")
    person = Person(server, "Pia")
    person.says("/start")
    await person.expect("Welche Sprache")
    assert len(server.sent(group.chat)) < asks, "the group's replies are still waiting"
    await server.wait_until(
        lambda: len(server.sent(group.chat)) == asks, timeout=60, what="every group reply"
    )
    assert all("/idee" in m["text"] for m in server.sent(group.chat))
