"""The Telegram channel: python-telegram-bot's Application in front of the engine.

Private chats only for now: text and commands go to the engine as typed, a pressed inline
button as its value, and anything else (photo, voice, sticker, file, location) as `media`, so
the engine answers in the person's language and nothing of it is kept. Replies come back as
messages of at most 4,096 characters with the choices as inline keyboards.

Updates are processed one after another (PTB's default), and the engine runs in one worker
thread: SQLite and the embedding model are used from one thread per process, and the event
loop stays free to receive while an idea is being embedded. Each update's id goes to the
engine as its delivery key, so an update Telegram delivers again after a crash is answered
once. Outgoing calls pass PTB's rate limiter (30 messages/s overall, 20/min per group).
"""

import asyncio
import hashlib
import io
import logging
from concurrent.futures import ThreadPoolExecutor

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from mitreden.flows import Engine, Inbound, Outbound
from mitreden.flows.catalogue import Catalogue
from mitreden.identity import Pseudonymizer

CHANNEL = "telegram"
MAX_TEXT = 4096
MEDIA = ("photo", "sticker", "voice", "audio", "video", "video_note", "document", "location")
# The command menu is set per user language; German is also the default for everyone else.
MENU_LANGUAGES = {"de": "de", "en": "en"}

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
    After a restart such an old button reads as stale, and the engine asks again."""

    LIMIT = 64

    def __init__(self) -> None:
        self._long: dict[str, str] = {}

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
        return InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(c.label, callback_data=self.data(c.value))]
                for c in message.choices
            ]
        )


def media_kind(message: Message) -> str:
    return next((kind for kind in MEDIA if getattr(message, kind, None)), "other")


class TelegramChannel:
    def __init__(
        self,
        engine: Engine,
        pseudonymizer: Pseudonymizer,
        token: str,
        api_base_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.pseudonymizer = pseudonymizer
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.buttons = ButtonValues()
        builder = ApplicationBuilder().token(token).rate_limiter(AIORateLimiter())
        if api_base_url:
            base = api_base_url.rstrip("/")
            builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
        self.app: Application = builder.post_init(self._set_commands).build()
        # New messages only: an edit of an earlier message is not a new answer.
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        self.app.add_handler(MessageHandler(private & filters.TEXT, self._on_text))
        self.app.add_handler(CallbackQueryHandler(self._on_press))
        self.app.add_handler(
            MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, self._on_media)
        )
        self.app.add_error_handler(self._on_error)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One line, without the update: it would carry what the resident wrote."""
        log.warning("telegram: %s: %s", type(context.error).__name__, context.error)

    async def _set_commands(self, app: Application) -> None:
        catalogue: Catalogue = self.engine.catalogue
        for language, code in MENU_LANGUAGES.items():
            menu = catalogue.entries(language, "command_menu")
            commands = [BotCommand(name, text) for name, text in menu.items()]
            await app.bot.set_my_commands(commands, language_code=code)
            if language == "de":
                await app.bot.set_my_commands(commands)

    async def _handle(self, update: Update, inbound: Inbound) -> None:
        loop = asyncio.get_running_loop()
        replies = await loop.run_in_executor(self._worker, self.engine.handle, inbound)
        chat_id = update.effective_chat.id
        for reply in replies:
            await self._send(chat_id, reply)

    async def _send(self, chat_id: int, reply: Outbound) -> None:
        pieces = split_text(reply.text)
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            await self.app.bot.send_message(
                chat_id, piece, reply_markup=self.buttons.keyboard(reply) if last else None
            )
        if reply.attachment is not None:
            document = InputFile(
                io.BytesIO(reply.attachment.content), filename=reply.attachment.filename
            )
            await self.app.bot.send_document(chat_id, document)

    def _inbound(self, update: Update, **fields: str | None) -> Inbound:
        return Inbound(
            CHANNEL,
            self.pseudonymizer.participant(CHANNEL, str(update.effective_user.id)),
            address=str(update.effective_chat.id),
            key=str(update.update_id),
            **fields,
        )

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._handle(update, self._inbound(update, text=update.effective_message.text))

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer()
        if update.effective_chat is None or update.effective_chat.type != "private":
            return
        await self._handle(update, self._inbound(update, choice=self.buttons.value(query.data)))

    async def _on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        kind = media_kind(update.effective_message)
        await self._handle(update, self._inbound(update, media=kind))

    async def start(self, poll_timeout: int = 10) -> None:
        """Receive updates inside a running event loop, beside other work (and in tests)."""
        await self.app.initialize()
        await self._set_commands(self.app)
        await self.app.start()
        await self.app.updater.start_polling(timeout=poll_timeout, allowed_updates=Update.ALL_TYPES)

    async def stop(self) -> None:
        """Stop receiving, finish the updates in hand and confirm them to Telegram."""
        await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()
        self._worker.shutdown(wait=True)

    def run_polling(self) -> None:
        """Receive updates until interrupted (Ctrl-C, SIGTERM); offsets are confirmed on exit."""
        try:
            self.app.run_polling(allowed_updates=Update.ALL_TYPES)
        finally:
            self._worker.shutdown(wait=True)
