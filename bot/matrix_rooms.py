"""The Matrix rooms for staff: moderators review ideas, the strategy team receives summaries.

Both are ordinary (often encrypted) rooms the bot is invited to; `MatrixChannel` carries their
events here and sends what they queue. What a decision means and how it is audited lives in
`mitreden.staff.review`, shared with every other screen a moderator may use; decisions made on
another screen are shown in the moderator room by following the audit log.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nio import ErrorResponse, MatrixRoom, ReactionEvent, RoomMessageText, RoomRedactResponse

from mitreden import reports
from mitreden.bot import ChannelError
from mitreden.clock import now
from mitreden.flows.messages import Attachment
from mitreden.staff import files, forwarding
from mitreden.staff import review as moderation

if TYPE_CHECKING:
    from mitreden.bot.matrix import MatrixChannel

CHANNEL = "matrix"
MODERATOR_LEVEL = 50
# The first room version whose creators outrank every power level (MSC4289).
CREATORS_RANK_FROM = 12
# A forwarded summary is shown in full up to this many characters and attached whole: a Matrix
# event holds at most 64 KiB, and the body is sent twice (plain and HTML), encrypted, base64.
SHOWN_CHARACTERS = 12_000
# Where the moderator room is in the audit log: the id of the last entry it looked at.
AUDIT_CURSOR = "matrix-audit"
# Decisions the moderator room is told of when they were made on another screen, and how.
DECIDED_ELSEWHERE = {
    "idea.approved": "review_approved",
    "idea.rejected": "review_rejected",
    "idea.reopened": "review_reopened",
    "idea.undone": "review_undone",
    "idea.split": "review_split",
}
# The screens an actor of the audit log may have decided on ("staff:anna"), by its prefix.
SCREENS = {"staff": "review_from_dashboard", "cli": "review_from_command_line"}

log = logging.getLogger(__name__)


def reply_text(event: RoomMessageText) -> str:
    """What a reply says, without the quote of the message it answers (older clients add one)."""
    lines = event.body.splitlines()
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def replied_to(event: RoomMessageText) -> str | None:
    """The event a reply answers; None for anything else, however odd its content."""
    relation = event.source.get("content", {}).get("m.relates_to")
    reply = relation.get("m.in_reply_to") if isinstance(relation, dict) else None
    target = reply.get("event_id") if isinstance(reply, dict) else None
    return target if isinstance(target, str) else None


class StaffRoom:
    """A room named in the settings by id or alias, which the bot joins at start."""

    purpose = ""

    def __init__(self, channel: "MatrixChannel", configured: str) -> None:
        self.channel = channel
        self.configured = configured
        self.room_id: str | None = configured if configured.startswith("!") else None

    @property
    def language(self) -> str:
        return self.channel.settings.moderator_language

    def text(self, key: str, **params: object) -> str:
        return self.channel.engine.catalogue.text(self.language, key, **params)

    async def resolve(self) -> None:
        if self.configured and self.room_id is None:
            found = await self.channel.client.room_resolve_alias(self.configured)
            if isinstance(found, ErrorResponse):
                raise ChannelError(f"the {self.purpose} {self.configured} was not found: {found}")
            self.room_id = found.room_id

    async def join(self) -> None:
        """Join if invited (or public); a room the bot cannot enter is a setup error."""
        if self.room_id is None or self.room_id in self.channel.client.rooms:
            return
        joined = await self.channel.client.join(self.room_id)
        if isinstance(joined, ErrorResponse):
            raise ChannelError(
                f"the bot cannot join the {self.purpose} {self.configured} "
                f"({joined.status_code} {joined.message}); invite "
                f"{self.channel.client.user_id} to it first"
            )

    def notice(self, text: str, answering: str | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
        if answering:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": answering}}
        return content


class ModeratorRoom(StaffRoom):
    """Ideas waiting for review are posted here, redacted. A member with power level 50 or
    more decides by replying (ja/nein/offen, in any catalogue language) or by reacting
    (👍/👎); anyone else's reaction changes nothing."""

    purpose = "moderator room"

    def __init__(self, channel: "MatrixChannel", configured: str) -> None:
        super().__init__(channel, configured)
        self.creators: frozenset[str] = frozenset()

    async def join(self) -> None:
        """Join, and learn who created the room: since room version 12 its creators stand above
        every power level and are no longer listed among them."""
        await super().join()
        if self.room_id is None:
            return
        state = await self.channel.client.room_get_state(self.room_id)
        if isinstance(state, ErrorResponse):
            log.warning("matrix: cannot read the moderator room's state: %s", state.status_code)
            return
        for event in state.events:
            if event.get("type") == "m.room.create":
                content = event.get("content", {})
                version = str(content.get("room_version", "1"))
                if version.startswith("org.matrix.hydra") or (
                    version.isdigit() and int(version) >= CREATORS_RANK_FROM
                ):
                    extra = content.get("additional_creators", [])
                    self.creators = frozenset([event["sender"], *extra])

    def may_review(self, room: MatrixRoom, user_id: str) -> bool:
        return (
            user_id in self.creators or room.power_levels.get_user_level(user_id) >= MODERATOR_LEVEL
        )

    async def catch_up(self) -> None:
        """Tell of decisions made elsewhere; post new pending ideas; take back posts of ideas
        whose authors erased them. An idea decided elsewhere before it was posted is no
        longer waiting, and is not posted."""
        if self.room_id is None:
            return
        await self.follow_decisions()
        store, engine = self.channel.engine.store, self.channel.engine
        for idea in await self.channel.in_engine(store.unposted_reviews, CHANNEL):
            text = moderation.review_post(idea, engine.catalogue, engine.taxonomy, self.language)
            event_id = await self.channel.send(self.room_id, self.notice(text))
            if event_id is not None:
                await self.channel.in_engine(self._posted, event_id, idea["id"])
        for key in await self.channel.in_engine(store.orphaned_review_posts, CHANNEL):
            taken = await self.channel.client.room_redact(
                self.room_id, key, reason=self.text("review_gone")
            )
            if not isinstance(taken, RoomRedactResponse):
                log.warning(
                    "matrix: could not take back the post of an erased idea: %s",
                    getattr(taken, "status_code", None) or type(taken).__name__,
                )
            await self.channel.in_engine(self._forget, key)

    async def follow_decisions(self) -> None:
        """Decisions on ideas made on another screen (the dashboard, the command line), each
        told once as a reply to the idea's post.

        The audit log is followed from a cursor in the database, saved after each entry, so a
        restart neither skips nor repeats one; a send cut off by a crash before its entry was
        saved goes again with the same transaction id, which the homeserver takes as the
        first. A send that fails is tried again at the next catch-up, before anything later.
        A room followed for the first time starts at the log's end: history is not told."""
        store = self.channel.engine.store
        cursor = await self.channel.in_engine(store.cursor, AUDIT_CURSOR)
        if cursor is None:
            last = await self.channel.in_engine(store.last_audit_id)
            await self.channel.in_engine(self._followed, last)
            return
        after = int(cursor)
        while entries := await self.channel.in_engine(
            store.audit_after, after, tuple(DECIDED_ELSEWHERE)
        ):
            for entry in entries:
                if not await self._tell(entry):
                    return
                after = entry["id"]
                await self.channel.in_engine(self._followed, after)

    async def _tell(self, entry: dict[str, Any]) -> bool:
        """Tell one decision from the audit log, unless it was made here (the room was
        answered then) or its idea was never posted here; False if sending it failed."""
        actor, subject = entry["actor"], entry["subject"]
        if actor.startswith(f"{CHANNEL}:") or not subject.startswith("idea:"):
            return True
        idea_id = int(subject.removeprefix("idea:"))
        post = await self.channel.in_engine(
            self.channel.engine.store.review_post_of, CHANNEL, idea_id
        )
        if post is None:
            return True
        params: dict[str, object] = {"id": idea_id, "who": self._who(actor)}
        if entry["action"] == "idea.split":
            params["ids"] = ", ".join(str(i) for i in entry["detail"].get("into", []))
        text = self.text(DECIDED_ELSEWHERE[entry["action"]], **params)
        tx_id = f"mitreden-audit-{entry['id']}"
        return (
            await self.channel.send(self.room_id or "", self.notice(text, post), tx_id) is not None
        )

    def _who(self, actor: str) -> str:
        """Who decided, as the room reads it: "Dashboard: anna" for `staff:anna`."""
        screen, _, name = actor.partition(":")
        key = SCREENS.get(screen)
        return self.text(key, name=name) if key else name or actor

    def _followed(self, audit_id: int) -> None:
        store = self.channel.engine.store
        with store.transaction():
            store.set_cursor(AUDIT_CURSOR, str(audit_id), now())

    def _posted(self, event_id: str, idea_id: int) -> None:
        store = self.channel.engine.store
        with store.transaction():
            store.add_review_post(CHANNEL, event_id, idea_id, now())

    def _forget(self, event_id: str) -> None:
        store = self.channel.engine.store
        with store.transaction():
            store.drop_review_post(CHANNEL, event_id)

    async def event(self, room: MatrixRoom, event: Any) -> None:
        if isinstance(event, ReactionEvent):
            target, answer, replying = event.reacts_to, event.key, False
        elif isinstance(event, RoomMessageText) and replied_to(event):
            target, answer, replying = replied_to(event), reply_text(event), True
        else:
            return  # moderators talking among themselves
        store = self.channel.engine.store
        post = await self.channel.in_engine(store.review_post, CHANNEL, target)
        if post is None:
            return  # not a review post
        say = self._answer(target) if replying else self._ignore
        if not self.may_review(room, event.sender):
            log.info("matrix: someone who may not review ideas reacted or replied; ignored")
            say("review_not_allowed")
            return
        if post["idea_id"] is None:
            say("review_gone")
            return
        state = moderation.decision(self.channel.engine.catalogue, answer)
        if state is None:
            say("review_not_understood")
            return
        idea_id = post["idea_id"]
        actor = f"{CHANNEL}:{event.sender}"
        was = await self.channel.in_engine(moderation.review, store, idea_id, state, actor, now())
        if was is None:
            self._answer(target)("review_gone")
        elif was != state:
            who = room.user_name(event.sender) or event.sender
            self._answer(target)(moderation.ANNOUNCED_AS[state], id=idea_id, who=who)

    def _answer(self, target: str) -> Callable[..., None]:
        def say(key: str, **params: object) -> None:
            self.channel.queue(self.room_id or "", self.notice(self.text(key, **params), target))

        return say

    def _ignore(self, key: str, **params: object) -> None:
        """Reactions get no answer: a room full of "not allowed" notices helps nobody."""


class StrategyRoom(StaffRoom):
    """Summaries forwarded to the strategy team arrive here as a formatted message with files
    attached: one that moderators approved (forwarded from the dashboard) word for word with
    every file it is forwarded as, or one `mitreden forward` asked for, built from the groups
    as they are when it is sent, with its Markdown and CSV."""

    purpose = "strategy room"

    async def catch_up(self) -> None:
        if self.room_id is None:
            return
        store = self.channel.engine.store
        for dispatch in await self.channel.in_engine(store.open_dispatches):
            await self.forward(dispatch)

    async def forward(self, dispatch: dict[str, Any]) -> None:
        room_id = self.room_id
        if room_id is None:  # catch_up and the command line call this only with a room
            return
        if dispatch.get("summary_id") is not None:
            language, markdown, forwarded = await self.channel.in_engine(
                self._approved, dispatch["summary_id"]
            )
            # The files of a large field take seconds: made beside the engine's thread.
            rendered = await asyncio.to_thread(files.render, forwarded)
            attachments = [Attachment(name, kind, data) for name, (kind, data) in rendered.items()]
            files_key = "forward_files_approved"
        else:
            made = await self.channel.in_engine(self._fresh, dispatch)
            language, markdown, attachments, files_key = made
        catalogue = self.channel.engine.catalogue
        shown = markdown
        if len(shown) > SHOWN_CHARACTERS:
            cut = shown.rfind("\n\n", 0, SHOWN_CHARACTERS)
            shown = shown[: cut if cut > 0 else SHOWN_CHARACTERS]
            shown += "\n\n" + catalogue.text(language, "forward_cut")
        shown += "\n\n" + catalogue.text(language, files_key)
        content = {
            "msgtype": "m.text",
            "body": shown,
            "format": "org.matrix.custom.html",
            "formatted_body": reports.to_html(shown),
        }
        event_id = await self.channel.send(room_id, content)
        if event_id is not None:
            for attachment in attachments:
                await self.channel.send_file(room_id, attachment)
        await self.channel.in_engine(self._done, dispatch, event_id)

    def _approved(self, summary_id: int) -> tuple[str, str, files.Forwarded]:
        """An approved summary's language, text, and what its files are made of, as the
        dashboard forwarded it."""
        engine = self.channel.engine
        summary = engine.store.summary(summary_id)
        if summary is None:  # summaries are never deleted
            raise LookupError(f"there is no summary {summary_id}")
        content = forwarding.forwarded(engine.store, engine.taxonomy, engine.catalogue, summary)
        return summary["language"], summary["text"], content

    def _fresh(self, dispatch: dict[str, Any]) -> tuple[str, str, list[Attachment], str]:
        """A summary of the groups as they are now, with its Markdown and CSV."""
        engine = self.channel.engine
        language, field = dispatch["language"], dispatch["field"]
        fields = reports.summaries(engine.store, engine.taxonomy, engine.catalogue, language, field)
        markdown = reports.to_markdown(fields, engine.catalogue, language)
        name = engine.catalogue.text(language, "forward_file_name")
        stem = "-".join(filter(None, [name, field, datetime.now(UTC).date().isoformat()]))
        attachments = [
            Attachment(f"{stem}.md", "text/markdown", markdown.encode("utf-8")),
            Attachment(f"{stem}.csv", "text/csv", reports.to_csv(fields).encode("utf-8")),
        ]
        return language, markdown, attachments, "forward_files"

    def _done(self, dispatch: dict[str, Any], event_id: str | None) -> None:
        """Record the dispatch as sent or failed. A summary from the dashboard was audited as
        forwarded when it was; that it reached the room is audited on its own."""
        store = self.channel.engine.store
        with store.transaction():
            if event_id is None:
                store.finish_dispatch(dispatch["id"], now(), error="sending failed; see the log")
                return
            store.finish_dispatch(dispatch["id"], now(), message_key=event_id)
            if dispatch.get("summary_id") is not None:
                store.audit(
                    now(),
                    dispatch["requested_by"],
                    "summary.posted",
                    f"summary:{dispatch['summary_id']}",
                    dispatch=dispatch["id"],
                    room=self.room_id,
                )
                return
            store.audit(
                now(),
                dispatch["requested_by"],
                "summary.forwarded",
                f"dispatch:{dispatch['id']}",
                field=dispatch["field"],
                room=self.room_id,
            )
