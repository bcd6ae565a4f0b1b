"""The Telegram channel: python-telegram-bot's Application in front of the engine.

In private chats, text and commands go to the engine as typed, a pressed inline button as its
value, and anything else (photo, voice, sticker, file, location) as `media`, so the engine
answers in the person's language and nothing of it is kept. Replies come back as messages of
at most 4,096 characters with the choices as inline keyboards.

In groups (workshop mode) only commands for this bot, button presses, the bot being added,
and vote counts of its polls go to the engine; members' chatter never does. Telegram tells us
who is an admin of the group (asked at most every 5 minutes); the engine decides what that
allows.

Nothing is lost on a crash. PTB's Updater confirms a batch to Telegram with its next poll,
before the batch is handled, and its webhook server answers 200 before handling; so this
channel receives updates itself: a long-polling loop over `Bot.get_updates` that asks for
the next offset (which is what confirms the last batch to Telegram) only after every update
of the batch went through `Application.process_update` and the engine committed its step,
and a small aiohttp webhook endpoint that answers 200 only after the same. Each update's id
is the engine's delivery key, so an update Telegram delivers again after a crash is handled
once. The engine writes the replies to its outbox in the step's transaction; this channel
sends them afterwards and reports each piece sent, and at start it first sends whatever a
crash left unsent. A database that cannot be written stops the channel (through `failure`)
without confirming anything.

Updates of different chats are handled side by side (PTB's `concurrent_updates`, through
its update processor), each chat's and each sender's in the order Telegram gave them
(`InOrder`): while one person's press waits for the Bot API or their idea for the model,
others are answered. The engine still runs in one worker thread, one step and one
transaction at a time: SQLite and the model are used from one thread per process, and the
event loop stays free to receive and send. A typed text is embedded before its turn
(`Ahead`), together with the texts that arrive beside it. Outgoing calls pass PTB's rate
limiter (30 messages/s overall, 20/min per group) from a queue per chat (`Outbox`), so a
group at its limit holds up no one else.
"""

import asyncio
import contextlib
import functools
import hashlib
import hmac
import io
import logging
import re
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import certifi
from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    ChatMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    PollHandler,
    filters,
)
from telegram.request import BaseRequest, RequestData

from mitreden.bot import ChannelError, Failure
from mitreden.bot.ahead import Ahead
from mitreden.bot.in_order import InOrder, Place
from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.engine import clean
from mitreden.flows.messages import Parcel, Poll
from mitreden.identity import Pseudonymizer
from mitreden.logs import describe
from mitreden.store import StoreError

CHANNEL = "telegram"
MAX_TEXT = 4096
MEDIA = ("photo", "sticker", "voice", "audio", "video", "video_note", "document", "location")
# The command menu is set per user language; German is also the default for everyone else.
MENU_LANGUAGES = {"de": "de", "en": "en"}
ADDRESSED = re.compile(r"^/\w+@(\w+)")
# How long a group's list of admins is trusted before it is asked for again. Every call that
# names a group counts against Telegram's 20 per minute for that group.
ADMINS_FOR_SECONDS = 300.0
# A webhook post is one update; Telegram's are a few kB. Anything far larger is not Telegram.
WEBHOOK_MAX_BYTES = 1 << 20
# How long to wait before asking again when Telegram cannot be reached, at most.
BACKOFF_MAX_SECONDS = 30.0
RLM = "\u200f"  # RIGHT-TO-LEFT MARK: an invisible right-to-left letter
# How long a stop waits for queued replies to go out before it leaves them to the next start.
STOP_SECONDS = 20.0
# Updates handled at once at most: a getUpdates batch holds up to 100.
AT_ONCE = 100
# How long polling waits for the updates in hand before it asks for the next ones anyway.
REPOLL_SECONDS = 0.5
# Bot API calls under way at once (each on its own connection).
CONNECTIONS = 8
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

log = logging.getLogger(__name__)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word where possible."""
    pieces = []
    while len(text) > limit:
        cuts = (text.rfind(sep, 0, limit) for sep in ("\n\n", "\n", " "))
        cut = next((c for c in cuts if c > limit // 2), limit)
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*pieces, text] if text or not pieces else pieces


class ButtonValues:
    """Telegram carries at most 64 bytes of button data; a longer choice value (an operator's
    taxonomy id, say) travels as a short hash and is looked up when the button is pressed.
    After a restart such an old button reads as stale, and the engine asks again.

    A `private_start` choice becomes a link button: a deep link that opens a private chat
    with the bot, starting with `/start <value>`."""

    LIMIT = 64

    def __init__(self) -> None:
        self._long: dict[str, str] = {}
        self.bot_username = ""

    def data(self, value: str) -> str:
        if len(value.encode("utf-8")) <= self.LIMIT:
            return value
        key = "~" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:24]
        self._long[key] = value
        return key

    def value(self, data: str) -> str:
        return self._long.get(data, data)

    def keyboard(self, message: Outbound) -> InlineKeyboardMarkup | None:
        if not message.choices:
            return None
        rows = []
        for choice in message.choices:
            if choice.private_start:
                link = f"https://t.me/{self.bot_username}"
                link += f"?start={choice.value}" if choice.value else ""
                rows.append([InlineKeyboardButton(choice.label, url=link)])
            else:
                rows.append(
                    [InlineKeyboardButton(choice.label, callback_data=self.data(choice.value))]
                )
        return InlineKeyboardMarkup(rows)


class Outbox:
    """Replies wait here per chat, and one task per chat sends them in order.

    Telegram lets a bot post 20 messages a minute into a group. While a busy workshop waits
    for that, updates are still handled one after another and everyone else is answered at
    once; only that group's own messages queue up. A reply that cannot be sent because
    Telegram is unreachable stays queued (and in the engine's outbox) and is tried again.
    A reply waiting or being sent here is not queued a second time, whoever finds it in the
    engine's outbox."""

    def __init__(self, send: Callable[[Parcel], Awaitable[None]]) -> None:
        self._send = send
        self._queues: dict[str, asyncio.Queue[Parcel]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ids: set[int] = set()

    def put(self, parcel: Parcel) -> None:
        if parcel.id in self._ids:
            return
        self._ids.add(parcel.id)
        chat = parcel.address or ""
        if chat not in self._queues:
            self._queues[chat] = asyncio.Queue()
            self._tasks[chat] = asyncio.create_task(self._drain(chat))
        self._queues[chat].put_nowait(parcel)

    async def _drain(self, chat: str) -> None:
        queue = self._queues[chat]
        while not queue.empty():
            parcel = queue.get_nowait()
            try:
                await self._send(parcel)
            finally:
                self._ids.discard(parcel.id)
        # Nothing was awaited since the queue was found empty, so nothing can be left behind.
        del self._queues[chat], self._tasks[chat]

    async def flush(self, seconds: float) -> None:
        """Wait until everything queued is sent (before stopping), but not longer than
        `seconds`: while Telegram cannot be reached, what is left stays in the engine's
        outbox and goes out at the next start."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            tasks = list(self._tasks.values())
            _, pending = await asyncio.wait(tasks, timeout=max(left, 0))
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                self._queues.clear()
                self._tasks.clear()
                self._ids.clear()


class AiohttpRequest(BaseRequest):
    """PTB's Bot API calls over an aiohttp client session instead of httpx.

    httpx, with httpcore and anyio beneath it, cost more CPU per call than the rest of the
    bot: cancel scopes, locks and a socket look-up for every pooled connection at every call
    (with a hundred updates in hand, each sending and answering a press). aiohttp is here
    anyway (the webhook endpoint), and its client makes the same call for less than half.
    Everything above this stays PTB's: the `Bot`, its errors, its rate limiter and its
    timeouts (a long poll's read timeout grows with its `timeout`, as PTB asks). As with
    httpx, proxies come from the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY), read once
    per address rather than at every call as aiohttp's `trust_env` does (in a thread), and
    certificates are checked against certifi's.

    At most `connections` calls are under way at once; the others wait their turn here, and
    a call's timeouts count from when it has its connection."""

    def __init__(
        self,
        connections: int,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = None,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._connections = connections
        self._free = asyncio.Semaphore(connections)  # anew at each start, on its event loop
        self._read, self._write, self._connect = read_timeout, write_timeout, connect_timeout
        self._pool, self._media_write = pool_timeout, media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._free = asyncio.Semaphore(self._connections)
            tls = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=tls)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else {}
        body: Any = None
        headers = None
        if files:
            form = aiohttp.FormData()
            for name, value in fields.items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            body = form
        elif fields:
            body, headers = urlencode(fields).encode(), FORM
        read = _given(read_timeout, self._read)
        write = _given(write_timeout, self._media_write if files else self._write)
        connect = _given(connect_timeout, self._connect)
        # aiohttp has no write timeout of its own: the whole call gets them all together.
        total = None if read is None or write is None else read + write + (connect or 0)
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)
        try:
            async with asyncio.timeout(_given(pool_timeout, self._pool)):
                await self._free.acquire()
        except TimeoutError:
            raise TimedOut("Pool timeout: the request was not sent") from None
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=timeout, proxy=self._proxy(url)
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:  # its text can name the URL, and so the token
            raise NetworkError(f"aiohttp.{type(err).__name__}") from err
        finally:
            self._free.release()

    def _proxy(self, url: str) -> str | None:
        """The proxy the environment names for `url`, as httpx reads it (by scheme, then
        ALL_PROXY; none for a host in NO_PROXY), kept per scheme and host: every Bot API
        method has its own URL, and each URL names the token."""
        parts = urlsplit(url)
        address = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        if address not in self._proxies:
            proxies = urllib.request.getproxies_environment()
            proxy = proxies.get(parts.scheme) or proxies.get("all")
            if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
                proxy = None
            self._proxies[address] = proxy
        return self._proxies[address]


def _given(value: ODVInput[float], default: float | None) -> float | None:
    """A timeout PTB passes on: its default stands for ours. PTB's own request class tells
    its defaults apart the same way, by a type from its private `_utils` (PTB is pinned <23)."""
    return default if isinstance(value, DefaultValue) else value


def _lines(update: Update) -> list[Hashable]:
    """What an update keeps its order with: its chat, its sender (who may write in a group
    and in private), or the poll whose counts it carries (the latest counts win)."""
    lines: list[Hashable] = []
    if update.effective_chat is not None:
        lines.append(("chat", update.effective_chat.id))
    if update.effective_user is not None:
        lines.append(("user", update.effective_user.id))
    if update.poll is not None:
        lines.append(("poll", update.poll.id))
    return lines


def media_kind(message: Message) -> str:
    return next((kind for kind in MEDIA if getattr(message, kind, None)), "other")


class TelegramChannel:
    def __init__(
        self,
        engine: Engine,
        pseudonymizer: Pseudonymizer,
        token: str,
        api_base_url: str | None = None,
        worker: Executor | None = None,
        webhook: tuple[str, str, int] | None = None,
        secret: str = "",
        rate_limiter: bool = True,
        ahead: Ahead | None = None,
    ) -> None:
        """`worker` is the engine's one thread, when other channels share the engine.

        Without `webhook`, updates come by long polling. With it (public https URL, host,
        port), Telegram posts them to a TLS proxy that forwards them to host:port; posts
        without `secret` in their header are refused. A webhook stays registered when we
        stop, so Telegram keeps what arrives meanwhile and posts it after a restart.

        `rate_limiter=False` leaves out PTB's limiter (Telegram's 30 messages/s), for the
        benchmark that measures what the bot itself can do; Telegram itself needs it.
        `ahead` embeds typed texts before their turn; the App's, when it runs other channels
        too, so all their texts share batches."""
        self.engine = engine
        self.webhook, self.secret = webhook, secret
        self.pseudonymizer = pseudonymizer
        self.api_base_url = (api_base_url or "https://api.telegram.org").rstrip("/")
        self.failure = Failure()
        self._own_worker = worker is None
        self._worker = worker or ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.buttons = ButtonValues()
        self.outbox = Outbox(self._send)
        self._admins: dict[int, tuple[float, frozenset[int]]] = {}
        self._own_ahead = ahead is None
        self.ahead = ahead or Ahead(engine)
        # Updates of a chat or a sender one after another, whether by polling or by webhook.
        self._order = InOrder()
        self._handling: set[asyncio.Task[bool]] = set()
        self._reports: list[tuple[Parcel, int, bool, asyncio.Future[None]]] = []
        self._reporting: asyncio.Task[None] | None = None
        self._closing = False
        self._receiving: asyncio.Task[None] | None = None
        self._site: web.AppRunner | None = None
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any]
        builder = ApplicationBuilder().token(token).updater(None).concurrent_updates(AT_ONCE)
        builder = builder.request(AiohttpRequest(CONNECTIONS))
        builder = builder.get_updates_request(AiohttpRequest(1))
        if rate_limiter:
            builder = builder.rate_limiter(AIORateLimiter())
        if api_base_url:
            base = api_base_url.rstrip("/")
            builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
        self.app: Application = builder.build()
        # New messages only: an edit of an earlier message is not a new answer. Telegram names
        # a sender for every message (a stand-in for anonymous admins); one without is forged.
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & filters.USER
        self.app.add_handler(MessageHandler(private & filters.TEXT, self._on_text))
        self.app.add_handler(CallbackQueryHandler(self._on_press))
        self.app.add_handler(
            MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, self._on_media)
        )
        groups = filters.ChatType.GROUPS & filters.UpdateType.MESSAGE & filters.USER
        self.app.add_handler(MessageHandler(groups & filters.COMMAND, self._on_group_command))
        self.app.add_handler(ChatMemberHandler(self._on_added, ChatMemberHandler.MY_CHAT_MEMBER))
        self.app.add_handler(PollHandler(self._on_poll))
        self.app.add_error_handler(self._on_error)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One line, without the update or the error's text: both can carry what a resident
        wrote. A database that cannot be written stops the channel; anything else was this
        one update's problem, and the next one is served."""
        error = context.error
        if error is None:
            return
        if isinstance(error, StoreError):
            self.failure.report(error)
        log.warning("telegram: an update could not be handled: %s", describe(error))

    async def _set_commands(self) -> None:
        """At start-up: the command menus, and the bot's name for deep links."""
        self.buttons.bot_username = self.app.bot.username
        catalogue: Catalogue = self.engine.catalogue
        for language, code in MENU_LANGUAGES.items():
            menu = catalogue.entries(language, "command_menu")
            commands = [BotCommand(name, text) for name, text in menu.items()]
            await self.app.bot.set_my_commands(commands, language_code=code)
            menu = catalogue.entries(language, "group_command_menu")
            in_groups = [BotCommand(name, text) for name, text in menu.items()]
            scope = BotCommandScopeAllGroupChats()
            await self.app.bot.set_my_commands(in_groups, scope=scope, language_code=code)
            if language == "de":
                await self.app.bot.set_my_commands(commands)
                await self.app.bot.set_my_commands(in_groups, scope=scope)

    async def _in_engine(self, call: Callable[..., Any], *args: object) -> Any:
        """Run engine work in its one thread: SQLite and the model stay on that thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, call, *args)

    async def _handle(self, inbound: Inbound) -> None:
        """The engine commits the step and its replies; they are sent from here on."""
        for parcel in await self._in_engine(self.engine.receive, inbound):
            self.outbox.put(parcel)

    # receiving

    def _begin(self, update: Update) -> "asyncio.Task[bool]":
        """Start handling one update, after the updates before it of its chat, its sender and
        its poll. Its place is taken now, so the order of calls is the order kept."""
        place = self._order.place(_lines(update))
        task = asyncio.create_task(self._process(update, place))
        self._handling.add(task)
        task.add_done_callback(lambda done: self._ended(done, place))
        return task

    def _ended(self, task: "asyncio.Task[bool]", place: Place) -> None:
        place.leave()
        self._handling.discard(task)

    async def _process(self, update: Update, place: Place) -> bool:
        """Handle one update to the end (its step committed); False if the database failed,
        and the update must not be confirmed to Telegram."""
        await place.turn()
        if self.failure.error is None:
            try:
                processor = self.app.update_processor
                await processor.process_update(update, self.app.process_update(update))
            except Exception as err:  # PTB hands handlers' errors to _on_error; not these
                log.warning("telegram: an update could not be read: %s", describe(err))
        return self.failure.error is None

    async def _poll(self, timeout: int) -> None:
        """Long polling. Asking for `offset` confirms every update before it to Telegram, so
        the offset asked for is never past an update still in hand; after a crash Telegram
        sends the unconfirmed updates again, and the engine knows the handled ones.

        An update that takes long (a slow Bot API call, a long step) holds up only its own
        chat: after REPOLL_SECONDS the next updates are asked for while it goes on. Telegram
        then sends the ones in hand again, and they are passed over."""
        offset: int | None = None
        in_hand: dict[int, asyncio.Task[bool]] = {}
        handled: set[int] = set()  # at or past `offset`: done, but not confirmed yet
        backoff = 1.0
        while not self._closing:
            try:
                updates = await self.app.bot.get_updates(
                    offset=offset, timeout=timeout, allowed_updates=Update.ALL_TYPES
                )
            except (InvalidToken, Forbidden):  # its text can quote the token
                self.failure.report(ChannelError("Telegram refused the bot token"))
                return
            except TelegramError as err:  # unreachable, a 5xx, 409 while a webhook is set, ...
                log.warning("telegram: getUpdates failed (%s); trying again", type(err).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            backoff = 1.0
            for update in updates:
                if update.update_id not in in_hand and update.update_id not in handled:
                    in_hand[update.update_id] = self._begin(update)
            if in_hand:
                await asyncio.wait(in_hand.values(), timeout=REPOLL_SECONDS)
            for update_id, task in list(in_hand.items()):
                if task.done():
                    if task.cancelled() or not task.result():  # the database failed
                        return
                    del in_hand[update_id]
                    handled.add(update_id)
            if handled:
                offset = min(in_hand) if in_hand else max(handled) + 1
                handled = {update_id for update_id in handled if update_id >= offset}

    async def _on_webhook(self, request: web.Request) -> web.Response:
        """One update posted by Telegram: 200 only once it is handled, so a crash before that
        makes Telegram post it again."""
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except Exception as err:  # not an update: posting it again would not help
            log.warning("telegram: a webhook post that is no update: %s", type(err).__name__)
            return web.Response(status=200)
        if update is None:
            return web.Response(status=200)
        if self._closing:  # Telegram posts it again after the restart
            return web.Response(status=503)
        # Shielded: a post cut off while waiting does not cut off the step it began.
        if not await asyncio.shield(self._begin(update)):
            return web.Response(status=503)
        return web.Response(status=200)

    async def _listen(self) -> None:
        if self.webhook is None:
            raise ChannelError("no webhook is configured")  # _listen is called only with one
        url, host, port = self.webhook
        app = web.Application(client_max_size=WEBHOOK_MAX_BYTES)
        app.router.add_post("/" + urlsplit(url).path.lstrip("/"), self._on_webhook)
        # At stop, a post still waiting for its turn is cut off (and posted again by Telegram).
        self._site = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._site.setup()
        try:
            await web.TCPSite(self._site, host, port).start()
        except OSError as err:
            raise ChannelError(
                f"cannot listen for Telegram's webhook on {host}:{port}: {err.strerror}"
            ) from None
        await self.app.bot.set_webhook(
            url, secret_token=self.secret, allowed_updates=Update.ALL_TYPES
        )

    # sending

    async def _send(self, parcel: Parcel) -> None:
        """Send the pieces of one reply not yet sent, reporting each to the engine. While
        Telegram cannot be reached the reply waits; one Telegram refuses for good (blocked
        by the person, a chat that is gone) is dropped with a line in the log."""
        chat_id = int(parcel.address or 0)
        pieces = self._pieces(chat_id, parcel)
        done = parcel.parts_sent
        backoff = 1.0
        reported: asyncio.Future[None] | None = None
        while done < len(pieces) and self.failure.error is None:
            try:
                await pieces[done]()
            except (BadRequest, Forbidden) as err:
                log.warning("telegram: a reply was refused: %s", type(err).__name__)
                done = len(pieces)
            except TelegramError as err:
                log.warning("telegram: sending failed (%s); trying again", type(err).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            else:
                done += 1
            reported = self._report(parcel, done, done == len(pieces))
        if reported is not None:  # the parcel stays in the Outbox until the engine knows
            await reported

    def _report(self, parcel: Parcel, parts: int, done: bool) -> "asyncio.Future[None]":
        """Tell the engine a parcel's pieces were sent, together with what other chats sent
        meanwhile: one call into the engine's thread for them all, rather than one each."""
        written = asyncio.get_running_loop().create_future()
        self._reports.append((parcel, parts, done, written))
        if self._reporting is None or self._reporting.done():
            self._reporting = asyncio.create_task(self._write_reports())
        return written

    async def _write_reports(self) -> None:
        while self._reports:
            reports, self._reports = self._reports, []
            try:
                await self._in_engine(self._sent_all, [r[:3] for r in reports])
            except StoreError as err:
                self.failure.report(err)
            except Exception as err:  # not marked: sent again at the next start
                log.warning("telegram: recording sent replies failed: %s", describe(err))
            for *_, written in reports:
                if not written.done():
                    written.set_result(None)

    def _sent_all(self, reports: list[tuple[Parcel, int, bool]]) -> None:
        """In the engine's thread: each report as `Engine.sent` takes it."""
        for parcel, parts, done in reports:
            self.engine.sent(parcel, parts, done)

    def _pieces(self, chat_id: int, parcel: Parcel) -> list[Callable[[], Awaitable[object]]]:
        """What one reply takes on Telegram, in order: closing a poll, the text (edited in
        place or in pieces of 4,096 characters), a poll, a file."""
        reply, bot = parcel.message, self.app.bot
        keyboard = self.buttons.keyboard(reply)
        pieces: list[Callable[[], Awaitable[object]]] = []
        if reply.close_poll:
            pieces.append(lambda: self._close_poll(chat_id, int(reply.close_poll or 0)))
        texts = self._texts(reply)
        if parcel.edit_key is not None:
            text, message_id = texts[0], int(parcel.edit_key)
            pieces.append(
                lambda: bot.edit_message_text(
                    text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard
                )
            )
        elif reply.text:
            for n, text in enumerate(texts):
                markup = keyboard if n == len(texts) - 1 else None
                pieces.append(
                    functools.partial(bot.send_message, chat_id, text, reply_markup=markup)
                )
        if reply.poll is not None:
            poll = reply.poll
            pieces.append(lambda: self._send_poll(chat_id, poll))
        if reply.attachment is not None:
            name, content = reply.attachment.filename, reply.attachment.content
            pieces.append(
                lambda: bot.send_document(chat_id, InputFile(io.BytesIO(content), filename=name))
            )
        return pieces

    @staticmethod
    def _texts(reply: Outbound) -> list[str]:
        """A reply's text in pieces Telegram takes. Telegram shows plain text, and sets each
        line by its first letter: a right-to-left reply gets a right-to-left mark before each
        line, or a line beginning with "/start" or a number would run left to right (the
        pieces leave room for the marks)."""
        if not reply.rtl:
            return split_text(reply.text)
        pieces = split_text(reply.text, MAX_TEXT - reply.text.count("\n") - 1)
        return ["\n".join(RLM + line for line in piece.split("\n")) for piece in pieces]

    async def _close_poll(self, chat_id: int, message_id: int) -> None:
        try:
            await self.app.bot.stop_poll(chat_id, message_id)
        except BadRequest:  # closed by hand in Telegram, or deleted
            log.info("telegram: poll already closed")

    async def _send_poll(self, chat_id: int, poll: Poll) -> None:
        """Anonymous, so no member sees another's vote and the bot gets counts, not names."""
        message = await self.app.bot.send_poll(
            chat_id,
            poll.question,
            list(poll.options),
            is_anonymous=True,
            allows_multiple_answers=True,
        )
        await self._in_engine(
            self.engine.poll_posted, poll.ref, message.poll.id, str(message.message_id)
        )

    async def deliver_unsent(self) -> None:
        """Queue what the engine's outbox holds for Telegram and is not queued yet: messages
        written outside a resident's step (a forwarded summary's notices) go out now rather
        than at the next start. Returns once they are queued; each chat's queue sends them."""
        for parcel in await self._in_engine(self.engine.unsent, CHANNEL):
            self.outbox.put(parcel)

    # updates

    def _inbound(self, update: Update, **fields: Any) -> Inbound:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:  # each handler's filter asks for both
            raise ValueError("an update without its chat or sender")
        room = None
        if chat.type != chat.PRIVATE:
            room = self.pseudonymizer.participant(CHANNEL, f"chat:{chat.id}")
        return Inbound(
            CHANNEL,
            self.pseudonymizer.participant(CHANNEL, str(user.id)),
            address=str(chat.id),
            key=str(update.update_id),
            room=room,
            **fields,
        )

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            text = update.effective_message.text
            await self.ahead.prepare(clean(text))
            await self._handle(self._inbound(update, text=text))

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        with contextlib.suppress(TelegramError):  # an old press after a restart: too late
            await query.answer()
        if update.effective_chat is None or query.message is None:  # inline mode: not ours
            return
        value = self.buttons.value(query.data or "")
        pressed = str(query.message.message_id)
        await self._handle(self._inbound(update, choice=value, pressed=pressed))

    async def _on_group_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None or user is None:
            return
        addressed = ADDRESSED.match(message.text or "")
        if addressed and addressed.group(1).casefold() != self.buttons.bot_username.casefold():
            return  # "/start@other_bot" is for another bot in the group
        if message.sender_chat is not None:  # an admin posting anonymously as the group
            admin = message.sender_chat.id == chat.id
        else:
            admin = user.id in await self._admins_of(chat.id)
        await self._handle(self._inbound(update, text=message.text, room_admin=admin))

    async def _admins_of(self, chat_id: int) -> frozenset[int]:
        asked, admins = self._admins.get(chat_id, (float("-inf"), frozenset()))
        if time.monotonic() - asked > ADMINS_FOR_SECONDS:
            try:
                members = await self.app.bot.get_chat_administrators(chat_id)
            except TelegramError as err:  # the last list we had, until Telegram answers
                log.warning("telegram: cannot ask for a group's admins: %s", type(err).__name__)
                return admins
            admins = frozenset(member.user.id for member in members)
            self._admins[chat_id] = (time.monotonic(), admins)
        return admins

    async def _on_added(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None:
            return
        was, now = change.old_chat_member.status, change.new_chat_member.status
        joined = was in (ChatMember.LEFT, ChatMember.BANNED) and now not in (
            ChatMember.LEFT,
            ChatMember.BANNED,
        )
        if joined and change.chat.type != change.chat.PRIVATE:
            await self._handle(self._inbound(update, event="added"))

    async def _on_poll(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        poll = update.poll
        if poll is None:
            return
        counts = [option.voter_count for option in poll.options]
        await self._in_engine(self.engine.poll_counted, poll.id, counts)

    async def _on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is None:
            return
        kind = media_kind(update.effective_message)
        await self._handle(self._inbound(update, media=kind))

    # lifecycle

    async def start(self, poll_timeout: int = 10) -> None:
        """Send what a crash left unsent, then receive updates inside a running event loop,
        beside other channels. Telegram that cannot be reached, or refuses the token, is an
        error with one line naming the server (never the token)."""
        try:
            await self.app.initialize()
            await self._set_commands()
            if self.webhook is None:
                await self.app.bot.delete_webhook()
        except InvalidToken:
            raise ChannelError("Telegram refused the bot token (telegram_token)") from None
        except NetworkError as err:
            raise ChannelError(
                f"cannot reach the Telegram Bot API at {self.api_base_url} "
                f"({type(err).__name__}); check telegram_api_base_url and the network"
            ) from None
        for parcel in await self._in_engine(self.engine.unsent, CHANNEL):
            self.outbox.put(parcel)
        if self.webhook is None:
            self._receiving = asyncio.create_task(self._poll(poll_timeout))
        else:
            await self._listen()

    async def stop(self) -> None:
        """Finish the updates in hand, stop receiving, send what is queued. An update that
        was received but not handled yet is not confirmed, so Telegram sends it again."""
        self._closing = True
        while self._handling:
            await asyncio.wait(list(self._handling))
        if self._receiving is not None:
            self._receiving.cancel()
            await asyncio.gather(self._receiving, return_exceptions=True)
        if self._site is not None:
            await self._site.cleanup()
        await self.outbox.flush(STOP_SECONDS)
        if self._reporting is not None:
            await self._reporting
        await self.app.shutdown()
        if self._own_ahead:
            self.ahead.stop()
        if self._own_worker:
            self._worker.shutdown(wait=True)
