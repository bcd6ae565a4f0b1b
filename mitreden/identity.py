"""Pseudonymous participant ids: a keyed hash, so platform ids never reach the engine or store.

Without the key nobody can tell which platform account a row belongs to, and the same person
on two channels gets two unlinked ids.
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mitreden.config import ConfigError, Settings
from mitreden.logs import add_secret


class Pseudonymizer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        add_secret(secret.decode(errors="replace"))  # read from the key file, so never in Settings

    def participant(self, channel: str, platform_user_id: str) -> str:
        message = f"{channel}\x00{platform_user_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def token(self, purpose: str) -> str:
        """A secret of its own for `purpose` (such as Telegram's webhook secret), stable across
        restarts and useless for telling who anyone is."""
        token = hmac.new(self._secret, f"token\x00{purpose}".encode(), hashlib.sha256).hexdigest()
        add_secret(token)
        return token


def load_pseudonymizer(settings: Settings) -> Pseudonymizer:
    """The configured secret, or the key file beside the database (created on first use)."""
    if settings.secret:
        return Pseudonymizer(settings.secret.encode())
    path = settings.secret_file
    try:
        if not path.exists():
            _create_key(path)
        return Pseudonymizer(path.read_text().strip().encode())
    except OSError as err:
        raise ConfigError(f"cannot read or create the key file {path}: {err}") from err


def _create_key(path: Path) -> None:
    """Put a whole new key at `path`, unless another process starting at the same moment put
    its own there first: then that one is everyone's. The key is written to a draft and linked
    into place, so nobody ever reads a half-written or empty key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}.new")
    try:
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_hex(32))
            key_file.flush()
            os.fsync(key_file.fileno())
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)
