"""The conversation engine: one inbound message in, one step run, replies out.

It knows flows, catalogues, the store and the NLP, and nothing about any platform. Each call
to `handle` loads the conversation, runs one step and saves the new state together with
whatever the step wrote, in one SQLite transaction; in-memory NLP state is updated only after
that transaction committed.
"""

import dataclasses
import difflib
import logging
import re
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from mitreden.flows import actions, limits, mydata, workshop
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import ChoiceSpec, Flow, Step
from mitreden.flows.limits import Limits
from mitreden.flows.messages import (
    Choice,
    Inbound,
    Outbound,
    Parcel,
    dump_outbound,
    load_outbound,
)
from mitreden.flows.state import State
from mitreden.logs import describe
from mitreden.nlp import languages
from mitreden.nlp.pipeline import IdeaNlp
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.store import Store
from mitreden.store.conversations import Conversation
from mitreden.store.store import unavailable

log = logging.getLogger(__name__)
SKIP = "skip"
COMMAND = re.compile(r"^/(\w+)(?:@\w+)?(?:\s|$)", re.UNICODE)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
# Only ASCII digits pick a numbered choice: "²", "①" or "٣" are digits to str.isdigit() too.
NUMBER = re.compile(r"[0-9]{1,3}")
# Beyond any platform's message size; a longer text is cut here, before anything reads it.
TEXT_LIMIT = 65_536
# Longer than any button value the engine makes, so a longer one is no valid choice.
CHOICE_LIMIT = 256
# What a conversation may keep of a rejected draft: generous, but bounded.
DRAFT_LIMIT = 20_000
# Commands for a person's rights over their data: they work even when blocked or flooding.
RIGHTS = frozenset({"mydata", "delete", "cancel", "help"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def clean(text: str | None) -> str:
    """Text as the engine reasons about it: NFC, no control characters, trimmed."""
    return CONTROL.sub("", unicodedata.normalize("NFC", text or "")).strip()


def encodable(text: str) -> str:
    """`text` as UTF-8, and so SQLite, can store it: surrogate pairs joined, lone surrogates
    replaced by U+FFFD. Python strings may hold them (from a lenient decoder or a test), and
    storing one raises UnicodeEncodeError deep inside a step."""
    if SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def sanitised(msg: Inbound) -> Inbound:
    """The inbound as the engine may store and compare it: every string encodable, the text
    bounded, and a choice value longer than any button's made empty, which matches nothing.
    Done once at the door, so no step needs to distrust what an adapter passed on."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(msg):
        value = getattr(msg, field.name)
        if not isinstance(value, str):
            continue
        fixed = encodable(value)
        if field.name == "text":
            fixed = fixed[:TEXT_LIMIT]
        elif field.name == "choice" and len(fixed) > CHOICE_LIMIT:
            fixed = ""
        if fixed != value:
            changes[field.name] = fixed
    return dataclasses.replace(msg, **changes) if changes else msg


def _fold(text: str) -> str:
    return re.sub(r"[^\w\s+-]", "", clean(text).casefold()).strip()


class Turn:
    """One inbound message being handled: the conversation, the replies, post-commit work."""

    def __init__(self, engine: "Engine", msg: Inbound, conv: Conversation, now: datetime) -> None:
        self.engine = engine
        self.store = engine.store
        self.nlp = engine.nlp
        self.msg = msg
        self.conv = conv
        self.now = now.isoformat(timespec="seconds")
        self.out: list[Outbound] = []
        self.after_commit: list[Callable[[], object]] = []
        self.erased = False
        # A group speaks its workshop's language, whatever a member chose privately.
        self.language: str | None = None

    @property
    def lang(self) -> str:
        return self.language or self.conv.language

    @property
    def data(self) -> State:
        """The conversation's memory (flows/state.py), stored with it as JSON."""
        return cast(State, self.conv.data)

    def text(self, key: str, **params: object) -> str:
        return self.engine.catalogue.text(self.lang, key, **params)

    def say(self, key: str, **params: object) -> None:
        self.out.append(Outbound(self.text(key, **params)))

    def consented(self) -> bool:
        version = self.store.consented_version(self.conv.participant_id)
        return version == self.engine.flow.consent_version


class Engine:
    def __init__(
        self,
        store: Store,
        taxonomy: Taxonomy,
        nlp: IdeaNlp | None,
        flow: Flow,
        catalogue: Catalogue,
        *,
        idle_timeout: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
        limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        self.store = store
        self.taxonomy = taxonomy
        self.nlp = nlp
        self.flow = flow
        self.catalogue = catalogue
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.limits = limits
        # Per language, every folded answer a fixed choice question takes (`_answers_elsewhere`).
        self._choice_answers: dict[str, frozenset[str]] = {}
        actions.check(flow, catalogue)

    def handle(self, msg: Inbound) -> list[Outbound]:
        """Handle one message for a caller that delivers the replies as it gets them (the
        terminal, tests, benches): they leave the outbox at once."""
        parcels = self.receive(msg)
        if parcels:
            with self.store.transaction():
                for parcel in parcels:
                    self.store.sent(parcel.id, 0, done=True)
        return [parcel.message for parcel in parcels]

    def receive(self, msg: Inbound) -> list[Parcel]:
        """Handle one message: run one step and queue its replies in the outbox, all in one
        transaction. The channel sends the parcels and reports each with `sent`.

        A message that makes a step raise is poison: the step is rolled back, the person gets
        an apology and the question again, the message is recorded as failed (so a
        redelivery is not handled again), and the log names the error's type and place but
        never the words. A database that cannot be written is no fault of the message:
        StoreUnavailable goes up, nothing is recorded, and the platform's redelivery (the
        channel acknowledges nothing it did not commit) finds it once the operator fixed it.
        """
        msg = sanitised(msg)
        started, now = time.perf_counter(), self.clock()
        try:
            with self.store.transaction():
                stamp = now.isoformat()
                if msg.key and not self.store.first_delivery(msg.channel, msg.key, stamp):
                    log.info("%s message %s delivered again; answered before", msg.channel, msg.key)
                    return []
                conv = self.store.conversation(msg.participant)
                turn = Turn(self, msg, conv or self._fresh(msg.participant, now), now)
                self._dispatch(turn, is_new=conv is None)
                if not turn.erased:
                    turn.conv.updated_at = turn.now
                    self.store.save_conversation(turn.conv)
                author = None if turn.erased else msg.participant
                parcels = self._post(msg, turn.out, author, turn.lang)
        except Exception as err:
            down = unavailable(err)
            if down is not None:
                raise down from err
            return self._failed(msg, now, err)
        for job in turn.after_commit:
            try:
                job()
            except Exception as err:  # the step is stored; memory catches up at the next regroup
                log.error("updating memory after a committed step failed: %s", describe(err))
        log.info(
            "%s %s… now at %s (%.1f ms)",
            msg.channel,
            msg.participant[:6],
            "erased" if turn.erased else turn.conv.step,
            (time.perf_counter() - started) * 1000,
        )
        return parcels

    def _post(
        self, msg: Inbound, replies: list[Outbound], author: str | None, language: str
    ) -> list[Parcel]:
        """Write replies to the outbox. A reply to the author's own chat carries their key, so
        an erasure takes it along; a reply that replaces the pressed message keeps its id.
        Replies into the chat the message came from are in its `language`, and say so if it
        is written right to left."""
        parcels = []
        stamp = self.clock().isoformat()
        rtl = self.catalogue.right_to_left(language)
        for reply in replies:
            if rtl and reply.to is None:
                reply = dataclasses.replace(reply, rtl=True)
            address = reply.to or msg.address
            edit_key = msg.pressed if reply.edit and reply.to is None else None
            owner = author if reply.to is None else None
            row = self.store.post(
                msg.channel, address, dump_outbound(reply), stamp, owner, edit_key
            )
            parcels.append(Parcel(row, address, reply, edit_key))
        return parcels

    def _failed(self, msg: Inbound, now: datetime, err: Exception) -> list[Parcel]:
        """A poison message: recorded as failed and answered with an apology."""
        log.error("%s message could not be handled: %s", msg.channel, describe(err))
        try:
            with self.store.transaction():
                if msg.key:
                    self.store.first_delivery(msg.channel, msg.key, now.isoformat(), "failed")
                conv = self.store.conversation(msg.participant)
                turn = Turn(self, msg, conv or self._fresh(msg.participant, now), now)
                turn.say("sorry_failed")
                if msg.room is None:
                    self.reprompt(turn)
                return self._post(msg, turn.out, msg.participant, turn.lang)
        except Exception as again:
            down = unavailable(again)
            if down is not None:
                raise down from again
            log.error("%s message: the apology failed too: %s", msg.channel, describe(again))
            return []

    def opening(self, participant: str, language: str = "de") -> list[Outbound]:
        """What to show someone before they say anything (a web page's first view, the
        terminal's start): the question their conversation stands at, or the first question
        for someone new, in `language`. Nothing is stored, so a page view leaves no trace; an
        answer to the first question is understood as such."""
        now = self.clock()
        conv = self.store.conversation(participant) or self._fresh(participant, now, language)
        turn = Turn(self, Inbound("", participant), conv, now)
        self.reprompt(turn)
        return turn.out

    def sent(self, parcel: Parcel, parts: int, done: bool) -> None:
        """A channel sent `parts` pieces of a parcel (all of them if `done`)."""
        with self.store.transaction():
            self.store.sent(parcel.id, parts, done)

    def unsent(self, channel: str) -> list[Parcel]:
        """Replies a channel has not (fully) sent, oldest first: after a crash, its first work."""
        parcels = []
        for row in self.store.unsent(channel):
            message = load_outbound(row["message"])
            parcels.append(
                Parcel(row["id"], row["address"], message, row["edit_key"], row["parts_sent"])
            )
        return parcels

    def _fresh(self, participant: str, now: datetime, language: str = "de") -> Conversation:
        stamp = now.isoformat(timespec="seconds")
        return Conversation(participant, "", language, {}, stamp, stamp)

    def poll_posted(self, ref: int, poll_key: str, message_key: str) -> None:
        """The platform's ids of a poll the engine asked for (`Poll.ref`)."""
        with self.store.transaction():
            self.store.poll_posted(ref, poll_key, message_key)

    def poll_counted(self, poll_key: str, counts: list[int]) -> None:
        """A poll's vote counts as they stand; the latest wins, so repeats do no harm."""
        with self.store.transaction():
            if not self.store.count_poll(poll_key, counts):
                log.info("vote counts for a poll that is closed or not ours; ignored")

    def _dispatch(self, turn: Turn, is_new: bool) -> None:
        command, rest = self._command(turn)
        if turn.msg.room is not None:
            workshop.handle(turn, command, rest)
            return
        if turn.msg.event == "unreadable":
            turn.say("unreadable")  # nothing was read, so the step stays as it was
            return
        if command not in RIGHTS and self._held_back(turn, is_new):
            return
        if turn.msg.media is not None:
            turn.say("media_not_text")
            self.reprompt(turn)
            return
        if is_new and command in (None, "start"):
            if command is None:
                first = self.flow.steps[self.flow.start]
                self.enter(turn, first.name)
                if self._chosen(turn, first) is not None:
                    # An answer to the first question, which a page or the terminal showed
                    # from `opening` before anything was stored, or a first message in one of
                    # the languages it offers.
                    turn.out.clear()
                    self._answer(turn, first)
            else:
                self._start(turn, rest)
            return
        if not is_new and self._idle(turn):
            turn.say("idle_restart")
            self._renew(turn, keep_draft=True)
            if command is None:
                self._restart(turn)
                return
        if command is not None:
            self._run_command(turn, command, rest)
            return
        step = self.flow.steps.get(turn.conv.step)
        if step is None or step.end:
            self._restart(turn)
        else:
            self._answer(turn, step)

    def _held_back(self, turn: Turn, is_new: bool) -> bool:
        """Whether a blocked or flooding participant's message stops here. A blocked person
        hears until when, once a day; a flood is told to slow down once a minute, and its words
        to a text question are kept in the draft."""
        until = self.store.blocked_until(turn.conv.participant_id, turn.now)
        if until is not None:
            today = turn.now[:10]
            if turn.data.get("blocked_told") != today:
                turn.data["blocked_told"] = today
                turn.say("blocked", until=until[:10])
            return True
        now = datetime.fromisoformat(turn.now)
        verdict = limits.rate(turn.data, now, self.limits.messages_per_minute)
        if verdict == "ok":
            return False
        if verdict == "warn":
            turn.say("slow_down")
        step = self.flow.steps.get(turn.conv.step)
        text = clean(turn.msg.text)
        if not is_new and step is not None and step.input == "text" and text:
            kept = turn.data.get("draft", {}).get("text", "")
            turn.data["draft"] = {"text": f"{kept} {text}".strip()[:DRAFT_LIMIT]}
        return True

    def _idle(self, turn: Turn) -> bool:
        last = datetime.fromisoformat(turn.conv.updated_at)
        return datetime.fromisoformat(turn.now) - last > self.idle_timeout

    # commands

    def _command(self, turn: Turn) -> tuple[str | None, str]:
        """The command named and the text after it, e.g. ("idea", "Mehr Bänke") for
        "/idee Mehr Bänke"; (None, "") for anything that is not a command."""
        text = clean(turn.msg.text)
        match = COMMAND.match(text) if turn.msg.choice is None else None
        if match is None:
            return None, ""
        command = self.flow.commands.get(match.group(1).casefold(), "unknown")
        return command, text[match.end() :].strip()

    def _renew(self, turn: Turn, keep_draft: bool = False) -> None:
        """Start the conversation over; ideas given in a group, waiting for the person's
        answer to the privacy notice there, keep waiting, and the message counter counts on.
        After a long pause the words of an unfinished idea are kept too (a /start is asked
        for, so it drops them)."""
        keys = (workshop.WAITING, *limits.KEYS, *(("draft",) if keep_draft else ()))
        old = turn.conv.data  # copied by name: the state as the store keeps it
        kept = {k: old[k] for k in keys if old.get(k)}
        turn.conv = self._fresh(turn.conv.participant_id, self.clock(), turn.lang)
        turn.conv.data.update(kept)

    def _start(self, turn: Turn, payload: str) -> None:
        """A fresh start; through a workshop's link, the ideas also count for that workshop."""
        self._renew(turn)
        code = workshop.join_code(payload)
        if code is not None:
            joined = self.store.workshop_by_code(code)
            if joined is not None and joined["ended_at"] is None:
                turn.data["workshop"] = joined["id"]
                turn.say("workshop_private_welcome", title=joined["title"])
            else:
                turn.say("workshop_link_old")
        self.enter(turn, self.flow.start)

    def _run_command(self, turn: Turn, command: str, rest: str = "") -> None:
        here = turn.conv.step
        if command == "start":
            self._start(turn, rest)
        elif command in workshop.GROUP_COMMANDS:
            turn.say("workshop_group_only")
            self.reprompt(turn)
        elif command in ("language", "delete"):
            target = self.flow.roles[command]
            if here not in ("", target):
                turn.data["resume"] = here
            self.enter(turn, target)
        elif command == "cancel":
            turn.data.pop("draft", None)
            turn.data.pop("resume", None)
            self.enter(turn, self.flow.roles["cancelled"])
        elif command == "mydata":
            turn.out.append(mydata.reply(turn))
            self.reprompt(turn)
        else:
            turn.say("help" if command == "help" else "unknown_command")
            self.reprompt(turn)

    # steps

    def _restart(self, turn: Turn) -> None:
        """After an ended or expired conversation: go on where it makes sense, keep the words."""
        if not turn.consented():
            self.enter(turn, self.flow.start)
            return
        idea = self.flow.steps[self.flow.roles["idea"]]
        words = clean(turn.msg.text)
        if turn.msg.choice is None and len(words.split()) >= idea.validate.get("min_words", 1):
            turn.conv.step = idea.name
            self._answer(turn, idea)
        else:
            turn.say("welcome_back")
            self.enter(turn, idea.name)

    def resume(self, turn: Turn, fallback: str) -> None:
        """Go back to the step a command interrupted, asking its question again. An ended
        conversation stays ended; its closing words come again only if nothing else answered
        (a new language chosen after goodbye), so no message goes unanswered."""
        target = turn.data.pop("resume", None)
        if target not in self.flow.steps:
            self.enter(turn, fallback)
        elif self.flow.steps[target].end and turn.out:
            turn.conv.step = target
        else:
            self.enter(turn, target)

    def enter(self, turn: Turn, name: str) -> None:
        step = self.flow.steps[name]
        turn.conv.step = name
        for key in step.say:
            turn.say(key)
        if step.end:
            return
        params: dict[str, object] = {}
        choices = [self._choice(turn, spec) for spec in step.choices]
        if step.choices_from:
            found, params = actions.SOURCES[step.choices_from](turn)
            if not found and step.when_empty:
                self.enter(turn, step.when_empty)
                return
            choices += found
        choices += [self._choice(turn, spec) for spec in step.extra]
        if step.skippable:
            choices.append(Choice(SKIP, turn.text("skip")))
        turn.data["offered"] = [[c.value, c.label] for c in choices]
        turn.data["params"] = params
        turn.out.append(Outbound(self._question(turn, step), tuple(choices)))

    def reprompt(self, turn: Turn) -> None:
        """Ask the current question again, with exactly the choices shown before."""
        step = self.flow.steps.get(turn.conv.step)
        if step is None:
            self.enter(turn, self.flow.start)
        elif not step.end:
            choices = tuple(Choice(v, label) for v, label in turn.data.get("offered", []))
            turn.out.append(Outbound(self._question(turn, step), choices))

    def _question(self, turn: Turn, step: Step) -> str:
        """A step's question with its parameters; those that show other people's ideas are
        rendered now from the ids offered, so an idea erased meanwhile is not shown."""
        params = dict(turn.data.get("params", {}))
        render = actions.RENDERERS.get(step.choices_from or "")
        if render is not None:
            params.update(render(turn, [value for value, _ in turn.data.get("offered", [])]))
        return turn.text(step.ask or "", **params)  # only asking steps get here

    def _choice(self, turn: Turn, spec: ChoiceSpec) -> Choice:
        return Choice(spec.value, _shown(turn, spec))

    def _answer(self, turn: Turn, step: Step) -> None:
        if step.input == "text":
            value = self._text_input(turn, step)
        else:
            value = self._chosen(turn, step)
            if value is None:
                turn.say("choose_one")
                self.reprompt(turn)
        if value is None:
            return
        target = step.next if value == SKIP else step.route.get(value, step.next)
        if step.action and value != SKIP:
            chosen = actions.ACTIONS[step.action](turn, step, value)
            if turn.erased:
                return
            target = chosen or target
        if target in (None, actions.RESUME):
            self.resume(turn, self.flow.start)
        else:
            self.enter(turn, target)

    def _chosen(self, turn: Turn, step: Step) -> str | None:
        """The choice a message makes at `step` (see `match`), or at a step that detects
        languages, the offered language a typed message is written in."""
        value = self.match(turn)
        if value is None and step.detect:
            value = self._language_of(turn, step)
        return value

    def _language_of(self, turn: Turn, step: Step) -> str | None:
        """Which of the step's `detect` languages a typed message is written in, told apart
        from every language offered, if that is clear; the language action then says which
        it took and how to change it. The words are not kept: nothing is stored before
        consent."""
        offered = [value for value, _ in turn.data.get("offered", [])]
        language = languages.detect(turn.msg.text or "", self.catalogue, offered)
        if language not in step.detect:
            return None
        turn.data["detected"] = True
        return language

    def _text_input(self, turn: Turn, step: Step) -> str | None:
        """Free text, with a kept draft: too short is added to, too long is kept to shorten.

        An answer to a question this step does not ask is neither kept nor added to the draft:
        someone typing ahead (a script, or a returning person answering the questions they
        remember) would otherwise file "1 ja" as the start of their idea."""
        text = clean(turn.msg.text)
        if turn.msg.choice is not None or not text:
            turn.say("text_only")
            self.reprompt(turn)
            return None
        if self._answers_elsewhere(turn, text):
            turn.say("answer_for_another_question")
            self.reprompt(turn)
            return None
        draft = turn.data.pop("draft", None)
        if draft and not draft.get("too_long"):
            text = f"{draft['text']} {text}"
        limit = step.validate.get("max_chars")
        if limit and len(text) > limit:
            turn.data["draft"] = {"text": text[:DRAFT_LIMIT], "too_long": True}
            turn.say("idea_too_long", length=len(text), limit=limit)
            return None
        if len(text.split()) < step.validate.get("min_words", 0):
            turn.data["draft"] = {"text": text}
            turn.say("idea_too_short", draft=text)
            return None
        return text

    def _answers_elsewhere(self, turn: Turn, text: str) -> bool:
        """Whether free text is all an answer to a choice question: a number, a yes, no or skip
        word, or the label of a fixed choice of any step (a district, an age band, …). No idea
        consists of only that, while a real word too short on its own still starts a draft."""
        typed = _fold(text)
        if not typed:
            return False
        if typed.isascii() and typed.isdigit():
            return True
        if turn.lang not in self._choice_answers:
            answers = {turn.text("skip")}
            for key in ("words_yes", "words_no", "words_skip"):
                answers |= self.catalogue.words(turn.lang, key)
            for other in self.flow.steps.values():
                specs = (*other.choices, *other.extra)
                answers |= {_shown(turn, spec) for spec in specs}
            self._choice_answers[turn.lang] = frozenset(_fold(answer) for answer in answers)
        return typed in self._choice_answers[turn.lang]

    def match(self, turn: Turn) -> str | None:
        """Which offered choice a button press or typed text means, or None."""
        offered = turn.data.get("offered", [])
        values = [v for v, _ in offered]
        if turn.msg.choice is not None:
            return turn.msg.choice if turn.msg.choice in values else None
        typed = _fold(turn.msg.text or "")
        if not typed:
            return None
        if NUMBER.fullmatch(typed):
            number = int(typed)
            return values[number - 1] if 1 <= number <= len(values) else None
        labels = {_fold(label): v for v, label in offered}
        if typed in labels:
            return labels[typed]
        if typed in values:
            return typed
        yes, no = self.flow.answers["yes"], self.flow.answers["no"]
        for value, words in ((yes, "words_yes"), (no, "words_no"), (SKIP, "words_skip")):
            if value in values and typed in self.catalogue.words(turn.lang, words):
                return value
        starts = [v for label, v in labels.items() if len(typed) >= 3 and label.startswith(typed)]
        if len(starts) == 1:
            return starts[0]
        close = difflib.get_close_matches(typed, list(labels), n=1, cutoff=0.75)
        return labels[close[0]] if close else None


def _shown(turn: Turn, spec: ChoiceSpec) -> str:
    """A button's words: its own text, or its catalogue label in the turn's language."""
    return spec.text or turn.text(spec.label or "")
