"""The Telegram channel: python-telegram-bot's Application in front of the engine.

In private chats, text and commands go to the engine as typed, a pressed inline button as its
value, and anything else (photo, voice, sticker, file, location) as `media`, so the engine
answers in the person's language and nothing of it is kept. Replies come back as messages of
at most 4,096 characters with the choices as inline keyboards.

In groups (workshop mode) only commands for this bot, button presses, the bot being added,
and vote counts of its polls go to the engine; members' chatter never does. Telegram tells us
who is an admin of the group (asked at most every 5 minutes); the engine decides what that
allows.

Updates are processed one after another (PTB's default), and the engine runs in one worker
thread: SQLite and the embedding model are used from one thread per process, and the event
loop stays free to receive while an idea is being embedded. Each update's id goes to the
engine as its delivery key, so an update Telegram delivers again after a crash is answered
once. Outgoing calls pass PTB's rate limiter (30 messages/s overall, 20/min per group) from a
queue per chat (`Outbox`), so a group at its limit holds up no one else.
"""

import asyncio
import hashlib
import io
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

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
from telegram.error import BadRequest
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

from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.messages import Poll
from mitreden.identity import Pseudonymizer

CHANNEL = "telegram"
MAX_TEXT = 4096
MEDIA = ("photo", "sticker", "voice", "audio", "video", "video_note", "document", "location")
# The command menu is set per user language; German is also the default for everyone else.
MENU_LANGUAGES = {"de": "de", "en": "en"}
ADDRESSED = re.compile(r"^/\w+@(\w+)")
# How long a group's list of admins is trusted before it is asked for again. Every call that
# names a group counts against Telegram's 20 per minute for that group.
ADMINS_FOR_SECONDS = 300.0

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
    once; only that group's own messages queue up."""

    def __init__(self, send: Callable[[int, Outbound, Message | None], Awaitable[None]]) -> None:
        self._send = send
        self._queues: dict[int, asyncio.Queue[tuple[Outbound, Message | None]]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def put(self, chat_id: int, reply: Outbound, pressed: Message | None) -> None:
        if chat_id not in self._queues:
            self._queues[chat_id] = asyncio.Queue()
            self._tasks[chat_id] = asyncio.create_task(self._drain(chat_id))
        self._queues[chat_id].put_nowait((reply, pressed))

    async def _drain(self, chat_id: int) -> None:
        queue = self._queues[chat_id]
        while not queue.empty():
            reply, pressed = queue.get_nowait()
            try:
                await self._send(chat_id, reply, pressed)
            except Exception as err:  # one failed message must not silence the chat
                log.warning("telegram: sending failed: %s: %s", type(err).__name__, err)
        # Nothing was awaited since the queue was found empty, so nothing can be left behind.
        del self._queues[chat_id], self._tasks[chat_id]

    async def flush(self) -> None:
        """Wait until everything queued is sent (before stopping)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values())


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
    ) -> None:
        """`worker` is the engine's one thread, when other channels share the engine.

        Without `webhook`, updates come by long polling. With it (public https URL, host,
        port), Telegram posts them to a TLS proxy that forwards them to host:port; posts
        without `secret` in their header are refused. A webhook stays registered when we
        stop, so Telegram keeps what arrives meanwhile and posts it after a restart."""
        self.engine = engine
        self.webhook, self.secret = webhook, secret
        self.pseudonymizer = pseudonymizer
        self._own_worker = worker is None
        self._worker = worker or ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.buttons = ButtonValues()
        self.outbox = Outbox(self._send)
        self._admins: dict[int, tuple[float, frozenset[int]]] = {}
        builder = ApplicationBuilder().token(token).rate_limiter(AIORateLimiter())
        if api_base_url:
            base = api_base_url.rstrip("/")
            builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
        builder = builder.post_init(self._set_commands).post_stop(self._flush)
        self.app: Application = builder.build()
        # New messages only: an edit of an earlier message is not a new answer.
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        self.app.add_handler(MessageHandler(private & filters.TEXT, self._on_text))
        self.app.add_handler(CallbackQueryHandler(self._on_press))
        self.app.add_handler(
            MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, self._on_media)
        )
        groups = filters.ChatType.GROUPS & filters.UpdateType.MESSAGE
        self.app.add_handler(MessageHandler(groups & filters.COMMAND, self._on_group_command))
        self.app.add_handler(ChatMemberHandler(self._on_added, ChatMemberHandler.MY_CHAT_MEMBER))
        self.app.add_handler(PollHandler(self._on_poll))
        self.app.add_error_handler(self._on_error)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One line, without the update: it would carry what the resident wrote."""
        log.warning("telegram: %s: %s", type(context.error).__name__, context.error)

    async def _set_commands(self, app: Application) -> None:
        """At start-up: the command menus, and the bot's name for deep links."""
        self.buttons.bot_username = app.bot.username
        catalogue: Catalogue = self.engine.catalogue
        for language, code in MENU_LANGUAGES.items():
            menu = catalogue.entries(language, "command_menu")
            commands = [BotCommand(name, text) for name, text in menu.items()]
            await app.bot.set_my_commands(commands, language_code=code)
            menu = catalogue.entries(language, "group_command_menu")
            in_groups = [BotCommand(name, text) for name, text in menu.items()]
            scope = BotCommandScopeAllGroupChats()
            await app.bot.set_my_commands(in_groups, scope=scope, language_code=code)
            if language == "de":
                await app.bot.set_my_commands(commands)
                await app.bot.set_my_commands(in_groups, scope=scope)

    async def _in_engine(self, call: Callable[..., Any], *args: object) -> Any:
        """Run engine work in its one thread: SQLite and the model stay on that thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, call, *args)

    async def _handle(self, update: Update, inbound: Inbound) -> None:
        replies = await self._in_engine(self.engine.handle, inbound)
        chat_id = update.effective_chat.id
        pressed = update.callback_query.message if update.callback_query else None
        for reply in replies:
            self.outbox.put(int(reply.to) if reply.to else chat_id, reply, pressed)

    async def _flush(self, app: Application) -> None:
        await self.outbox.flush()

    async def _send(self, chat_id: int, reply: Outbound, pressed: Message | None = None) -> None:
        if reply.close_poll:
            try:
                await self.app.bot.stop_poll(chat_id, int(reply.close_poll))
            except BadRequest as err:  # closed by hand in Telegram, or deleted
                log.info("telegram: poll already closed: %s", err)
        keyboard = self.buttons.keyboard(reply)
        if reply.edit and pressed is not None and reply.to is None:
            text = split_text(reply.text)[0]
            await self.app.bot.edit_message_text(
                text, chat_id=chat_id, message_id=pressed.message_id, reply_markup=keyboard
            )
        elif reply.text:
            pieces = split_text(reply.text)
            for n, piece in enumerate(pieces):
                last = n == len(pieces) - 1
                await self.app.bot.send_message(
                    chat_id, piece, reply_markup=keyboard if last else None
                )
        if reply.poll is not None:
            await self._send_poll(chat_id, reply.poll)
        if reply.attachment is not None:
            document = InputFile(
                io.BytesIO(reply.attachment.content), filename=reply.attachment.filename
            )
            await self.app.bot.send_document(chat_id, document)

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

    def _inbound(self, update: Update, **fields: str | bool | None) -> Inbound:
        chat = update.effective_chat
        room = None
        if chat.type != chat.PRIVATE:
            room = self.pseudonymizer.participant(CHANNEL, f"chat:{chat.id}")
        return Inbound(
            CHANNEL,
            self.pseudonymizer.participant(CHANNEL, str(update.effective_user.id)),
            address=str(chat.id),
            key=str(update.update_id),
            room=room,
            **fields,
        )

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._handle(update, self._inbound(update, text=update.effective_message.text))

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer()
        if update.effective_chat is None:  # a button under an inline-mode message: not ours
            return
        await self._handle(update, self._inbound(update, choice=self.buttons.value(query.data)))

    async def _on_group_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        addressed = ADDRESSED.match(message.text or "")
        if addressed and addressed.group(1).casefold() != self.buttons.bot_username.casefold():
            return  # "/start@other_bot" is for another bot in the group
        if message.sender_chat is not None:  # an admin posting anonymously as the group
            admin = message.sender_chat.id == chat.id
        else:
            admin = update.effective_user.id in await self._admins_of(chat.id)
        await self._handle(update, self._inbound(update, text=message.text, room_admin=admin))

    async def _admins_of(self, chat_id: int) -> frozenset[int]:
        asked, admins = self._admins.get(chat_id, (float("-inf"), frozenset()))
        if time.monotonic() - asked > ADMINS_FOR_SECONDS:
            members = await self.app.bot.get_chat_administrators(chat_id)
            admins = frozenset(member.user.id for member in members)
            self._admins[chat_id] = (time.monotonic(), admins)
        return admins

    async def _on_added(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        was, now = change.old_chat_member.status, change.new_chat_member.status
        joined = was in (ChatMember.LEFT, ChatMember.BANNED) and now not in (
            ChatMember.LEFT,
            ChatMember.BANNED,
        )
        if joined and change.chat.type != change.chat.PRIVATE:
            await self._handle(update, self._inbound(update, event="added"))

    async def _on_poll(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        poll = update.poll
        counts = [option.voter_count for option in poll.options]
        await self._in_engine(self.engine.poll_counted, poll.id, counts)

    async def _on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        kind = media_kind(update.effective_message)
        await self._handle(update, self._inbound(update, media=kind))

    async def start(self, poll_timeout: int = 10) -> None:
        """Receive updates inside a running event loop, beside other channels."""
        await self.app.initialize()
        await self._set_commands(self.app)
        await self.app.start()
        if self.webhook is None:
            await self.app.updater.start_polling(
                timeout=poll_timeout, allowed_updates=Update.ALL_TYPES
            )
            return
        url, host, port = self.webhook
        await self.app.updater.start_webhook(
            listen=host,
            port=port,
            url_path=urlsplit(url).path.lstrip("/"),
            webhook_url=url,
            secret_token=self.secret,
            allowed_updates=Update.ALL_TYPES,
        )

    async def stop(self) -> None:
        """Stop receiving, finish the updates in hand and confirm them to Telegram."""
        await self.app.updater.stop()
        await self.app.stop()
        await self.outbox.flush()
        await self.app.shutdown()
        if self._own_worker:
            self._worker.shutdown(wait=True)
