"""A Bot API stand-in that the real python-telegram-bot talks to over HTTP.

No Telegram server is reachable from tests and no maintained emulator exists, so the Telegram
adapter is tested against this one (DESIGN.md, "Real components in tests"). It speaks the wire
format PTB really uses -- form or multipart bodies whose nested fields are JSON strings -- and
answers with Telegram's own result and error shapes and limits, because a fake that accepts what
Telegram rejects hides bugs until the first real resident hits them. Methods it does not know
answer 404 and are listed in ``unknown_methods``, so a gap fails a test instead of passing quietly.

Updates reach the bot through ``getUpdates`` or, once ``setWebhook`` named an ``https://`` URL,
as JSON POSTs to that URL, oldest first, until it answers 2xx; failures are retried shortly after
and reported by ``getWebhookInfo``. A bot listens on plain HTTP behind a TLS-terminating proxy, so
:meth:`TelegramTestServer.tls_proxy` plays that proxy; a webhook host it does not cover does not
resolve, as an unknown host would not for Telegram.

Deliberate simplifications: HTML is the only ``parse_mode`` that is parsed into entities (Markdown
text is kept as sent), a webhook gets one update per request and one request at a time
(``max_connections`` is stored but not used), a method call in a webhook's answer is not carried
out (it is listed in ``unknown_methods``), and the bot sees every group message (as with privacy
mode off).
"""

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from telegram.ext import ApplicationBuilder

JSON = dict[str, Any]
ChatRef = Mapping[str, Any] | int

_LOGGER = logging.getLogger(__name__)

DEFAULT_TOKEN = "7000000001:AAHmitreden-test-token-not-a-secret"

# Limits as Telegram enforces them for Bot API 10.0, the version python-telegram-bot 22.8 speaks.
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_TEXT = 200
MIN_POLL_OPTIONS = 1  # Bot API 10.0 lowered this from 2 to 1
MAX_POLL_OPTIONS = 12  # Bot API 9.1 raised this from 10 to 12
MAX_POLL_QUESTION = 300
MAX_POLL_OPTION_TEXT = 100
MAX_COMMANDS = 100
# How long a webhook may take to answer before the delivery counts as failed.
WEBHOOK_TIMEOUT = 10.0


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# How PTB encodes values (telegram/request/_requestparameter.py): strings are sent raw, anything
# else as JSON (ints as "5", booleans as "true", objects and lists as JSON text). Telegram decodes
# per field, so a text that happens to read "true" or "[1]" stays a string; so do we.
_JSON_FIELDS = _names(
    "allowed_updates caption_entities commands correct_option_ids description_entities "
    "entities explanation_entities link_preview_options media options question_entities "
    "reply_markup reply_parameters scope"
)
_INT_FIELDS = _names(
    "cache_time close_date correct_option_id duration limit max_connections message_id "
    "message_thread_id offset open_period reply_to_message_id user_id"
)
_BOOL_FIELDS = _names(
    "allow_sending_without_reply allows_multiple_answers allows_revoting "
    "disable_content_type_detection disable_notification disable_web_page_preview "
    "drop_pending_updates is_anonymous is_closed members_only protect_content show_alert"
)
_CHAT_ACTIONS = _names(
    "typing upload_photo record_video upload_video record_voice upload_voice "
    "upload_document choose_sticker find_location record_video_note upload_video_note"
)
_INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
# Without allowed_updates Telegram sends every kind except these three.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_COMMAND_SCOPES = _names(
    "default all_private_chats all_group_chats all_chat_administrators chat "
    "chat_administrators chat_member"
)
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@/])")
_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_HTML_TAG_RE = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>"
)
_HTML_ATTR_RE = re.compile(r"([^\s=>]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")
_HTML_CHAR_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class ApiError(Exception):
    """A Bot API error, answered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description

    def body(self) -> JSON:
        return {"ok": False, "error_code": self.code, "description": self.description}


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class RecordedRequest:
    """One call the bot made; ``status`` is 0 when the client hung up before the answer."""

    method: str
    params: JSON
    at: float
    status: int = 0
    response: JSON | None = None


@dataclass
class StoredFile:
    """A file the bot uploaded or a resident sent, downloadable through ``getFile``."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    file_name: str | None = None
    mime_type: str | None = None


@dataclass
class _Upload:
    filename: str | None
    content: bytes
    content_type: str | None


@dataclass
class _Queued:
    update: JSON
    forced: bool = False  # redelivered: handed out once more even below the confirmed offset
    delivered: bool = False


@dataclass
class _Chat:
    chat: JSON
    statuses: dict[int, str]
    messages: dict[int, JSON] = field(default_factory=dict)
    bot_messages: list[int] = field(default_factory=list)
    next_message_id: int = 1


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _update_kind(update: Mapping[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


def _command_entities(text: str) -> list[JSON]:
    """Marks ``/command`` and ``/command@botname`` the way Telegram clients do."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group()),
        }
        for match in _COMMAND_RE.finditer(text)
    ]


def _parse_html(source: str) -> tuple[str, list[JSON]]:
    """Telegram's HTML parse mode: plain text plus entities with UTF-16 offsets."""
    out: list[str] = []
    position = 0
    stack: list[tuple[str, int, JSON]] = []
    entities: list[JSON] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "<":
            byte_offset = len(source[:index].encode())
            match = _HTML_TAG_RE.match(source, index)
            if match is None:
                raise _bad(f"can't parse entities: Unclosed start tag at byte offset {byte_offset}")
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name not in _HTML_ENTITY_TYPES:
                raise _bad(
                    f'can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                    f"{byte_offset}"
                )
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f'"</{stack[-1][0]}>"' if stack else "no end tag"
                    raise _bad(
                        f"can't parse entities: Unmatched end tag at byte offset {byte_offset}, "
                        f'expected {expected}, found "</{name}>"'
                    )
                tag, start, entity = stack.pop()
                inside_pre = bool(stack) and stack[-1][0] == "pre"
                if tag == "code" and inside_pre:
                    if "language" in entity:
                        stack[-1][2]["language"] = entity["language"]
                elif position > start and entity.get("type"):
                    entities.append({"offset": start, "length": position - start, **entity})
            else:
                attributes = {
                    key.lower(): next((v for v in values if v), "")
                    for key, *values in _HTML_ATTR_RE.findall(match.group(3))
                }
                entity = {"type": _HTML_ENTITY_TYPES[name]}
                if name == "span" and attributes.get("class") != "tg-spoiler":
                    raise _bad(
                        f'can\'t parse entities: Tag "span" must have class "tg-spoiler" at byte '
                        f"offset {byte_offset}"
                    )
                if name == "a":
                    if attributes.get("href"):
                        entity["url"] = attributes["href"]
                    else:
                        entity = {}
                if name == "blockquote" and "expandable" in attributes:
                    entity["type"] = "expandable_blockquote"
                if name == "code" and attributes.get("class", "").startswith("language-"):
                    entity["language"] = attributes["class"].removeprefix("language-")
                if name == "tg-emoji":
                    entity["custom_emoji_id"] = attributes.get("emoji-id", "")
                stack.append((name, position, entity))
            index = match.end()
            continue
        if char == "&" and (match := _HTML_CHAR_RE.match(source, index)):
            ref = match.group(1)
            if ref.startswith("#x"):
                decoded = chr(int(ref[2:], 16))
            elif ref.startswith("#"):
                decoded = chr(int(ref[1:]))
            else:
                decoded = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}[ref]
            out.append(decoded)
            position += _utf16_len(decoded)
            index = match.end()
            continue
        out.append(char)
        position += _utf16_len(char)
        index += 1
    if stack:
        raise _bad(
            f"can't parse entities: Can't find end tag corresponding to start tag "
            f'"{stack[-1][0]}"'
        )
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _strip(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Telegram trims surrounding whitespace and moves entities along with the text."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = _utf16_len(text[: len(text) - len(text.lstrip())])
    end_limit = _utf16_len(stripped)
    moved = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] - shift + entity["length"], end_limit)
        if end > start:
            moved.append({**entity, "offset": start, "length": end - start})
    return stripped, moved


def _scope_key(scope: Any) -> str:
    """``default``, ``all_private_chats``, ``chat:<id>``, ``chat_member:<chat>:<user>`` ..."""
    if scope is None:
        return "default"
    if not isinstance(scope, dict) or scope.get("type") not in _COMMAND_SCOPES:
        raise _bad("can't parse BotCommandScope JSON object")
    parts = [scope["type"]]
    if "chat_id" in scope:
        parts.append(str(scope["chat_id"]))
    if "user_id" in scope:
        parts.append(str(scope["user_id"]))
    return ":".join(parts)


class TelegramTestServer:
    """An aiohttp Bot API server on 127.0.0.1 plus the residents' side of Telegram.

    Point PTB at it with :meth:`application_builder` (or ``base_url(f"{url}/bot")`` and
    ``base_file_url(f"{url}/file/bot")``). Test code plays residents with :meth:`send_text`,
    :meth:`press`, :meth:`vote` and friends, and reads what the bot did through :meth:`sent`,
    :meth:`wait_for_reply`, :attr:`requests` and :attr:`unknown_methods`. A bot on a webhook also
    needs :meth:`tls_proxy` to be reachable; ``webhook_retry_delay`` is the pause before a failed
    delivery is tried again (Telegram waits longer; tests should not).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "mitreden_test_bot",
        bot_first_name: str = "Mitreden",
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_retry_delay: float = 0.2,
    ) -> None:
        self.token = token
        self.webhook_retry_delay = webhook_retry_delay
        self.host = host
        self.port = port
        self.url = ""
        self.bot: JSON = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.requests: list[RecordedRequest] = []
        self.unknown_methods: list[str] = []
        self.webhook: JSON = {"url": ""}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.files: dict[str, StoredFile] = {}
        self.callback_answers: dict[str, JSON] = {}
        self.edits: list[JSON] = []
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, JSON] = {}
        self._queue: list[_Queued] = []
        self._history: dict[int, JSON] = {}
        self._callback_queries: dict[str, JSON] = {}
        self._votes: dict[str, dict[int, list[int]]] = {}
        self._reply_cursor: dict[int, int] = {}
        self._allowed_updates: frozenset[str] | None = None
        self._proxies: dict[str, str] = {}
        self._webhook_error: tuple[int, str] | None = None
        self._unproxied: set[str] = set()
        self._update_ids = itertools.count(700_000_001)
        self._user_ids = itertools.count(5_000_000_001)
        self._group_ids = itertools.count(1)
        self._serial = itertools.count(1)
        self._poll_generation = 0
        self._closing = False
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._methods: dict[str, Callable[[JSON, dict[str, _Upload]], Any]] = {
            name.lower(): handler
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "sendDocument": self._send_document,
                "sendPoll": self._send_poll,
                "stopPoll": self._stop_poll,
                "getChat": self._get_chat,
                "getChatMember": self._get_chat_member,
                "getChatAdministrators": self._get_chat_administrators,
                "getFile": self._get_file,
                "close": self._ok,
                "logOut": self._ok,
            }.items()
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a long poll whose client went away stops instead of lingering.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"
        self._closing = False
        # One session for all webhook posts; the pusher idles until a webhook is set.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT))
        self._pusher = asyncio.create_task(self._push_updates(), name="telegram-webhook-pusher")

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        await self._stop_pushing()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stop_pushing(self) -> None:
        """Cancels the pusher, even mid-post, and re-raises what it died of if it crashed."""
        pusher, self._pusher = self._pusher, None
        if pusher is None:
            return
        pusher.cancel()
        # asyncio.wait, unlike awaiting the task, lets a cancellation of stop() itself through.
        await asyncio.wait([pusher])
        if not pusher.cancelled() and (error := pusher.exception()) is not None:
            raise error

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def application_builder(self) -> "ApplicationBuilder":
        """A PTB ``ApplicationBuilder`` with this server's token and URLs already set."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(f"{self.url}/bot")
            .base_file_url(f"{self.url}/file/bot")
        )

    def tls_proxy(self, public_prefix: str, local_prefix: str) -> None:
        """Plays the TLS-terminating reverse proxy in front of a bot's plain-HTTP webhook server.

        Telegram posts only to ``https://`` URLs, while PTB's webhook server (like most bots)
        listens on plain HTTP behind such a proxy. Webhook URLs that start with ``public_prefix``
        (``"https://bot.example.org"``) are posted to ``local_prefix`` plus the rest of the URL
        (``"http://127.0.0.1:8443"``); the longest matching prefix wins.
        """
        if not public_prefix.startswith("https://") or len(public_prefix) <= len("https://"):
            raise ValueError(f"public_prefix must be an https:// URL, not {public_prefix!r}")
        if not local_prefix.startswith(("http://", "https://")):
            raise ValueError(f"local_prefix must be an http(s):// URL, not {local_prefix!r}")
        self._proxies[public_prefix.rstrip("/")] = local_prefix.rstrip("/")
        self._notify()

    # ----------------------------------------------------------------- residents' side

    def user(
        self,
        first_name: str,
        language_code: str | None = "de",
        username: str | None = None,
        *,
        last_name: str | None = None,
    ) -> JSON:
        user: JSON = {"id": next(self._user_ids), "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user["id"]] = user
        return copy.deepcopy(user)

    def private_chat(self, user: Mapping[str, Any]) -> JSON:
        """The chat a resident opens with the bot; before it the bot cannot write to them."""
        if user["id"] not in self._chats:
            chat: JSON = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    chat[key] = user[key]
            statuses = {user["id"]: "member", self.bot["id"]: "member"}
            self._chats[user["id"]] = _Chat(chat=chat, statuses=statuses)
        return copy.deepcopy(self._chats[user["id"]].chat)

    def group_chat(
        self,
        title: str,
        members: Iterable[Mapping[str, Any]] = (),
        admins: Iterable[Mapping[str, Any]] = (),
        *,
        creator: Mapping[str, Any] | None = None,
        type: str = "supergroup",
        bot_status: str = "member",
    ) -> JSON:
        """A group with the bot in it; ``admins`` are administrators, ``creator`` the owner."""
        if type not in ("group", "supergroup"):
            raise ValueError(f"group type must be 'group' or 'supergroup', not {type!r}")
        serial = next(self._group_ids)
        chat_id = (
            -(1_002_000_000_000 + serial) if type == "supergroup" else -(4_000_000_000 + serial)
        )
        statuses: dict[int, str] = {self.bot["id"]: bot_status}
        for member in members:
            statuses[member["id"]] = "member"
        for admin in admins:
            statuses[admin["id"]] = "administrator"
        if creator is not None:
            statuses[creator["id"]] = "creator"
        chat = {"id": chat_id, "type": type, "title": title}
        self._chats[chat_id] = _Chat(chat=chat, statuses=statuses)
        return copy.deepcopy(chat)

    def send_text(
        self,
        chat: ChatRef,
        user: Mapping[str, Any],
        text: str,
        *,
        reply_to: Mapping[str, Any] | None = None,
    ) -> JSON:
        content: JSON = {"text": text}
        if entities := _command_entities(text):
            content["entities"] = entities
        return self._resident_message(chat, user, content, reply_to=reply_to)

    def send_photo(
        self, chat: ChatRef, user: Mapping[str, Any], *, caption: str | None = None
    ) -> JSON:
        sizes = []
        for width, height in ((90, 67), (320, 240), (1280, 960)):
            stored = self._store_file(b"\xff\xd8\xff" + bytes(width), "photos", "jpg", None, None)
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": width,
                    "height": height,
                    "file_size": len(stored.content),
                }
            )
        content: JSON = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return self._resident_message(chat, user, content)

    def send_sticker(self, chat: ChatRef, user: Mapping[str, Any], *, emoji: str = "👍") -> JSON:
        stored = self._store_file(b"RIFF0000WEBP", "stickers", "webp", None, "image/webp")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": emoji,
            "file_size": len(stored.content),
        }
        return self._resident_message(chat, user, {"sticker": sticker})

    def send_voice(
        self,
        chat: ChatRef,
        user: Mapping[str, Any],
        *,
        duration: int = 3,
        content: bytes = b"OggS\x00\x02" + bytes(64),
    ) -> JSON:
        stored = self._store_file(content, "voice", "oga", None, "audio/ogg")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(content),
        }
        return self._resident_message(chat, user, {"voice": voice})

    def send_document(
        self,
        chat: ChatRef,
        user: Mapping[str, Any],
        *,
        file_name: str = "idee.pdf",
        content: bytes = b"%PDF-1.4\n%mitreden\n",
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> JSON:
        stored = self._store_file(content, "documents", None, file_name, mime_type)
        message: JSON = {"document": self._document(stored)}
        if caption:
            message["caption"] = caption
        return self._resident_message(chat, user, message)

    def send_location(
        self,
        chat: ChatRef,
        user: Mapping[str, Any],
        *,
        latitude: float = 52.520008,
        longitude: float = 13.404954,
    ) -> JSON:
        location = {"latitude": latitude, "longitude": longitude}
        return self._resident_message(chat, user, {"location": location})

    def press(
        self,
        chat: ChatRef,
        user: Mapping[str, Any],
        message: Mapping[str, Any],
        callback_data: str,
    ) -> JSON:
        """Presses an inline button that is on ``message`` now; returns the CallbackQuery."""
        state = self._chat_state(chat)
        self._check_member(state, user)
        current = state.messages.get(message["message_id"])
        if current is None:
            raise ValueError(f"no message {message['message_id']} in chat {state.chat['id']}")
        rows = (current.get("reply_markup") or {}).get("inline_keyboard", [])
        offered = [button.get("callback_data") for row in rows for button in row]
        if callback_data not in offered:
            raise ValueError(
                f"message {current['message_id']} has no button with callback_data "
                f"{callback_data!r}; it offers {offered}"
            )
        query = {
            "id": str(next(self._serial) * 1_000_003),
            "from": copy.deepcopy(dict(user)),
            "message": self._api_view(current),
            "chat_instance": str(abs(state.chat["id"]) * 7919 % 10**18),
            "data": callback_data,
        }
        self._callback_queries[query["id"]] = query
        self._enqueue({"callback_query": query})
        return copy.deepcopy(query)

    def vote(
        self, poll_message: Mapping[str, Any], user: Mapping[str, Any], option_ids: Iterable[int]
    ) -> JSON:
        """A resident (re)votes; ``[]`` retracts. Returns the poll as it stands afterwards."""
        state = self._chat_state(poll_message["chat"]["id"])
        self._check_member(state, user)
        message = state.messages.get(poll_message["message_id"])
        if message is None or "poll" not in message:
            raise ValueError(f"message {poll_message['message_id']} is not a poll")
        poll = message["poll"]
        choice = sorted(set(option_ids))
        if poll["is_closed"]:
            raise ValueError("the poll is closed")
        if len(choice) > 1 and not poll["allows_multiple_answers"]:
            raise ValueError("the poll allows one answer only")
        if any(not 0 <= option < len(poll["options"]) for option in choice):
            raise ValueError(f"option ids {choice} out of range")
        votes = self._votes.setdefault(poll["id"], {})
        if user["id"] in votes and not poll.get("allows_revoting", True):
            raise ValueError("the poll does not allow changing a vote")
        if choice:
            votes[user["id"]] = choice
        else:
            votes.pop(user["id"], None)
        for index, option in enumerate(poll["options"]):
            option["voter_count"] = sum(index in chosen for chosen in votes.values())
        poll["total_voter_count"] = len(votes)
        if not poll["is_anonymous"]:
            answer = {
                "poll_id": poll["id"],
                "user": copy.deepcopy(dict(user)),
                "option_ids": choice,
                "option_persistent_ids": [poll["options"][i]["persistent_id"] for i in choice],
            }
            self._enqueue({"poll_answer": answer})
        # Bots get the new state of every poll they sent.
        self._enqueue({"poll": copy.deepcopy(poll)})
        return copy.deepcopy(poll)

    def deliver(self, update: Mapping[str, Any]) -> JSON:
        """Queues a raw Update; ``update_id`` is assigned when missing."""
        queued = copy.deepcopy(dict(update))
        if "update_id" in queued:
            self._update_ids = itertools.count(max(queued["update_id"] + 1, next(self._update_ids)))
            self._history[queued["update_id"]] = copy.deepcopy(queued)
            self._insert(_Queued(queued))
            return copy.deepcopy(queued)
        return self._enqueue(queued)

    def redeliver(self, update_id: int) -> JSON:
        """Hands an already delivered update out once more with the same ``update_id``."""
        if update_id not in self._history:
            raise ValueError(f"update {update_id} was never delivered")
        update = copy.deepcopy(self._history[update_id])
        self._insert(_Queued(update, forced=True))
        return copy.deepcopy(update)

    # ----------------------------------------------------------------- reading what the bot did

    def sent(self, chat: ChatRef) -> list[JSON]:
        """Bot messages in that chat, oldest first, as they stand now (edits applied)."""
        state = self._chat_state(chat)
        return [copy.deepcopy(state.messages[mid]) for mid in state.bot_messages]

    def message(self, chat: ChatRef, message_id: int) -> JSON:
        return copy.deepcopy(self._chat_state(chat).messages[message_id])

    def commands_for(
        self, language_code: str = "", scope: Mapping[str, Any] | None = None
    ) -> list[JSON]:
        return copy.deepcopy(self.commands.get((_scope_key(scope), language_code), []))

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a ``getUpdates`` offset or a webhook's 2xx answer."""
        return len(self._queue)

    def webhook_info(self) -> JSON:
        """What ``getWebhookInfo`` answers now; synchronous, so :meth:`wait_until` can poll it."""
        if self.webhook["url"]:
            self._drop_unwanted()
        info: JSON = {
            "url": self.webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        for key in ("allowed_updates", "max_connections", "ip_address"):
            if key in self.webhook:
                info[key] = copy.deepcopy(self.webhook[key])
        return info

    @property
    def errors(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.status >= 400]

    async def wait_for_reply(
        self, chat: ChatRef, count: int = 1, timeout: float = 10.0
    ) -> list[JSON]:
        """The next ``count`` bot messages in ``chat`` after those returned by earlier calls."""
        state = self._chat_state(chat)
        chat_id = state.chat["id"]
        start = self._reply_cursor.get(chat_id, 0)
        want = start + count
        try:
            await self._wait(lambda: len(state.bot_messages) >= want, timeout)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} new bot message(s) in chat {chat_id} within {timeout}s, got "
                f"{len(state.bot_messages) - start}.\n{self._describe(state, start)}"
            ) from None
        self._reply_cursor[chat_id] = want
        return [copy.deepcopy(state.messages[mid]) for mid in state.bot_messages[start:want]]

    async def wait_until(
        self, predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Waits until ``predicate()`` holds; checked on each request and update and every 20 ms."""
        try:
            await self._wait(predicate, timeout)
        except TimeoutError:
            recent = [f"{r.method} -> {r.status}" for r in self.requests[-10:]]
            raise AssertionError(
                f"{what} not reached within {timeout}s; last requests: {recent}; "
                f"unknown methods: {self.unknown_methods}{self._webhook_state()}"
            ) from None

    # ----------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        record = RecordedRequest(method=method, params={}, at=time.monotonic())
        self.requests.append(record)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params, uploads = await self._read_params(request)
            record.params = {
                **params,
                **{
                    name: {"filename": upload.filename, "size": len(upload.content)}
                    for name, upload in uploads.items()
                },
            }
            handler = self._methods.get(method.lower())
            if handler is None:
                self.unknown_methods.append(method)
                _LOGGER.warning("Bot API test server: unknown method %s(%s)", method, params)
                raise ApiError(404, f"Not Found: method {method}")
            body: JSON = {"ok": True, "result": await handler(params, uploads)}
            status = 200
        except ApiError as error:
            body, status = error.body(), error.code
        record.status, record.response = status, body
        self._notify()
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        path = request.match_info["path"]
        stored = next((f for f in self.files.values() if f.file_path == path), None)
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        self._notify()
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    async def _read_params(self, request: web.Request) -> tuple[JSON, dict[str, _Upload]]:
        raw: dict[str, str] = dict(request.query)
        uploads: dict[str, _Upload] = {}
        typed: JSON = {}
        if request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _bad("can't parse JSON encoded request") from None
                if not isinstance(body, dict):
                    raise _bad("can't parse JSON encoded request")
                typed = body
            else:
                form = await request.post()
                for name, value in form.items():
                    if isinstance(value, web.FileField):
                        uploads[name] = _Upload(
                            value.filename, value.file.read(), value.content_type
                        )
                    elif isinstance(value, bytes):
                        raw[name] = value.decode()
                    else:
                        raw[name] = value
        params = {name: self._decode(name, value) for name, value in raw.items()}
        params.update(typed)
        return params, uploads

    @staticmethod
    def _decode(name: str, value: str) -> Any:
        if name in _JSON_FIELDS:
            try:
                return json.loads(value)
            except ValueError:
                raise _bad(f"can't parse {name} JSON object") from None
        if name == "timeout":  # PTB sends a float for a fractional timedelta
            try:
                return float(value)
            except ValueError:
                raise _bad("wrong parameter timeout specified") from None
        if name in _INT_FIELDS or name == "chat_id":
            try:
                return int(value)
            except ValueError:
                if name == "chat_id":
                    return value  # "@channelusername"
                raise _bad(f"wrong parameter {name} specified") from None
        if name in _BOOL_FIELDS:
            return value.strip().lower() in ("true", "1")
        return value

    # ----------------------------------------------------------------- internals

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, predicate: Callable[[], object], timeout: float) -> None:
        # Woken by every request and update; the short slice also catches predicates on state
        # the server never sees change (a handler appending to a list after its last request).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.02))

    def _enqueue(self, payload: JSON) -> JSON:
        update = {"update_id": next(self._update_ids), **payload}
        self._history[update["update_id"]] = copy.deepcopy(update)
        self._insert(_Queued(update))
        return copy.deepcopy(update)

    def _insert(self, queued: _Queued) -> None:
        self._queue.append(queued)
        self._queue.sort(key=lambda entry: entry.update["update_id"])
        self._notify()

    # ----------------------------------------------------------------- webhook delivery

    async def _push_updates(self) -> None:
        """Telegram's side of a webhook: the oldest update, one at a time, until a 2xx answer."""
        while not self._closing:
            changed = self._changed
            entry = self._next_push()
            if entry is None:
                await changed.wait()
                continue
            if await self._push(entry):
                # By identity: a redelivered copy with the same update_id may also be queued.
                self._queue = [queued for queued in self._queue if queued is not entry]
            else:
                await asyncio.sleep(self.webhook_retry_delay)
            self._notify()

    def _next_push(self) -> _Queued | None:
        if not self.webhook["url"]:
            return None
        self._drop_unwanted()
        return self._queue[0] if self._queue else None

    async def _push(self, entry: _Queued) -> bool:
        """Posts one update; False (with the error recorded) when it must stay queued."""
        assert self._session is not None
        url = self.webhook["url"]
        target = self._through_proxy(url)
        if target is None:
            return self._webhook_failed("Failed to resolve host: Name or service not known")
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(self.webhook["secret_token"])
        try:
            async with self._session.post(
                target, data=json.dumps(entry.update).encode(), headers=headers
            ) as response:
                answer = await response.read()
        except TimeoutError:
            return self._webhook_failed("Read timeout expired")
        except aiohttp.ClientConnectorDNSError:
            return self._webhook_failed("Failed to resolve host: Name or service not known")
        except aiohttp.ClientConnectorError:
            return self._webhook_failed("Connection refused")
        except aiohttp.ClientError:
            return self._webhook_failed("Connection reset by peer")
        if not 200 <= response.status < 300:
            return self._webhook_failed(
                f"Wrong response from the webhook: {response.status} {response.reason}"
            )
        self._check_webhook_answer(response.content_type, answer)
        return True

    def _through_proxy(self, url: str) -> str | None:
        """Where :meth:`tls_proxy` sends ``url``; None when no proxy covers its host."""
        matches = [
            prefix
            for prefix in self._proxies
            if url.startswith(prefix) and url[len(prefix) : len(prefix) + 1] in ("", "/", "?")
        ]
        if not matches:
            if url not in self._unproxied:
                self._unproxied.add(url)
                _LOGGER.warning(
                    "Bot API test server: no tls_proxy covers webhook %s, so it is unreachable",
                    url,
                )
            return None
        prefix = max(matches, key=len)
        return self._proxies[prefix] + url[len(prefix) :]

    def _webhook_failed(self, message: str) -> bool:
        self._webhook_error = (int(time.time()), message)
        return False

    def _check_webhook_answer(self, content_type: str, answer: bytes) -> None:
        """A bot may answer a webhook with one method call; that is not emulated, so say so."""
        if content_type != "application/json":
            return
        with contextlib.suppress(ValueError):
            body = json.loads(answer)
            if isinstance(body, dict) and isinstance(body.get("method"), str):
                self.unknown_methods.append(f"{body['method']} (in a webhook answer)")
                _LOGGER.warning(
                    "Bot API test server: method %s in a webhook answer is not carried out",
                    body["method"],
                )

    def _chat_state(self, chat: ChatRef) -> _Chat:
        chat_id = chat if isinstance(chat, int) else chat["id"]
        if chat_id not in self._chats:
            raise ValueError(f"unknown chat {chat_id}; create it with private_chat/group_chat")
        return self._chats[chat_id]

    @staticmethod
    def _check_member(state: _Chat, user: Mapping[str, Any]) -> None:
        if state.statuses.get(user["id"], "left") in ("left", "kicked"):
            raise ValueError(f"user {user['id']} is not a member of chat {state.chat['id']}")

    def _new_message(self, state: _Chat, sender: Mapping[str, Any], content: JSON) -> JSON:
        message = {
            "message_id": state.next_message_id,
            "from": copy.deepcopy(dict(sender)),
            "date": int(time.time()),
            "chat": copy.deepcopy(state.chat),
            **content,
        }
        state.next_message_id += 1
        state.messages[message["message_id"]] = message
        return message

    def _resident_message(
        self,
        chat: ChatRef,
        user: Mapping[str, Any],
        content: JSON,
        *,
        reply_to: Mapping[str, Any] | None = None,
    ) -> JSON:
        state = self._chat_state(chat)
        self._check_member(state, user)
        if reply_to is not None:
            content["reply_to_message"] = self._api_view(
                state.messages[reply_to["message_id"]], nested=True
            )
        message = self._new_message(state, user, content)
        self._enqueue({"message": self._api_view(message)})
        return copy.deepcopy(message)

    @staticmethod
    def _api_view(message: Mapping[str, Any], *, nested: bool = False) -> JSON:
        """The Message as the Bot API returns it: only inline keyboards are part of it."""
        view = copy.deepcopy(dict(message))
        markup = view.get("reply_markup")
        if markup is not None and "inline_keyboard" not in markup:
            del view["reply_markup"]
        if nested:
            view.pop("reply_to_message", None)
        return view

    def _describe(self, state: _Chat, start: int) -> str:
        lines = []
        for index, mid in enumerate(state.bot_messages):
            message = state.messages[mid]
            marker = "new " if index >= start else "old "
            body = (
                message.get("text")
                or message.get("caption")
                or (message.get("poll") or {}).get("question")
                or (message.get("document") or {}).get("file_name")
                or "?"
            )
            buttons = [
                button.get("text")
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                for button in row
            ]
            lines.append(f"  {marker}#{mid}: {body!r}" + (f" buttons={buttons}" if buttons else ""))
        failed = [
            f"  {r.method} -> {r.status} {(r.response or {}).get('description')}"
            for r in self.errors
            if r.params.get("chat_id") in (state.chat["id"], str(state.chat["id"]))
        ]
        text = "Bot messages in this chat:\n" + ("\n".join(lines) or "  (none)")
        if failed:
            text += "\nFailed requests for this chat:\n" + "\n".join(failed)
        if self.unknown_methods:
            text += f"\nUnknown methods called: {self.unknown_methods}"
        return text + self._webhook_state()

    def _webhook_state(self) -> str:
        """For failure messages: a reply that never came may be an update stuck at a webhook."""
        if not self.webhook["url"]:
            return ""
        error = self._webhook_error[1] if self._webhook_error else "none"
        return (
            f"\nWebhook {self.webhook['url']}: {len(self._queue)} update(s) pending, "
            f"last error: {error}"
        )

    def _store_file(
        self,
        content: bytes,
        folder: str,
        extension: str | None,
        file_name: str | None,
        mime_type: str | None,
    ) -> StoredFile:
        serial = next(self._serial)
        suffix = extension or (
            file_name.rsplit(".", 1)[-1] if file_name and "." in file_name else ""
        )
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{serial:08d}",
            file_unique_id=f"AgAD{serial:06d}",
            file_path=f"{folder}/file_{serial}" + (f".{suffix}" if suffix else ""),
            content=content,
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        return stored

    @staticmethod
    def _document(stored: StoredFile) -> JSON:
        document: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return document

    def _target_chat(self, params: JSON) -> _Chat:
        """The chat a bot call names, with Telegram's errors when it can't write there."""
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str):
            name = chat_id.removeprefix("@")
            found = next((c for c in self._chats.values() if c.chat.get("username") == name), None)
            if found is None:
                raise _bad("chat not found")
            return found
        state = self._chats.get(chat_id)
        if state is None:
            if chat_id in self._users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise _bad("chat not found")
        if state.statuses.get(self.bot["id"], "left") in ("left", "kicked"):
            raise ApiError(403, "Forbidden: bot is not a member of the group chat")
        return state

    @staticmethod
    def _format(
        text: Any, parse_mode: Any, entities: Any, *, limit: int, what: str
    ) -> tuple[str, list[JSON]]:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if entities is not None:
            if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
                raise _bad("can't parse entities JSON object")
            parsed = [dict(entity) for entity in entities]
        elif isinstance(parse_mode, str) and parse_mode.lower() == "html":
            text, parsed = _parse_html(text)
        else:
            parsed = []
        text, parsed = _strip(text, parsed)
        if what == "message text" and not text:
            raise _bad("message text is empty")
        if len(text) > limit:
            raise _bad(
                "message is too long" if what == "message text" else "message caption is too long"
            )
        return text, parsed

    @staticmethod
    def _check_markup(markup: Any, *, inline_only: bool = False) -> JSON | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            for button in itertools.chain.from_iterable(rows):
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise _bad(
                        'can\'t parse inline keyboard button: Field "text" must be of type String'
                    )
                if not button["text"]:
                    raise _bad("BUTTON_TEXT_EMPTY")
                actions = [key for key in _INLINE_BUTTON_ACTIONS if key in button]
                if len(actions) != 1:
                    raise _bad(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard"
                    )
                if "callback_data" in button:
                    data = button["callback_data"]
                    if (
                        not isinstance(data, str)
                        or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
                    ):
                        raise _bad("BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"(https?|tg)://\S+$", str(button["url"])):
                    raise _bad("BUTTON_URL_INVALID")
            return markup
        if inline_only:
            raise _bad("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
            for button in itertools.chain.from_iterable(rows):
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise _bad("can't parse keyboard button: Text must be non-empty")
            return markup
        if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
            return markup
        raise _bad("can't parse reply keyboard markup JSON object")

    def _reply_target(self, state: _Chat, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters")
        if reply is None and "reply_to_message_id" in params:
            reply = {"message_id": params["reply_to_message_id"]}
        if reply is None:
            return None
        if not isinstance(reply, dict) or not isinstance(reply.get("message_id"), int):
            raise _bad("can't parse reply parameters JSON object")
        target = state.messages.get(reply["message_id"])
        if target is None:
            if reply.get("allow_sending_without_reply") or params.get(
                "allow_sending_without_reply"
            ):
                return None
            raise _bad("message to be replied not found")
        return self._api_view(target, nested=True)

    def _bot_send(self, state: _Chat, params: JSON, content: JSON, markup: JSON | None) -> JSON:
        reply = self._reply_target(state, params)
        if reply is not None:
            content["reply_to_message"] = reply
        if params.get("protect_content"):
            content["has_protected_content"] = True
        if markup is not None:
            content["reply_markup"] = markup
        message = self._new_message(state, self.bot, content)
        state.bot_messages.append(message["message_id"])
        return self._api_view(message)

    def _bot_message(self, params: JSON) -> tuple[_Chat, JSON]:
        if "inline_message_id" in params:
            raise _bad("MESSAGE_ID_INVALID")  # inline-mode messages are not emulated
        state = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad("message identifier is not specified")
        message = state.messages.get(message_id)
        if message is None:
            raise _bad("message to edit not found")
        if message["from"]["id"] != self.bot["id"]:
            raise _bad("message can't be edited")
        return state, message

    def _record_edit(self, state: _Chat, method: str, message: JSON) -> JSON:
        message["edit_date"] = int(time.time())
        self.edits.append(
            {
                "method": method,
                "chat_id": state.chat["id"],
                "message_id": message["message_id"],
                "message": copy.deepcopy(message),
            }
        )
        return self._api_view(message)

    # ----------------------------------------------------------------- Bot API methods

    async def _ok(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        return True

    async def _get_me(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return {
            **self.bot,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSON, uploads: dict[str, _Upload]) -> list[JSON]:
        if self.webhook["url"]:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        limit = min(max(int(params.get("limit", 100)), 1), 100)
        timeout = max(float(params.get("timeout", 0)), 0.0)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            self._allowed_updates = frozenset(allowed) if allowed else None
        self._confirm(offset)
        # A newer getUpdates ends an older one still waiting, as Telegram does for two pollers.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            if self.webhook["url"]:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            batch = self._take(limit)
            if batch or self._closing:
                return batch
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _confirm(self, offset: Any) -> None:
        if not isinstance(offset, int):
            return
        if offset < 0:
            self._queue = self._queue[offset:]
        else:
            self._queue = [
                entry
                for entry in self._queue
                if entry.update["update_id"] >= offset or (entry.forced and not entry.delivered)
            ]

    def _drop_unwanted(self) -> None:
        """Telegram never creates updates of kinds the bot did not ask for."""

        def wanted(entry: _Queued) -> bool:
            kind = _update_kind(entry.update)
            if self._allowed_updates is None:
                return kind not in _OPT_IN_UPDATES
            return kind in self._allowed_updates

        self._queue = [entry for entry in self._queue if wanted(entry)]

    def _take(self, limit: int) -> list[JSON]:
        self._drop_unwanted()
        batch = self._queue[:limit]
        for entry in batch:
            entry.delivered = True
        return [copy.deepcopy(entry.update) for entry in batch]

    async def _set_webhook(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        url = params.get("url", "")
        if url and not str(url).startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if params.get("drop_pending_updates"):
            self._queue.clear()
        # One setting for the bot, shared with getUpdates; left as it was when not given.
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            self._allowed_updates = frozenset(allowed) if allowed else None
        self.webhook = {"url": url}
        for key in ("allowed_updates", "max_connections", "secret_token", "ip_address"):
            if key in params:
                self.webhook[key] = params[key]
        self._webhook_error = None
        return True

    async def _delete_webhook(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook = {"url": ""}
        self._webhook_error = None
        return True

    async def _get_webhook_info(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return self.webhook_info()

    def _commands_key(self, params: JSON) -> tuple[str, str]:
        language = params.get("language_code", "") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise _bad("LANGUAGE_CODE_INVALID")
        scope = params.get("scope")
        key = _scope_key(scope)
        if isinstance(scope, dict) and "chat_id" in scope:
            self._target_chat({"chat_id": scope["chat_id"]})
        return key, language

    async def _set_my_commands(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > MAX_COMMANDS:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_NAME_RE.fullmatch(
                str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params)
        if commands:
            self.commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self.commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: JSON, uploads: dict[str, _Upload]) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _send_message(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state = self._target_chat(params)
        text, entities = self._format(
            params.get("text"),
            params.get("parse_mode"),
            params.get("entities"),
            limit=MAX_TEXT,
            what="message text",
        )
        markup = self._check_markup(params.get("reply_markup"))
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        if isinstance(params.get("link_preview_options"), dict):
            content["link_preview_options"] = params["link_preview_options"]
        return self._bot_send(state, params, content, markup)

    async def _edit_message_text(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state, message = self._bot_message(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        text, entities = self._format(
            params.get("text"),
            params.get("parse_mode"),
            params.get("entities"),
            limit=MAX_TEXT,
            what="message text",
        )
        markup = self._check_markup(params.get("reply_markup"), inline_only=True)
        if (
            text == message["text"]
            and entities == message.get("entities", [])
            and markup == message.get("reply_markup")
        ):
            raise _bad(_NOT_MODIFIED)
        message["text"] = text
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        # Telegram drops the inline keyboard when an edit does not repeat it.
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        return self._record_edit(state, "editMessageText", message)

    async def _edit_message_reply_markup(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state, message = self._bot_message(params)
        markup = self._check_markup(params.get("reply_markup"), inline_only=True)
        if markup == message.get("reply_markup"):
            raise _bad(_NOT_MODIFIED)
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        return self._record_edit(state, "editMessageReplyMarkup", message)

    async def _answer_callback_query(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        query_id = params.get("callback_query_id")
        if query_id not in self._callback_queries or query_id in self.callback_answers:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text", ""))) > MAX_CALLBACK_ANSWER_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = {
            key: value for key, value in params.items() if key != "callback_query_id"
        }
        return True

    async def _send_chat_action(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _send_document(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state = self._target_chat(params)
        document = params.get("document")
        if isinstance(document, str) and document.startswith("attach://"):
            upload = uploads.get(document.removeprefix("attach://"))
        else:
            upload = uploads.get("document")
        if upload is not None:
            stored = self._store_file(
                upload.content, "documents", None, upload.filename, upload.content_type
            )
        elif isinstance(document, str) and document in self.files:
            stored = self.files[document]
        elif isinstance(document, str) and document.startswith(("http://", "https://")):
            raise _bad("failed to get HTTP URL content")  # the test server has no network
        elif document:
            raise _bad("wrong file identifier/HTTP URL specified")
        else:
            raise _bad("there is no document in the request")
        caption, caption_entities = self._format(
            params.get("caption"),
            params.get("parse_mode"),
            params.get("caption_entities"),
            limit=MAX_CAPTION,
            what="caption",
        )
        content: JSON = {"document": self._document(stored)}
        if caption:
            content["caption"] = caption
        if caption_entities:
            content["caption_entities"] = caption_entities
        markup = self._check_markup(params.get("reply_markup"))
        return self._bot_send(state, params, content, markup)

    async def _send_poll(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state = self._target_chat(params)
        question = str(params.get("question", "")).strip()
        if not question:
            raise _bad("poll question must be non-empty")
        if len(question) > MAX_POLL_QUESTION:
            raise _bad(f"poll question length must not exceed {MAX_POLL_QUESTION}")
        options = params.get("options")
        if not isinstance(options, list):
            raise _bad("can't parse options JSON object")
        # Bot API 7.3+ takes InputPollOption objects; plain strings are still accepted.
        texts = [option.get("text") if isinstance(option, dict) else option for option in options]
        if len(texts) < MIN_POLL_OPTIONS:
            raise _bad(f"poll must have at least {MIN_POLL_OPTIONS} option")
        if len(texts) > MAX_POLL_OPTIONS:
            raise _bad(f"poll can't have more than {MAX_POLL_OPTIONS} options")
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise _bad("poll options must be non-empty")
            if len(text) > MAX_POLL_OPTION_TEXT:
                raise _bad(f"poll options length must not exceed {MAX_POLL_OPTION_TEXT}")
        poll_type = params.get("type", "regular")
        if poll_type not in ("regular", "quiz"):
            raise _bad("wrong poll type specified")
        poll_id = str(5_000_000_000_000_000_000 + next(self._serial))
        poll: JSON = {
            "id": poll_id,
            "question": question,
            "options": [
                {"text": text.strip(), "voter_count": 0, "persistent_id": str(index)}
                for index, text in enumerate(texts)
            ],
            "total_voter_count": 0,
            "is_closed": bool(params.get("is_closed", False)),
            "is_anonymous": bool(params.get("is_anonymous", True)),
            "type": poll_type,
            "allows_multiple_answers": bool(params.get("allows_multiple_answers", False)),
            "allows_revoting": bool(params.get("allows_revoting", poll_type == "regular")),
            "members_only": bool(params.get("members_only", False)),
        }
        if poll_type == "quiz":
            correct = params.get("correct_option_ids")
            if correct is None and "correct_option_id" in params:
                correct = [params["correct_option_id"]]
            if not correct or any(not 0 <= i < len(texts) for i in correct):
                raise _bad("wrong correct option ID specified")
            poll["correct_option_ids"] = correct
        markup = self._check_markup(params.get("reply_markup"))
        # The stored message owns the one poll object that votes and stopPoll update.
        message = self._bot_send(state, params, {"poll": poll}, markup)
        self._votes[poll_id] = {}
        return message

    async def _stop_poll(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state = self._target_chat(params)
        message_id = params.get("message_id")
        message = state.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None or "poll" not in message:
            raise _bad("message with poll to stop not found")
        if message["from"]["id"] != self.bot["id"]:
            raise _bad("poll can't be stopped")
        poll = message["poll"]
        if poll["is_closed"]:
            raise _bad("poll has already been closed")
        markup = self._check_markup(params.get("reply_markup"), inline_only=True)
        poll["is_closed"] = True
        if markup is not None:
            message["reply_markup"] = markup
        self._enqueue({"poll": copy.deepcopy(poll)})
        return copy.deepcopy(poll)

    def _chat_for_reading(self, params: JSON) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _bad("chat_id is empty")
        state = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if state is None:
            raise _bad("chat not found")
        return state

    def _member(self, state: _Chat, user: JSON) -> JSON:
        status = state.statuses.get(user["id"], "left")
        member: JSON = {"status": status, "user": copy.deepcopy(user)}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            rights = (
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_pin_messages",
            )
            member.update(
                {
                    "can_be_edited": False,
                    "is_anonymous": False,
                    "can_promote_members": False,
                    **dict.fromkeys(rights, True),
                }
            )
        return member

    async def _get_chat_member(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state = self._chat_for_reading(params)
        user_id = params.get("user_id")
        people = {**self._users, self.bot["id"]: self.bot}
        user = people.get(user_id) if isinstance(user_id, int) else None
        if user is None:
            raise _bad("user not found")
        return self._member(state, user)

    async def _get_chat_administrators(
        self, params: JSON, uploads: dict[str, _Upload]
    ) -> list[JSON]:
        state = self._chat_for_reading(params)
        if state.chat["type"] == "private":
            raise _bad("there are no administrators in the private chat")
        people = {**self._users, self.bot["id"]: self.bot}
        return [
            self._member(state, people[user_id])
            for user_id, status in state.statuses.items()
            if status in ("creator", "administrator") and user_id in people
        ]

    async def _get_chat(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        state = self._chat_for_reading(params)
        return {
            **copy.deepcopy(state.chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_file(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        stored = self.files.get(params.get("file_id", ""))
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }
