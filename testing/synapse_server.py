"""A real Synapse homeserver for the Matrix channel's tests.

DESIGN.md ("Real components in tests") asks for the real homeserver rather than a fake: the
Matrix adapter and its simulated residents (matrix-nio clients) then meet the server's real
room, sync, rate-limit and end-to-end-encryption behaviour. Synapse runs as a subprocess from the
test venv, on 127.0.0.1 and a free port, with SQLite in a temporary directory and no federation.
It is ready in about two to three seconds, so a test session starts it once and registers fresh
users per test through the shared-secret admin API.
"""

import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

JSON = dict[str, Any]

SERVER_NAME = "localhost"
SHARED_SECRET = "mitreden-test-registration-secret"

# Tests register many users, log in many devices and send bursts of messages; Synapse's defaults
# (e.g. 0.2 messages per second) would turn that into flaky 429s. Each key can be overridden per
# server, so a test that wants a 429 starts a server with that one limit tightened.
_RELAXED = {"per_second": 1000, "burst_count": 10000}
RELAXED_RATE_LIMITS: JSON = {
    "rc_message": _RELAXED,
    "rc_registration": _RELAXED,
    "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
    "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
    "rc_joins_per_room": _RELAXED,
    "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
    "rc_room_creation": _RELAXED,
    "rc_key_requests": _RELAXED,
    "rc_presence": {"per_user": _RELAXED},
    "rc_profile": _RELAXED,
    "rc_media_create": _RELAXED,
}

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40


class SynapseError(RuntimeError):
    """Synapse failed to start or answered a request with an error."""


class SynapseServer:
    """One Synapse process with its own config, signing key, database and media in ``directory``.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with SynapseServer(tmp_path_factory.mktemp("synapse")) as synapse:
            user_id, token = synapse.register("alice", "secret")

    To share one server across the whole suite, conftest.py can expose the session fixture that
    tests/test_synapse_server.py defines locally::

        @pytest.fixture(scope="session")
        def synapse(tmp_path_factory):
            with SynapseServer(tmp_path_factory.mktemp("synapse")) as server:
                yield server

    ``rate_limits`` overrides entries of :data:`RELAXED_RATE_LIMITS` by top-level key (e.g.
    ``{"rc_message": {"per_second": 0.1, "burst_count": 1}}``); ``extra_config`` is merged into
    homeserver.yaml last, for any other setting a test needs.
    """

    def __init__(
        self,
        directory: Path,
        *,
        rate_limits: Mapping[str, Any] | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server_name = SERVER_NAME
        self.startup_seconds: float | None = None
        self._rate_limits = {**RELAXED_RATE_LIMITS, **(rate_limits or {})}
        self._admin_token: str | None = None
        self._extra_config = dict(extra_config or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    @property
    def stderr_path(self) -> Path:
        """Where Synapse's own output goes: errors from before its logging is set up land here."""
        return self.directory / "stderr.log"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the config, start Synapse and return once its client API answers.

        Synapse's default ``--generate-missing-and-run`` mode creates the signing key on first
        start, so key generation costs no second interpreter start-up.
        """
        self._write_config()
        began = time.monotonic()
        with self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                cwd=self.directory,
                stdout=stderr,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready(began + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask Synapse to shut down (SIGTERM) and kill it if it has not within ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def register(
        self,
        localpart: str,
        password: str,
        admin: bool = False,
        *,
        shared_secret: str = SHARED_SECRET,
    ) -> tuple[str, str]:
        """Create a user through the shared-secret admin API; return its user ID and token.

        ``shared_secret`` exists so a test can check that a wrong secret is refused.
        """
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = _registration_mac(shared_secret, nonce, localpart, password, admin)
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        }
        answer = self._request("POST", "/_synapse/admin/v1/register", body)
        return answer["user_id"], answer["access_token"]

    def override_ratelimit(
        self, user_id: str, messages_per_second: int | None = None, burst_count: int = 1
    ) -> None:
        """Tighten one user's message rate limit (so a test meets 429s), or with no rate given
        go back to the server's. Uses the admin API as an admin user made on first use."""
        if self._admin_token is None:
            self._admin_token = self.register("ratelimit-admin", "admin-password", admin=True)[1]
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        if messages_per_second is None:
            self._request("DELETE", path, token=self._admin_token)
            return
        body = {"messages_per_second": messages_per_second, "burst_count": burst_count}
        self._request("POST", path, body, token=self._admin_token)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of Synapse's output and log, for error messages."""
        parts = []
        for path in (self.stderr_path, self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _config(self) -> JSON:
        return {
            "server_name": self.server_name,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(self.directory / "homeserver.pid"),
            "signing_key_path": str(self.directory / "signing.key"),
            "media_store_path": str(self.directory / "media"),
            "log_config": str(self._write_log_config()),
            "database": {"name": "sqlite3", "args": {"database": str(self.directory / "hs.db")}},
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "registration_shared_secret": SHARED_SECRET,
            "enable_registration": False,
            "federation_domain_whitelist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "bcrypt_rounds": 4,
            **self._rate_limits,
            **self._extra_config,
        }

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self._config(), sort_keys=False))

    def _write_log_config(self) -> Path:
        """Log unbuffered to a file, so the tail shown on a failed start is complete."""
        path = self.directory / "log.yaml"
        config = {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "plain",
                    "filename": str(self.log_path),
                }
            },
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._process is not None
        while not self._answers_versions():
            if self._process.poll() is not None:
                raise SynapseError(
                    f"Synapse exited with code {self._process.returncode} during start-up\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise SynapseError(
                    f"Synapse did not answer on {self.base_url} in time\n" + self.log_tail()
                )
            time.sleep(0.05)

    def _answers_versions(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/_matrix/client/versions", timeout=1):
                return True
        except OSError:
            return False

    def _request(
        self, method: str, path: str, body: JSON | None = None, token: str | None = None
    ) -> JSON:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise SynapseError(f"{method} {path} failed with {error.code}: {detail}") from None


def _registration_mac(
    shared_secret: str, nonce: str, localpart: str, password: str, admin: bool
) -> str:
    """The HMAC-SHA1 that Synapse's shared-secret registration checks, field by field."""
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    fields = [nonce, localpart, password, "admin" if admin else "notadmin"]
    mac.update(b"\x00".join(field.encode() for field in fields))
    return mac.hexdigest()


def _free_port() -> int:
    """A port the OS just handed out; Synapse binds it moments later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
