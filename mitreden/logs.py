"""Logs that can be shared: no token, password, platform id, name or resident text, at any level.

An operator pastes a log into an issue or a chat with a colleague, so the log must hold nothing
that identifies a resident or lets someone act as the bot. One filter on the one stderr handler
sees every record, ours and third-party ones, and

- keeps third-party records (any logger outside `mitreden`) only from WARNING up: at DEBUG and
  INFO python-telegram-bot, httpx, nio and aiohttp log request URLs (Telegram's carry the bot
  token), request and response bodies (what residents wrote, their names and user ids) and
  the Matrix ids of everyone the bot's device shares keys with (nio's crypto logger, at INFO);
- scrubs what is left: the registered secrets, anything shaped like a Telegram bot token, Matrix
  user and room ids, and digit runs long enough to be Telegram user or chat ids. Event ids
  (`$…`) stay, and so do our pseudonym prefixes (`a1b2c3…`, even when all digits), so a problem
  can still be followed through the log;
- logs an exception as its type and the place it was raised, never its text or traceback: an
  exception's message, and the source lines of a traceback, can quote what a resident typed.
"""

import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import TextIO
from urllib.parse import quote

OWN = "mitreden"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
THIRD_PARTY_FLOOR = logging.WARNING
# Third-party warnings that quote what they are about, which can be what a resident wrote:
# only the part before the first colon stays. nio's schema checks print the offending value;
# fpdf2 lists the characters of a forwarded summary its font cannot draw.
QUOTING = ("Error validating", "Font ")
# Third-party errors that name the client's network address (aiohttp's server): the words
# before it stay.
ADDRESSED = ("Error handling request",)

_SERVER = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*)(?::\d{1,5})?"
_SERVER_ENCODED = r"(?:%5B[0-9A-Fa-f%.]+%5D|[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*)(?:%3A\d{1,5})?"
# One pass, left to right: an event id is matched (and kept) before the digits inside it are.
_PATTERN = re.compile(
    r"(?P<event>\$[A-Za-z0-9_\-+/=.]+(?::" + _SERVER + r")?)"
    r"|(?P<token>\d{6,}:[A-Za-z0-9_\-]{30,})"
    r"|(?P<bearer>(?i:bearer)\s+[^\s\"',]+|(?i:access_token)=[^\s&\"',]+|\bsy[tr]_[A-Za-z0-9_]{8,})"
    r"|(?P<user>@[\x21-\x39\x3b-\x3f\x41-\x7e]+:" + _SERVER + r")"
    r"|(?P<user_encoded>(?i:%40)[A-Za-z0-9._=/+\-]+(?i:%3A)" + _SERVER_ENCODED + r")"
    r"|(?P<room>(?<![A-Za-z0-9!])![A-Za-z0-9_\-][A-Za-z0-9_\-+/=.~]*(?::" + _SERVER + r")?)"
    r"|(?P<room_encoded>(?i:%21)[A-Za-z0-9_\-+/=.~]+(?:(?i:%3A)" + _SERVER_ENCODED + r")?)"
    # A pseudonym prefix ends in "…" and is kept; a raw id never does in our own lines.
    r"|(?P<digits>(?<![A-Za-z0-9])\d{6,}(?![A-Za-z0-9…]))"
)
_REPLACEMENT = {
    "token": "***",
    "bearer": "***",
    "user": "@…",
    "user_encoded": "@…",
    "room": "!…",
    "room_encoded": "!…",
    "digits": "…",
}


class Scrubber:
    """Removes secrets and platform ids from a text; secrets can be added at any time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Also hide `secret` as it appears in JSON and in URLs."""
        if not secret:
            return
        forms = {
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            quote(secret, safe=""),
        }
        with self._lock:
            # Longest first, so a secret that contains another is hidden whole.
            self._secrets = tuple(sorted(set(self._secrets) | forms, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _PATTERN.sub(_replace, text)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup or ""
    return match.group() if kind == "event" else _REPLACEMENT[kind]


def _own(name: str) -> bool:
    return name == OWN or name.startswith(OWN + ".")


def _place(tb: TracebackType | None) -> str:
    """`file.py:line in function` of the innermost frame of our code, else the innermost one."""
    frames = list(traceback.walk_tb(tb))
    ours = [(f, n) for f, n in frames if _own(str(f.f_globals.get("__name__", "")))]
    if not (ours or frames):
        return "an unknown place"
    frame, line = (ours or frames)[-1]
    file = frame.f_code.co_filename.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{file}:{line} in {frame.f_code.co_name}"


def describe(error: BaseException) -> str:
    """An exception as its type and place: what an operator needs, and nothing a resident said."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    return f"{name} at {_place(error.__traceback__)}"


class ShareableFilter(logging.Filter):
    """Drops third-party chatter below WARNING and rewrites each record into a shareable one."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < THIRD_PARTY_FLOOR and not _own(record.name):
            return False
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep the format alone
            message = str(record.msg)
        if not _own(record.name) and message.startswith(QUOTING):
            message = message.split(":", 1)[0] + ": (details left out)"
        if not _own(record.name) and message.startswith(ADDRESSED):
            message = next(p for p in ADDRESSED if message.startswith(p)) + " (details left out)"
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            message += f" [{describe(error)}]"
        elif record.exc_text or record.stack_info:
            message += " [details left out]"
        record.msg, record.args = self.scrubber(message), ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes, as logging's last resort does, so
    a replaced stderr (a test's capture) never leaves a handler writing to a closed stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


_scrubber = Scrubber()


def add_secret(value: str) -> None:
    """Hide `value` in every log line from now on (a key read from a file, a derived token)."""
    _scrubber.add(value)


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at `level` for our own loggers (third-party ones from WARNING up), with
    `secrets` and platform ids scrubbed. Calling it again replaces the earlier setup."""
    for secret in secrets:
        _scrubber.add(secret)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ShareableFilter(_scrubber))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python's warnings would go to stderr unscrubbed; as records of py.warnings they pass the
    # filter like any other third-party WARNING.
    logging.captureWarnings(True)
