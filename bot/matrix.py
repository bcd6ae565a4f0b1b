"""The Matrix channel: a matrix-nio client in front of the engine.

Residents chat with the bot in direct chats, end-to-end encrypted (Element's default) or not.
Replies carry their choices as a numbered list; the engine understands the number or the
label typed back. The bot joins direct chats it is invited to and the two rooms it is
configured for, and leaves any other room it is invited to.

The device outlives restarts: its login is kept in `Settings.matrix_dir` with nio's crypto
store (encrypted with a key derived from the server secret), so residents' clients keep
trusting one device and old messages stay readable. The sync token (our acknowledgement) is
saved in the database only after each event of a batch is handled, its step and replies
committed by the engine; the replies are then sent from the engine's outbox, and whatever a
crash left unsent goes out at the next start. So a restart neither answers an event twice nor
skips one; a gap the server leaves out of a sync ("limited" timeline) is fetched page by page.
An event whose handling raises is logged by type and place and passed over, so it never
holds up the batch (a resident's message that makes the engine raise is answered with an
apology by the engine itself). The first sync of every start asks for the rooms' full state,
so power levels, members and encryption are known at once: moderators keep their rights and
the staff rooms can be posted to before anyone writes there.

A message the bot cannot decrypt yet gets a short answer; the bot asks the sender's devices
for the key and handles the message as soon as the key arrives. nio waits out 429 answers for
as long as the server's retry_after says.

The moderator and strategy rooms are `ModeratorRoom` and `StrategyRoom` (bot/matrix_rooms.py);
this module only carries their events and messages.

The engine runs in one worker thread (SQLite and the model stay on it); the event loop stays
free to sync, encrypt and send while an idea is embedded.
"""

import asyncio
import contextlib
import dataclasses
import fcntl
import html
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from aiohttp import ClientConnectionError
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    InviteMemberEvent,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RoomMessageEmote,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    ToDeviceEvent,
    UploadFilterResponse,
    UploadResponse,
    WhoamiResponse,
)

from mitreden.bot import ChannelError, Failure
from mitreden.bot.matrix_rooms import CHANNEL, ModeratorRoom, StrategyRoom
from mitreden.clock import now
from mitreden.config import Settings
from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.messages import Attachment, Parcel
from mitreden.identity import Pseudonymizer
from mitreden.logs import add_secret, describe
from mitreden.store import StoreError

SYNC_TIMEOUT_MS = 10_000
"""How long one sync waits for events. Work from other processes (ideas from Telegram, erasures,
summaries to forward) is picked up at least this often."""
TIMELINE_LIMIT = 100
"""Events per room in one sync; more than that since the last one are fetched as a gap."""
HTML = "org.matrix.custom.html"
# How long the bot keeps trying an event it cannot decrypt before it gives up on it.
UNREADABLE_FOR_SECONDS = 24 * 3600.0
# At start, how often a homeserver that cannot be reached is tried before that is an error;
# once running, nio keeps trying for as long as it takes.
START_TRIES = 3

log = logging.getLogger(__name__)


def render(message: Outbound) -> dict[str, Any]:
    """An m.text event: the text, then the choices as a numbered list."""
    body = message.text
    formatted = html.escape(message.text).replace("\n", "<br>")
    if message.choices:
        body += "\n\n" + "\n".join(
            f"{n}. {choice.label}" for n, choice in enumerate(message.choices, start=1)
        )
        items = "".join(f"<li>{html.escape(choice.label)}</li>" for choice in message.choices)
        formatted += f"<ol>{items}</ol>"
    if message.rtl:  # Arabic: set from the right, also where a line begins in Latin letters
        formatted = f'<div dir="rtl">{formatted}</div>'
    return {"msgtype": "m.text", "body": body, "format": HTML, "formatted_body": formatted}


def media_kind(event: Any) -> str:
    msgtype = event.source.get("content", {}).get("msgtype", "")
    return str(msgtype).removeprefix("m.") or "other"


def is_message(event: Any) -> bool:
    """A resident's new message. An edit of an earlier one is no new answer, and notices
    are what bots send each other."""
    if event.source.get("type") != "m.room.message":
        return False
    content = event.source.get("content", {})
    relation = content.get("m.relates_to")
    relation = relation if isinstance(relation, dict) else {}  # a client may send anything
    return relation.get("rel_type") != "m.replace" and content.get("msgtype") != "m.notice"


async def exchange_keys(client: AsyncClient) -> None:
    """Upload, query and claim Olm keys as nio asks after a sync, so encrypted sends and reads
    work: what every end-to-end encrypting client's loop does."""
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())


class Client(AsyncClient):
    """nio's client, but an encrypted to-device message it cannot decrypt is passed over.

    nio lets the error of a broken Olm message (a pre-key message for a one-time key the
    device no longer has, say, after a crash between claiming and saving keys) escape from
    `sync`, before the sync is acknowledged: the server sends the same message again with
    every sync, and the channel could never sync, nor start, again. Passed over, the message
    is lost as Olm would lose it anyway; the sender's device sets up a new session."""

    def _handle_decrypt_to_device(self, to_device_event: ToDeviceEvent) -> ToDeviceEvent | None:
        try:
            return super()._handle_decrypt_to_device(to_device_event)
        except Exception as err:
            log.warning("matrix: a to-device message could not be decrypted: %s", describe(err))
            return None


class Session:
    """The bot's login: one device for good, its token kept beside the crypto store."""

    def __init__(self, settings: Settings, pickle_key: str) -> None:
        self.settings = settings
        self.directory = settings.matrix_dir
        self.file = self.directory / "session.json"
        self.pickle_key = pickle_key
        self._lock: int | None = None

    def client(self) -> AsyncClient:
        config = AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=False, pickle_key=self.pickle_key
        )
        return Client(
            self.settings.matrix_homeserver,
            self.settings.matrix_user_id,
            store_path=str(self.directory),
            config=config,
        )

    def lock(self) -> None:
        """One process per device: two would corrupt its keys and answer everyone twice."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise ChannelError(
                f"another mitreden is using the Matrix device in {self.directory}"
            ) from None
        self._lock = descriptor

    def narrow(self) -> None:
        """Make everything in the device's folder owner-only: nio's crypto store (the device's
        keys and every room key) is created with the process's default mode, often 0644."""
        self.directory.chmod(0o700)
        for path in self.directory.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)

    def unlock(self) -> None:
        self.narrow()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def is_locked(self) -> bool:
        """Whether a running mitreden holds the device (so it sends what is queued)."""
        try:
            self.lock()
        except ChannelError:
            return True
        self.unlock()
        return False

    async def login(self, client: AsyncClient) -> None:
        settings = self.settings
        saved = self._saved()
        if settings.matrix_access_token:
            client.access_token = settings.matrix_access_token
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse) or not who.device_id:
                raise ChannelError(f"the Matrix access token was refused: {_why(who)}")
            client.restore_login(settings.matrix_user_id, who.device_id, client.access_token)
            return
        if saved.get("user_id") == settings.matrix_user_id:
            add_secret(saved.get("access_token", ""))
            client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
            if isinstance(await client.whoami(), WhoamiResponse):
                return
            log.info("matrix: the saved login expired; logging in again as the same device")
        response = await client.login(settings.matrix_password, device_name="mitreden")
        if not isinstance(response, LoginResponse):
            raise ChannelError(
                f"Matrix login as {settings.matrix_user_id} failed: {_why(response)}"
            )
        add_secret(response.access_token)
        self._save(response)

    def _saved(self) -> dict[str, str]:
        try:
            return json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, response: LoginResponse) -> None:
        session = {
            "user_id": response.user_id,
            "device_id": response.device_id,
            "access_token": response.access_token,
        }
        descriptor = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(session, out)


def _why(response: object) -> str:
    """A refusal as the operator needs it to fix their settings (login, joining a room)."""
    if isinstance(response, ErrorResponse):
        return f"{response.status_code} {response.message}"
    return type(response).__name__


def _code(response: object) -> str:
    """A refusal for the log: its error code only, since a server's text can name people."""
    return str(getattr(response, "status_code", None) or type(response).__name__)


class MatrixChannel:
    def __init__(
        self,
        engine: Engine,
        pseudonymizer: Pseudonymizer,
        settings: Settings,
        sync_timeout_ms: int = SYNC_TIMEOUT_MS,
        worker: Executor | None = None,
    ) -> None:
        """`worker` is the engine's one thread, when other channels share the engine."""
        self.engine = engine
        self.pseudonymizer = pseudonymizer
        self.settings = settings
        self.sync_timeout_ms = sync_timeout_ms
        self.session = Session(settings, pseudonymizer.token("matrix-store"))
        self.client = self.session.client()
        self._own_worker = worker is None
        self._worker = worker or ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.moderators = ModeratorRoom(self, settings.matrix_moderator_room)
        self.strategy = StrategyRoom(self, settings.matrix_strategy_room)
        self._filter: str | None = None
        # Events that could not be decrypted yet: event id -> (event, when first seen).
        self._unreadable: dict[str, tuple[MegolmEvent, float]] = {}
        self._outgoing: dict[str, list[Parcel | dict[str, Any]]] = {}
        # Outbox ids queued or being sent: a reply is queued once, however it was found.
        self._queued: set[int] = set()
        self.failure = Failure()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # lifecycle

    async def start(self) -> None:
        """Log in, catch up with what happened while we were away, then sync in a task."""
        self.session.lock()
        running = self.client.config
        self.client.config = dataclasses.replace(running, max_timeouts=START_TRIES)
        # nio's line for each retry would come before ours; at start, ours says it all.
        retries = logging.getLogger("nio.client.async_client")
        level = retries.level
        retries.setLevel(logging.ERROR)
        try:
            await self.session.login(self.client)
            self.session.narrow()
            await self.moderators.resolve()
            await self.strategy.resolve()
            await exchange_keys(self.client)  # residents can encrypt for a new device at once
            made = await self.client.upload_filter(room={"timeline": {"limit": TIMELINE_LIMIT}})
            if isinstance(made, UploadFilterResponse):
                self._filter = made.filter_id
            for parcel in await self.in_engine(self.engine.unsent, CHANNEL):
                self.queue(parcel.address or "", parcel)
            first = await self.in_engine(self.engine.store.cursor, CHANNEL) is None
            await self.sync_once(timeout_ms=0, first=first, full_state=True)
            await self.moderators.join()
            await self.strategy.join()
            await self.housekeeping()
        except (ClientConnectionError, TimeoutError) as err:
            await self.client.close()
            self.session.unlock()
            raise ChannelError(
                f"cannot reach the Matrix homeserver {self.settings.matrix_homeserver} "
                f"({type(err).__name__}); check matrix_homeserver and the network"
            ) from None
        except BaseException:
            await self.client.close()
            self.session.unlock()
            raise
        finally:
            self.client.config = running
            retries.setLevel(level)
        self._stopping.clear()
        self._loop_task = asyncio.create_task(self._loop())
        log.info("matrix: the bot (device %s) is listening", self.client.device_id)

    async def stop(self) -> None:
        """Stop after the batch in hand is answered and its place saved."""
        self._stopping.set()
        if self._loop_task is not None:
            await self._loop_task
        await self.client.close()
        if self._own_worker:
            self._worker.shutdown(wait=True)
        self.session.unlock()

    async def _loop(self) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        while not self._stopping.is_set():
            syncing = asyncio.create_task(self.sync_once(self.sync_timeout_ms))
            await asyncio.wait({syncing, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not syncing.done():
                # Cancelled while waiting for the server; handling begins only after it answered.
                syncing.cancel()
                await asyncio.gather(syncing, return_exceptions=True)
                break
            try:
                syncing.result()
                await self.housekeeping()
            except StoreError as err:  # nothing more can be recorded: stop, acknowledge nothing
                self.failure.report(err)
                return
            except Exception as err:  # the next sync goes on from the last saved place
                log.warning("matrix: a sync failed: %s", describe(err))
                await asyncio.sleep(1)

    # syncing

    async def sync_once(
        self, timeout_ms: int, first: bool = False, full_state: bool = False
    ) -> None:
        """One sync: handle invites and events, save our place, then send the answers.

        The very first sync of a new database answers nothing from before: those messages
        were written to a bot that was not there. Invites are accepted all the same.
        `full_state` asks for every room's whole state, not only what changed."""
        since = None if first else await self.in_engine(self.engine.store.cursor, CHANNEL)
        response = await self.client.sync(
            timeout=timeout_ms,
            sync_filter=self._filter,
            since=since,
            full_state=first or full_state,
        )
        if not isinstance(response, SyncResponse):
            log.warning("matrix: sync failed: %s", _code(response))
            await asyncio.sleep(1)
            return
        await exchange_keys(self.client)
        for room_id, info in response.rooms.invite.items():
            await self._invited(room_id, info.invite_state)
        if not first:
            for room_id, info in response.rooms.join.items():
                events = list(info.timeline.events)
                if info.timeline.limited and since:
                    events = await self._gap(room_id, info.timeline.prev_batch, since) + events
                for event in events:
                    await self._one_event(self.client.rooms[room_id], event)
            await self._retry_unreadable()
        await self.in_engine(self._save_cursor, response.next_batch)
        await self._flush()

    def _save_cursor(self, cursor: str) -> None:
        with self.engine.store.transaction():
            self.engine.store.set_cursor(CHANNEL, cursor, now())

    async def _gap(self, room_id: str, start: str, since: str) -> list[Any]:
        """Events the sync left out between our last place and its timeline, oldest first."""
        events: list[Any] = []
        while True:
            page = await self.client.room_messages(
                room_id, start, since, MessageDirection.back, limit=TIMELINE_LIMIT
            )
            if not isinstance(page, RoomMessagesResponse) or not page.chunk:
                break
            events.extend(page.chunk)
            if not page.end or page.end == start:
                break
            start = page.end
        log.info("matrix: fetched %d events the sync left out", len(events))
        return events[::-1]

    async def _invited(self, room_id: str, state: list[Any]) -> None:
        me = self.client.user_id
        invite = next(
            (e for e in state if isinstance(e, InviteMemberEvent) and e.state_key == me), None
        )
        direct = bool(invite and invite.content.get("is_direct"))
        if direct or room_id in (self.moderators.room_id, self.strategy.room_id):
            joined = await self.client.join(room_id)
            if isinstance(joined, ErrorResponse):
                log.warning("matrix: cannot join %s: %s", self._kind(room_id), _code(joined))
        else:
            log.info("matrix: declining an invite to a room that is not a direct chat")
            await self.client.room_leave(room_id)

    # events

    async def _one_event(self, room: MatrixRoom, event: Any) -> None:
        """An event whose handling raises is passed over with a line naming the error's type
        and place: one odd event must never hold up everyone after it."""
        try:
            await self.event(room, event)
        except StoreError:
            raise
        except Exception as err:
            log.warning("matrix: an event could not be handled: %s", describe(err))

    async def event(self, room: MatrixRoom, event: Any) -> None:
        """One timeline event, decrypted where we could."""
        if getattr(event, "sender", None) == self.client.user_id:
            return
        if isinstance(event, MegolmEvent):
            await self._cannot_read(room, event)
        elif room.room_id == self.moderators.room_id:
            await self.moderators.event(room, event)
        elif room.room_id == self.strategy.room_id:
            return
        elif not self._direct(room):
            log.info("matrix: ignoring a message in a room that is not a direct chat")
        elif is_message(event):
            if isinstance(event, (RoomMessageText, RoomMessageEmote)):
                await self.resident(room, event, text=event.body)
            else:  # pictures, files, voice, locations, and what no client should send
                await self.resident(room, event, media=media_kind(event))

    def _direct(self, room: MatrixRoom) -> bool:
        """A chat of the bot and one resident; anything said in a bigger room others would read."""
        staff = (self.moderators.room_id, self.strategy.room_id)
        return room.room_id not in staff and room.member_count <= 2

    async def resident(self, room: MatrixRoom, message: Any, **fields: Any) -> None:
        """A resident's message in their direct chat, to the engine; the answers queued."""
        inbound = Inbound(
            CHANNEL,
            self.pseudonymizer.participant(CHANNEL, message.sender),
            address=room.room_id,
            key=fields.pop("key", message.event_id),
            **fields,
        )
        for parcel in await self.in_engine(self.engine.receive, inbound):
            self.queue(parcel.address or room.room_id, parcel)

    async def _cannot_read(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.event_id in self._unreadable:
            return
        self._unreadable[event.event_id] = (event, asyncio.get_running_loop().time())
        with contextlib.suppress(LocalProtocolError):  # asked for this session's key already
            await self.client.request_room_key(event)
        log.info("matrix: cannot decrypt %s yet; asked for its key", event.event_id)
        if self._direct(room):  # a resident is told; staff rooms wait quietly
            await self.resident(room, event, event="unreadable", key=f"{event.event_id}:unreadable")

    async def _retry_unreadable(self) -> None:
        """Events whose key arrived since are handled now, as if they had just come."""
        clock = asyncio.get_running_loop().time()
        keys = self.client.olm.inbound_group_store
        for event_id, (event, since) in list(self._unreadable.items()):
            if keys.get(event.room_id, event.sender_key, event.session_id) is None:
                if clock - since > UNREADABLE_FOR_SECONDS:
                    del self._unreadable[event_id]
                continue
            try:
                readable = self.client.decrypt_event(event)
            except EncryptionError as err:  # the key came, but does not open this message
                log.warning("matrix: %s stays unreadable: %s", event_id, type(err).__name__)
                del self._unreadable[event_id]
                continue
            del self._unreadable[event_id]
            room = self.client.rooms.get(event.room_id)
            if room is not None:
                log.info("matrix: the key for %s arrived; handling it now", event_id)
                await self._one_event(room, readable)

    async def housekeeping(self) -> None:
        """Work that does not wait for an event: reviews to post, posts to take back,
        summaries to forward."""
        await self.moderators.catch_up()
        await self.strategy.catch_up()
        await self._flush()

    # sending

    def queue(self, room_id: str, message: Parcel | dict[str, Any]) -> None:
        """Send after the batch is handled; a room's messages keep their order. A parcel is a
        reply from the engine's outbox (one already queued is not queued again); a dict is a
        message the staff rooms make."""
        if isinstance(message, Parcel):
            if message.id in self._queued:
                return
            self._queued.add(message.id)
        self._outgoing.setdefault(room_id, []).append(message)

    async def deliver_unsent(self) -> None:
        """Send what the engine's outbox holds for Matrix and is not queued here: messages
        written outside a resident's step (a forwarded summary's notices) go out now rather
        than at the next start. Returns once they are sent."""
        for parcel in await self.in_engine(self.engine.unsent, CHANNEL):
            self.queue(parcel.address or "", parcel)
        await self._flush()

    async def _flush(self) -> None:
        """Send everything queued, each room's in order. Every room is finished before an
        error is raised, so a parcel leaves `_queued` only once it is no longer being sent
        (and one left unsent can be queued again)."""
        outgoing, self._outgoing = self._outgoing, {}
        results = await asyncio.gather(
            *(self._send_all(room, items) for room, items in outgoing.items()),
            return_exceptions=True,
        )
        for items in outgoing.values():
            self._queued.difference_update(i.id for i in items if isinstance(i, Parcel))
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send_all(self, room_id: str, items: list[Parcel | dict[str, Any]]) -> None:
        for item in items:
            if isinstance(item, Parcel):
                await self._send_parcel(room_id, item)
            else:
                await self.send(room_id, item)

    async def _send_parcel(self, room_id: str, parcel: Parcel) -> None:
        """The pieces of one reply (its text with the choices, a file) not sent yet, each
        reported to the engine as it goes out. One the server refuses is not tried again:
        nio has already waited out rate limits and retried what could not reach it. Each piece
        has a transaction id of its own, so when a crash came between sending a piece and
        recording it, the homeserver takes the second send as the first (same device, same
        id) and the resident sees it once."""
        pieces: list[dict[str, Any] | Attachment] = []
        if parcel.message.text:
            pieces.append(render(parcel.message))
        if parcel.message.attachment is not None:
            pieces.append(parcel.message.attachment)
        for done in range(parcel.parts_sent + 1, len(pieces) + 1):
            piece = pieces[done - 1]
            tx_id = f"mitreden-{parcel.id}-{done}"
            if isinstance(piece, Attachment):
                await self.send_file(room_id, piece, tx_id)
            else:
                await self.send(room_id, piece, tx_id)
            await self.in_engine(self.engine.sent, parcel, done, done == len(pieces))
        if not pieces:
            await self.in_engine(self.engine.sent, parcel, 0, True)

    async def send(
        self, room_id: str, content: dict[str, Any], tx_id: str | None = None
    ) -> str | None:
        """Send one event (encrypted where the room is); its id, or None if it failed."""
        try:
            response = await self.client.room_send(
                room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
            )
        except LocalProtocolError as err:  # a room we left, or never knew
            log.warning("matrix: cannot send to %s: %s", self._kind(room_id), type(err).__name__)
            return None
        if not isinstance(response, RoomSendResponse):
            log.warning("matrix: sending to %s failed: %s", self._kind(room_id), _code(response))
            return None
        return response.event_id

    async def send_file(
        self, room_id: str, attachment: Attachment, tx_id: str | None = None
    ) -> str | None:
        """Upload a file (encrypted for an encrypted room) and post it."""
        room = self.client.rooms.get(room_id)
        encrypt = bool(room and room.encrypted)
        uploaded, keys = await self.client.upload(
            lambda *_: attachment.content,
            content_type=attachment.media_type,
            filename=attachment.filename,
            encrypt=encrypt,
            filesize=len(attachment.content),
        )
        if not isinstance(uploaded, UploadResponse):
            log.warning("matrix: uploading %s failed: %s", attachment.filename, _code(uploaded))
            return None
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": attachment.filename,
            "filename": attachment.filename,
            "info": {"mimetype": attachment.media_type, "size": len(attachment.content)},
        }
        if encrypt and keys is not None:
            content["file"] = {"url": uploaded.content_uri, **keys}
        else:
            content["url"] = uploaded.content_uri
        return await self.send(room_id, content, tx_id)

    def _kind(self, room_id: str) -> str:
        """A room as the log may name it: which of ours it is, never its id."""
        if room_id == self.moderators.room_id:
            return "the moderator room"
        if room_id == self.strategy.room_id:
            return "the strategy room"
        return "a direct chat"

    async def in_engine(self, call: Callable[..., Any], *args: object) -> Any:
        """Run store or engine work in the engine's one thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, call, *args)
