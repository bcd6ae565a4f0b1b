"""The web chat: the participation flow in a browser, for everyone without a messenger.

Every answer is a plain form post and the server sends a whole page, so it works without
JavaScript; `static/chat.js` only turns the posts into in-place updates. The page is rebuilt
from `web_lines`, the conversation as its author sees it: a reply is "sent" to a browser when
it is written there, in the transaction that marks it sent in the outbox.

A browser is a participant through a cookie that holds a random pseudonymous id and its
keyed signature; nothing else identifies it. Another device continues the conversation with
a one-time code, only when the person asks for one.

Everything a browser sends is hostile until checked: a CSRF token (keyed on the cookie) on
every form, bodies over MAX_BODY refused before they are read, posts per browser and per
network address limited, a choice accepted only if it is one the page offered, and every
word rendered as text by Jinja's autoescaping, under a Content-Security-Policy that allows
no inline script.
"""

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from mitreden.bot import ChannelError, Failure
from mitreden.bot.dashboard import Dashboard
from mitreden.config import networks
from mitreden.flows.catalogue import LANGUAGES
from mitreden.flows.engine import Engine, clean
from mitreden.flows.messages import Attachment, Inbound, Outbound, dump_outbound, load_outbound
from mitreden.logs import describe
from mitreden.store import Store
from mitreden.store.store import unavailable

if TYPE_CHECKING:
    from mitreden.app import App
    from mitreden.flows.messages import Parcel

log = logging.getLogger(__name__)

CHANNEL = "web"
COOKIE = "mitreden"
HERE = Path(__file__).resolve().parent
# A form post is a few kilobytes; the engine cuts any text at 64 KiB anyway.
MAX_BODY = 64 * 1024
# What the text box takes; longer ideas are no ideas but pasted documents.
MAX_TEXT = 5000
# One-time codes: no 0/O or 1/I to mix up, read out in two groups of four.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_MINUTES = 10
CODE_TRIES_PER_MINUTE = 10
# A /meinedaten file stays in memory, never in the database, for this long.
FILE_MINUTES = 10
DELIVERY_BATCH = 500  # replies written onto their pages in one transaction
# The menu's commands, each with the catalogue key of its button.
MENU = {
    "help": "web_help",
    "language": "web_language",
    "mydata": "web_mydata",
    "delete": "web_delete",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class RateLimit:
    """At most `per_minute` events per key in any sliding minute. Memory stays bounded: keys
    with nothing in the last minute are dropped when the table grows."""

    def __init__(self, per_minute: float) -> None:
        self.limit = max(1, int(per_minute))
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {k: q for k, q in self._seen.items() if q and q[-1] > now - 60}
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - 60:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


@dataclass
class Line:
    """One line of the page: who said it, and what."""

    side: str
    message: Outbound
    id: str = ""


@dataclass
class View:
    """What a page shows: its language, the lines, the choices the last one offers."""

    language: str
    lines: list[Line]
    offered: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Visitor:
    participant: str
    new: bool
    secure: bool
    address: str


class WebChannel:
    def __init__(self, app: "App") -> None:
        self.app = app
        self.engine = app.engine
        self.failure = Failure()
        settings = app.settings
        self._key = app.pseudonymizer.token("web-cookie").encode()
        self._listen = settings.web_listen
        self._proxies = networks(settings.web_trusted_proxies)
        self._per_browser = RateLimit(settings.web_posts_per_minute)
        self._per_address = RateLimit(settings.web_address_posts_per_minute)
        self._code_tries = RateLimit(CODE_TRIES_PER_MINUTE)
        self._files: dict[str, tuple[Attachment, float]] = {}
        self._languages = self._language_tags()
        self.static_version = _version(HERE / "static")
        self.address: str | None = None
        # Pages are read, and codes kept, on a connection and thread of their own: a page
        # opens while the engine's thread is still loading the model or handling a message.
        engine = self.engine
        self._pages = Engine(
            Store(settings.db),
            engine.taxonomy,
            None,
            engine.flow,
            engine.catalogue,
            idle_timeout=engine.idle_timeout,
            clock=lambda: self.engine.clock(),
        )
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-pages")
        self._runner: web.AppRunner | None = None
        self._late: asyncio.Future[None] | None = None
        self.dashboard = Dashboard(self)
        self.application = self._application()

    # the aiohttp application

    def _application(self) -> web.Application:
        application = web.Application(
            client_max_size=MAX_BODY,
            middlewares=[self._guard],
        )
        aiohttp_jinja2.setup(
            application,
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        routes = application.router
        routes.add_get("/", self._page)
        routes.add_post("/", self._post)
        routes.add_post("/code", self._new_code)
        routes.add_get("/weiter", self._continue_form)
        routes.add_post("/weiter", self._continue)
        routes.add_post("/vergessen", self._forget)
        routes.add_get("/datei", self._file)
        routes.add_get("/healthz", self._health)
        routes.add_static("/static/", HERE / "static")
        application.add_subapp("/staff", self.dashboard.application)
        return application

    async def start(self) -> None:
        host, _, port = self._listen.rpartition(":")
        self._runner = web.AppRunner(self.application, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()
        except OSError as err:
            await self._runner.cleanup()
            message = f"the web chat cannot listen on {self._listen}: {err.strerror}"
            raise ChannelError(message) from None
        bound_host, bound_port = self._runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.address = f"http://{shown}:{bound_port}/"
        self.dashboard.start()
        # Replies a crash left in the outbox go onto their pages once the engine is free;
        # the first pages are served meanwhile.
        self._late = asyncio.ensure_future(self.app.in_engine(self._deliver_unsent))

    async def stop(self) -> None:
        if self._late is not None:
            await asyncio.wait([self._late])
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.dashboard.stop()
        self._reader.shutdown(wait=True)
        self._pages.store.close()

    async def _read(self, call: Any, *args: Any) -> Any:
        """Run `call(*args)` on the pages' own thread and connection."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, call, *args)

    # every request

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Security headers on every response, and a page (not a stack trace) for errors."""
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            response = await self._notice(request, "web_too_long", status=413)
        except web.HTTPNotFound:
            response = await self._notice(request, "web_not_found", status=404)
        except web.HTTPMethodNotAllowed as err:
            response = web.Response(status=405, text="405", headers={"Allow": err.headers["Allow"]})
        except web.HTTPException as err:  # a redirect: raised on, as aiohttp wants
            self._secure(request, err)
            raise
        except Exception as err:
            down = unavailable(err)
            if down is not None:
                self.failure.report(down)
            log.error("web request failed: %s", describe(err))
            response = await self._notice(request, "sorry_failed", status=500)
        self._secure(request, response)
        return response

    def _secure(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)
        if self._visitor_secure(request):
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "public, max-age=86400"
        else:
            response.headers["Cache-Control"] = "no-store"

    def client(self, request: web.Request) -> tuple[str, bool]:
        """The client's address and whether it came over TLS, believing X-Forwarded-* only
        from a configured proxy (the nearest untrusted address in the chain is the client)."""
        remote = request.remote or ""
        secure = request.secure
        if not self._trusted(remote):
            return remote, secure
        chain = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
        client = remote
        for hop in reversed([a for a in chain if a]):
            client = hop
            if not self._trusted(hop):
                break
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return client, secure or proto == "https"

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._proxies)

    def _visitor_secure(self, request: web.Request) -> bool:
        return self.client(request)[1]

    # the cookie and the forms' token

    def _sign(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def _visitor(self, request: web.Request) -> Visitor:
        """Who this browser is: the participant its cookie names, or a new one."""
        address, secure = self.client(request)
        raw = request.cookies.get(COOKIE, "")
        participant, _, signature = raw.partition(".")
        expected = self._sign("cookie", participant).encode()
        if participant and hmac.compare_digest(signature.encode(errors="replace"), expected):
            return Visitor(participant, False, secure, address)
        fresh = self.app.pseudonymizer.participant(CHANNEL, secrets.token_urlsafe(24))
        return Visitor(fresh, True, secure, address)

    def _remember(self, response: web.StreamResponse, visitor: Visitor) -> None:
        """The cookie ends with the browser session: on a shared computer the next person
        does not find the conversation (the one-time code carries it elsewhere)."""
        value = f"{visitor.participant}.{self._sign('cookie', visitor.participant)}"
        response.set_cookie(
            COOKIE, value, httponly=True, samesite="Lax", secure=visitor.secure, path="/"
        )

    def _csrf(self, visitor: Visitor) -> str:
        return self._sign("csrf", visitor.participant)

    def _token_ok(self, visitor: Visitor, form: Any) -> bool:
        given = form.get("csrf", "")
        return (
            not visitor.new
            and isinstance(given, str)
            and hmac.compare_digest(given.encode("utf-8", "replace"), self._csrf(visitor).encode())
        )

    # pages

    def _language(self, request: web.Request) -> str:
        """The catalogue whose page language the browser prefers; German if none fits."""
        wanted = []
        for position, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
            tag, _, params = part.strip().partition(";")
            try:
                weight = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
            except ValueError:
                weight = 0.0
            wanted.append((-weight, position, tag.strip().lower().split("-")[0]))
        for _, _, tag in sorted(wanted):
            if tag in self._languages:
                return self._languages[tag]
        return LANGUAGES[0]

    def _language_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for language in LANGUAGES:
            tag = self.engine.catalogue.text(language, "web_lang").lower().split("-")[0]
            tags.setdefault(tag, language)
        return tags

    def _context(self, language: str, visitor: Visitor, **extra: Any) -> dict[str, Any]:
        catalogue = self.engine.catalogue

        def t(key: str, **params: object) -> str:
            return catalogue.text(language, key, **params)

        return {
            "t": t,
            "lang": t("web_lang"),
            "dir": t("web_dir"),
            "csrf": self._csrf(visitor),
            "nonce": lambda: secrets.token_urlsafe(12),
            "static": self.static_version,
            "menu": MENU,
            "max_text": MAX_TEXT,
            **extra,
        }

    def _render(
        self,
        template: str,
        request: web.Request,
        visitor: Visitor,
        context: dict[str, Any],
        status: int = 200,
    ) -> web.Response:
        response = aiohttp_jinja2.render_template(template, request, context, status=status)
        if visitor.new:
            self._remember(response, visitor)
        return response

    async def _notice(self, request: web.Request, key: str, status: int) -> web.Response:
        visitor = self._visitor(request)
        context = self._context(self._language(request), visitor, notice=key)
        return self._render("notice.html", request, visitor, context, status)

    async def _page(self, request: web.Request) -> web.Response:
        visitor = self._visitor(request)
        return await self._chat(request, visitor)

    async def _chat(
        self,
        request: web.Request,
        visitor: Visitor,
        status: int = 200,
        *,
        problem: str | None = None,
        draft: str = "",
        extra: list[Line] | None = None,
    ) -> web.Response:
        view = await self._read(self._view, visitor.participant, self._language(request))
        if extra:
            view.lines = extra + view.lines
        file = self._files.get(visitor.participant)
        context = self._context(
            view.language,
            visitor,
            view=view,
            problem=problem,
            draft=draft,
            file=file[0].filename if file and file[1] > time.monotonic() else None,
            file_line=next((ln.id for ln in reversed(view.lines) if ln.side == "file"), None),
        )
        return self._render("chat.html", request, visitor, context, status)

    def _view(self, participant: str, language: str) -> View:
        """Runs on the pages' thread: the page's lines, and the first question when nothing
        has been said yet (shown, not stored)."""
        store = self._pages.store
        conv = store.conversation(participant)
        if conv is not None:
            language = conv.language
        lines = [
            Line(row["side"], load_outbound(row["message"]), f"line-{row['id']}")
            for row in store.web_lines(participant)
        ]
        if conv is None or not lines:
            lines += [
                Line("bot", m, f"start-{n}")
                for n, m in enumerate(self._pages.opening(participant, language))
            ]
        last = lines[-1].message if lines and lines[-1].side == "bot" else None
        offered = [(c.value, c.label) for c in last.choices] if last else []
        return View(language, lines, offered)

    # a message

    async def _post(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        visitor = self._visitor(request)
        text = form.get("text")
        draft = text[:MAX_TEXT] if isinstance(text, str) else ""
        if not self._per_address.allow(visitor.address) or not (
            visitor.new or self._per_browser.allow(visitor.participant)
        ):
            return await self._chat(request, visitor, 429, problem="web_slow_down", draft=draft)
        if not self._token_ok(visitor, form):
            return await self._chat(request, visitor, 403, problem="web_expired", draft=draft)
        choice, command, key = form.get("choice"), form.get("command"), form.get("nonce")
        inbound = said = said_key = None
        if isinstance(choice, str) and choice:
            inbound = Inbound(CHANNEL, visitor.participant, choice=choice)
        elif isinstance(command, str) and command in MENU:
            word = next(w for w, c in self.engine.flow.commands.items() if c == command)
            inbound = Inbound(CHANNEL, visitor.participant, text=f"/{word}")
            said_key = MENU[command]
        elif draft.strip():
            inbound = Inbound(CHANNEL, visitor.participant, text=draft)
            said = draft
        if inbound is None:
            return self._back()
        nonce = key if isinstance(key, str) and 0 < len(key) <= 64 else secrets.token_urlsafe(12)
        # The message's key for "delivered twice": keyed, so it names no one in the
        # deliveries table or the log.
        key = self._sign("message", f"{visitor.participant}\x00{nonce}")
        inbound = replace(inbound, address=visitor.participant, key=key)
        if inbound.text is not None and said is not None:
            await self.app.ahead.prepare(clean(inbound.text))
        outcome = await self.app.in_engine(self._exchange, inbound, said, said_key)
        if outcome is None:  # a choice this page never offered
            return self._back()
        if outcome:  # they erased everything: a new participant, and this page says so
            self._files.pop(visitor.participant, None)
            fresh = replace(visitor, participant=self._visitor_new(), new=True)
            return await self._chat(request, fresh, extra=outcome)
        return self._back()

    def _visitor_new(self) -> str:
        return self.app.pseudonymizer.participant(CHANNEL, secrets.token_urlsafe(24))

    def _back(self) -> web.StreamResponse:
        """After a post, a redirect to the page: reloading it does not post twice, and the
        script (which follows it) gets the same page a browser without one does."""
        return web.Response(status=303, headers={"Location": "/#neu"})

    def _exchange(
        self, inbound: Inbound, said: str | None, said_key: str | None = None
    ) -> list[Line] | None:
        """Runs in the engine's thread: one message in, its replies onto the page.

        Returns None for a choice the page did not offer (nothing is handled), the lines to
        show once for a person who just erased everything (nothing of them is written
        again), or an empty list."""
        store, participant = self.engine.store, inbound.participant
        conv = store.conversation(participant)
        if inbound.choice is not None:
            if conv is not None:
                offered = dict(conv.data.get("offered", []))
                start: list[Outbound] = []
            else:
                start = self.engine.opening(participant, LANGUAGES[0])
                offered = {c.value: c.label for m in start for c in m.choices}
            if inbound.choice not in offered:
                return None
            said = offered[inbound.choice]
        else:
            start = [] if conv is not None else self.engine.opening(participant, LANGUAGES[0])
        if said_key is not None:  # a menu button: its label, in the page's language
            said = self.engine.catalogue.text(conv.language if conv else LANGUAGES[0], said_key)
        parcels = self.engine.receive(inbound)
        if conv is not None and store.conversation(participant) is None:
            with store.transaction():
                for parcel in parcels:
                    store.sent(parcel.id, 1, done=True)
            return [Line("bot", p.message) for p in parcels]
        if not parcels:  # delivered before: the page already shows it
            return []
        now = self.engine.clock().isoformat(timespec="seconds")
        with store.transaction():
            for message in start:
                store.add_web_line(participant, now, "bot", dump_outbound(message))
            if said:
                store.add_web_line(participant, now, "resident", dump_outbound(Outbound(said)))
            for parcel in parcels:
                self._write(parcel, now)
        return []

    def _write(self, parcel: "Parcel", now: str) -> None:
        """Put a reply on its page (inside a transaction) and mark it sent. A file's bytes stay
        in memory for FILE_MINUTES, never in the page's lines."""
        message, address = parcel.message, parcel.address or ""
        if message.attachment is not None:
            now_s = time.monotonic()
            for owner, (_, until) in list(self._files.items()):
                if until <= now_s:
                    del self._files[owner]
            self._files[address] = (message.attachment, now_s + FILE_MINUTES * 60)
            empty = Attachment(message.attachment.filename, message.attachment.media_type, b"")
            message = replace(message, attachment=empty)
        side = "file" if message.attachment is not None else "bot"
        self.engine.store.add_web_line(address, now, side, dump_outbound(message))
        self.engine.store.sent(parcel.id, 1, done=True)

    async def deliver_unsent(self) -> None:
        """Messages written outside a step of the resident (a forwarded summary's notice):
        onto their pages, seen at the next visit."""
        await self.app.in_engine(self._deliver_unsent)

    def _deliver_unsent(self) -> None:
        """Replies left in the outbox by a crash, or written outside a step: onto their pages
        now. Each reply is on its page and gone from the outbox together either way. Those
        without a file move in one set of statements (the 23,000 notices of a forwarded field
        took 0.6 s of the engine's thread one by one, and slowed the next forward by as much);
        those with a file are kept in memory by `_write`, DELIVERY_BATCH to a transaction."""
        now = self.engine.clock().isoformat(timespec="seconds")
        with self.engine.store.transaction():
            self.engine.store.outbox_onto_pages(CHANNEL, now)
        parcels = self.engine.unsent(CHANNEL)  # those with a file, kept in memory
        for start in range(0, len(parcels), DELIVERY_BATCH):
            with self.engine.store.transaction():
                for parcel in parcels[start : start + DELIVERY_BATCH]:
                    self._write(parcel, now)

    # the file of /meinedaten

    async def _file(self, request: web.Request) -> web.StreamResponse:
        visitor = self._visitor(request)
        file = self._files.get(visitor.participant)
        if visitor.new or file is None or file[1] <= time.monotonic():
            return await self._notice(request, "web_file_gone", status=404)
        attachment = file[0]
        name = "".join(ch for ch in attachment.filename if ch.isalnum() or ch in "._-") or "file"
        return web.Response(
            body=attachment.content,
            content_type=attachment.media_type,
            charset="utf-8" if attachment.media_type.endswith("json") else None,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # continuing on another device

    def _code_hash(self, code: str) -> str:
        return self._sign("code", code)

    async def _new_code(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        visitor = self._visitor(request)
        if not self._token_ok(visitor, form):
            return await self._chat(request, visitor, 403, problem="web_expired")
        if not (
            self._per_address.allow(visitor.address)
            and self._per_browser.allow(visitor.participant)
        ):
            return await self._chat(request, visitor, 429, problem="web_slow_down")
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        expires = (self.engine.clock() + timedelta(minutes=CODE_MINUTES)).isoformat()
        await self._read(self._store_code, self._code_hash(code), visitor.participant, expires)
        language = await self._read(self._language_of, visitor.participant, self._language(request))
        shown = f"{code[:4]}-{code[4:]}"
        context = self._context(
            language,
            visitor,
            code=shown,
            minutes=CODE_MINUTES,
            where=f"{self._origin(request)}/weiter",
        )
        return self._render("code.html", request, visitor, context)

    def _store_code(self, code_hash: str, participant: str, expires: str) -> None:
        with self._pages.store.transaction():
            self._pages.store.add_web_code(code_hash, participant, expires)

    def _language_of(self, participant: str, fallback: str) -> str:
        conv = self._pages.store.conversation(participant)
        return conv.language if conv is not None else fallback

    def _origin(self, request: web.Request) -> str:
        scheme = "https" if self._visitor_secure(request) else request.scheme
        return f"{scheme}://{request.host}"

    async def _continue_form(self, request: web.Request) -> web.Response:
        visitor = self._visitor(request)
        context = self._context(self._language(request), visitor, problem=None)
        return self._render("continue.html", request, visitor, context)

    async def _continue(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        visitor = self._visitor(request)
        language = self._language(request)
        if not self._token_ok(visitor, form):
            context = self._context(language, visitor, problem="web_expired")
            return self._render("continue.html", request, visitor, context, 403)
        if not self._code_tries.allow(visitor.address):
            context = self._context(language, visitor, problem="web_slow_down")
            return self._render("continue.html", request, visitor, context, 429)
        raw = form.get("code", "")
        code = (
            "".join(ch for ch in raw.upper() if ch in CODE_ALPHABET) if isinstance(raw, str) else ""
        )
        now = self.engine.clock().isoformat()
        participant = None
        if len(code) == CODE_LENGTH:
            participant = await self._read(self._take_code, self._code_hash(code), now)
        if participant is None:
            context = self._context(language, visitor, problem="web_code_wrong")
            return self._render("continue.html", request, visitor, context, 400)
        response = self._back()
        self._remember(response, replace(visitor, participant=participant))
        return response

    def _take_code(self, code_hash: str, now: str) -> str | None:
        with self._pages.store.transaction():
            return self._pages.store.take_web_code(code_hash, now)

    async def _forget(self, request: web.Request) -> web.StreamResponse:
        """This browser forgets who it was (a shared computer); the conversation stays."""
        form = await request.post()
        visitor = self._visitor(request)
        if not self._token_ok(visitor, form):
            return await self._chat(request, visitor, 403, problem="web_expired")
        fresh = Visitor(self._visitor_new(), True, visitor.secure, visitor.address)
        context = self._context(self._language(request), fresh, notice="web_forgotten")
        return self._render("notice.html", request, fresh, context)

    async def _health(self, request: web.Request) -> web.Response:
        body = {"status": "ok", "ready": self.app.ready}
        return web.Response(text=json.dumps(body), content_type="application/json")


def _version(folder: Path) -> str:
    """A short hash of the static files, so a browser fetches them anew after an upgrade."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]
