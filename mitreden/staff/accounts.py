"""Staff accounts: who may use the dashboard, with which role, and their sessions.

Passwords are kept as argon2id hashes only. A session is a random token in an HttpOnly
cookie; the database holds its SHA-256 only, so a copy of the database opens no session.
Wrong passwords are counted per account name and per network address, and both are held
back for a while after too many, so a password cannot be guessed from one place or for one
account from many places.
"""

import hashlib
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mitreden.staff import Refusal
from mitreden.store import Store

MODERATOR, ADMIN = "moderator", "admin"
ROLES = (MODERATOR, ADMIN)
# \Z, not $: "$" also matches before a final newline, and "anna\n" is no name.
NAME = re.compile(r"^[\w.@-]{1,64}\Z")
MIN_PASSWORD = 12
# A session ends after this long without a request, and after SESSION_HOURS in any case.
IDLE_HOURS = 8
SESSION_HOURS = 24
# Wrong passwords allowed per account name and per address in THROTTLE_MINUTES.
THROTTLE_TRIES = 10
THROTTLE_MINUTES = 15

_hasher = PasswordHasher()
# Checked against when a name is unknown, so a login takes as long either way.
_UNKNOWN = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(Refusal):
    """An account cannot be made or changed as asked; the message says why in one line."""


@dataclass(frozen=True)
class Member:
    """A signed-in staff member."""

    id: int
    name: str
    role: str
    token_hash: str
    seen_at: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names them."""
        return f"staff:{self.name}"

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def _check(name: str, role: str, password: str | None) -> None:
    if not NAME.match(name):
        raise AccountError("a name is 1 to 64 letters, digits or . _ @ -", "refused_name")
    if role not in ROLES:
        raise AccountError(f"the role is one of {', '.join(ROLES)}", "refused_role")
    if password is not None and len(password) < MIN_PASSWORD:
        raise AccountError(
            f"a password has at least {MIN_PASSWORD} characters",
            "refused_password",
            count=MIN_PASSWORD,
        )


def add(store: Store, name: str, role: str, password: str, actor: str, now: str) -> int:
    """Make an account; its name must be new (letter case aside)."""
    _check(name, role, password)
    with store.transaction():
        # SQLite's NOCASE folds ASCII only: "Ärger" and "ärger" are one name too.
        if any(m["name"].casefold() == name.casefold() for m in store.staff_members()):
            raise AccountError(f"there is already an account {name!r}", "refused_name_taken")
        staff_id = store.add_staff(name, role, _hasher.hash(password), now)
        store.audit(now, actor, "staff.added", f"staff:{name}", role=role)
    return staff_id


def change(
    store: Store,
    name: str,
    actor: str,
    now: str,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> None:
    """Change an account's role, password or whether it may sign in. A new password or a
    disabled account ends every session of it."""
    with store.transaction():
        member = store.staff_member(name)
        if member is None:
            raise AccountError(f"there is no account {name!r}", "refused_no_account")
        _check(member["name"], role or member["role"], password)
        columns: dict[str, object] = {}
        if role is not None:
            columns["role"] = role
        if password is not None:
            columns["password_hash"] = _hasher.hash(password)
            columns["sessions_from"] = now
        if disabled is not None:
            columns["disabled_at"] = now if disabled else None
            columns["sessions_from"] = now
        if not columns:
            return
        store.update_staff(member["id"], **columns)
        if "sessions_from" in columns:
            store.drop_sessions(staff_id=member["id"])
        changed = {k: v for k, v in columns.items() if k in ("role", "disabled_at")}
        if password is not None:
            changed["password"] = "changed"
        store.audit(now, actor, "staff.changed", f"staff:{member['name']}", **changed)


def authenticate(store: Store, name: str, password: str) -> dict | None:
    """The account if the password is its own and it may sign in, else None."""
    member = store.staff_member(name) if NAME.match(name) else None
    try:
        _hasher.verify(member["password_hash"] if member else _UNKNOWN, password)
    except (VerificationError, InvalidHashError):
        return None
    if member is None or member["disabled_at"] is not None:
        return None
    if _hasher.check_needs_rehash(member["password_hash"]):
        with store.transaction():
            store.update_staff(member["id"], password_hash=_hasher.hash(password))
    return member


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(store: Store, member: dict, now: str) -> str:
    """A new session for a signed-in account; the token for its cookie."""
    token = secrets.token_urlsafe(32)
    with store.transaction():
        store.add_session(token_hash(token), member["id"], now)
        store.audit(now, f"staff:{member['name']}", "staff.signed_in")
    return token


def session(store: Store, token: str, now: datetime) -> Member | None:
    """The member a session cookie belongs to, if the session is still good."""
    if not token or len(token) > 128:
        return None
    row = store.session(token_hash(token))
    if row is None or row["disabled_at"] is not None:
        return None
    created, seen = (
        datetime.fromisoformat(row["created_at"]),
        datetime.fromisoformat(row["seen_at"]),
    )
    if (
        row["created_at"] < row["sessions_from"]
        or now - seen > timedelta(hours=IDLE_HOURS)
        or now - created > timedelta(hours=SESSION_HOURS)
    ):
        return None
    return Member(row["staff_id"], row["name"], row["role"], row["token_hash"], row["seen_at"])


def close_session(store: Store, member: Member, now: str, everywhere: bool = False) -> None:
    """Sign out here, or on every device."""
    with store.transaction():
        if everywhere:
            store.update_staff(member.id, sessions_from=now)
            store.drop_sessions(staff_id=member.id)
        else:
            store.drop_session(member.token_hash)
        store.audit(now, member.actor, "staff.signed_out", everywhere=everywhere)


def end_sessions(store: Store, name: str, actor: str, now: str) -> None:
    """Sign an account out everywhere on someone else's behalf (an admin, an operator)."""
    with store.transaction():
        member = store.staff_member(name)
        if member is None:
            raise AccountError(f"there is no account {name!r}", "refused_no_account")
        store.update_staff(member["id"], sessions_from=now)
        store.drop_sessions(staff_id=member["id"])
        store.audit(now, actor, "staff.signed_out", f"staff:{member['name']}", everywhere=True)


class Throttle:
    """Counts failures per key in a sliding window; `allowed` is False while a key has had
    too many. Kept in memory: a restart forgives, which costs a guesser a restart per ten
    tries, and keeps a full disk from locking everyone out."""

    def __init__(self, tries: int = THROTTLE_TRIES, minutes: float = THROTTLE_MINUTES) -> None:
        self.tries, self.window = tries, minutes * 60
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures

    def allowed(self, *keys: str) -> bool:
        return all(len(self._recent(key)) < self.tries for key in keys)

    def failed(self, *keys: str) -> None:
        if len(self._failures) > 100_000:  # a flood of made-up names: forget the old ones
            self._failures = {k: v for k, v in self._failures.items() if self._recent(k)}
        for key in keys:
            self._recent(key).append(time.monotonic())
