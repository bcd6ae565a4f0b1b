"""Pseudonymous participant ids: a keyed hash, so platform ids never reach the engine or store.

Without the key nobody can tell which platform account a row belongs to, and the same person
on two channels gets two unlinked ids.
"""

import hashlib
import hmac
import os
import secrets

from mitreden.config import ConfigError, Settings


class Pseudonymizer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def participant(self, channel: str, platform_user_id: str) -> str:
        message = f"{channel}\x00{platform_user_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def token(self, purpose: str) -> str:
        """A secret of its own for `purpose` (such as Telegram's webhook secret), stable across
        restarts and useless for telling who anyone is."""
        return hmac.new(self._secret, f"token\x00{purpose}".encode(), hashlib.sha256).hexdigest()


def load_pseudonymizer(settings: Settings) -> Pseudonymizer:
    """The configured secret, or the key file beside the database (created on first use)."""
    if settings.secret:
        return Pseudonymizer(settings.secret.encode())
    path = settings.secret_file
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as key_file:
                key_file.write(secrets.token_hex(32))
        return Pseudonymizer(path.read_text().strip().encode())
    except OSError as err:
        raise ConfigError(f"cannot read or create the key file {path}: {err}") from err
