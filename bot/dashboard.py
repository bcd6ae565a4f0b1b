"""The moderators' dashboard: the staff service's work on web pages under /staff/.

It knows pages, cookies and forms, nothing of what a decision means: every change goes to
`mitreden.staff` in the engine's thread (`App.in_engine`), every page is read on the
dashboard's own thread and database connection, so a long page never holds up a resident.

Sign-in is a session cookie (HttpOnly, SameSite=Strict, Secure behind TLS, path /staff/),
every form carries a token keyed to the session, and anonymous users and moderators without
the role are refused on every change. Residents' words appear redacted; only an admin who
gives a reason sees an idea's raw text, and the reason is audited. Pages work without
JavaScript; `staff.js` adds keyboard shortcuts to the queue.
"""

import asyncio
import gc
import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
import numpy as np
from aiohttp import web
from yarl import URL

from mitreden import reports
from mitreden.logs import describe
from mitreden.nlp import findings
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.staff import Refusal, accounts, groups, review, summaries
from mitreden.staff.accounts import Member
from mitreden.store import Store, StoreError

if TYPE_CHECKING:
    from mitreden.bot.web import WebChannel
    from mitreden.staff.files import Forwarded
    from mitreden.staff.forwarding import Forwarding
    from mitreden.staff.reach import Labels, Population, Reach

log = logging.getLogger(__name__)

PREFIX = "/staff/"
COOKIE = "mitreden_staff"
LOGIN_COOKIE = "mitreden_staff_login"
HERE = Path(__file__).resolve().parent
PAGE = 50
# A summary's text may be long; everything else posted here is small.
SUMMARY_BODY = 512 * 1024
# Sessions are "seen" at most this often, so reading pages does not write on every request.
TOUCH_SECONDS = 300
STATES = (review.PENDING, review.HELD, review.APPROVED, review.REJECTED)
# What a finished action says on the page it returns to (catalogue keys staff_done_*).
DONE = frozenset(
    {
        "approved",
        "rejected",
        "reopened",
        "undone",
        "field",
        "duplicate",
        "split",
        "renamed",
        "merged",
        "unmerged",
        "moved",
        "drafted",
        "saved",
        "approved_summary",
        "forwarded",
        "mailed",
        "account",
        "signed_out",
    }
)
# What became of a summary's e-mail (catalogue keys staff_mail_*).
MAIL = frozenset({"sent", "failed"})
FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,200}\.(md|pdf|csv|json|xlsx)$")
REFUSED = (review.ReviewError, summaries.SummaryError, accounts.AccountError, StoreError)


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _int(value: Any, default: int | None = None) -> int | None:
    """A positive id from a form or query; anything else is `default`."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return default


class Refused(Exception):
    """A form that cannot be carried out as sent; its catalogue key says why."""

    def __init__(self, key: str, status: int = 400) -> None:
        super().__init__(key)
        self.key, self.status = key, status


class Dashboard:
    def __init__(self, channel: "WebChannel") -> None:
        self.web = channel
        self.app = channel.app
        settings = self.app.settings
        engine = self.app.engine
        self.catalogue, self.taxonomy = engine.catalogue, engine.taxonomy
        self.language = settings.moderator_language
        self._key = self.app.pseudonymizer.token("staff-cookie").encode()
        self.throttle = accounts.Throttle()
        self._store = Store(settings.db)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staff-pages")
        self._helper: ProcessPoolExecutor | None = None  # makes PDF and XLSX files
        self._pictures: dict[str, tuple[tuple[str, int], Any]] = {}  # by revision
        self.fields = [(f.id, f.label(self.language)) for f in self.taxonomy.leaves]
        self.lanes = [*self.fields, (NEW_TOPICS, self.t("summary_new_topics"))]
        self.application = self._application()

    def _application(self) -> web.Application:
        application = web.Application(middlewares=[self._refusals])
        aiohttp_jinja2.setup(
            application,
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        get, post = application.router.add_get, application.router.add_post
        get("/", self._queue)
        get("/login", self._login_form)
        post("/login", self._login)
        post("/logout", self._logout)
        get("/ideas/{id}", self._idea)
        post("/ideas/{id}/decide", self._decide)
        post("/ideas/{id}/undo", self._undo)
        post("/ideas/{id}/field", self._field)
        post("/ideas/{id}/duplicate", self._duplicate)
        post("/ideas/{id}/split", self._split)
        post("/ideas/{id}/reveal", self._reveal)
        post("/ideas/{id}/move", self._move)
        get("/groups", self._groups)
        get("/groups/{id}", self._group)
        post("/groups/{id}/rename", self._rename)
        post("/groups/{id}/merge", self._merge)
        post("/groups/{id}/unmerge", self._unmerge)
        get("/map.svg", self._map)
        get("/counts.svg", self._counts)
        get("/reach", self._reach)
        get("/reach/{name}.svg", self._reach_picture)
        get("/summaries", self._summaries)
        post("/summaries", self._draft)
        get("/summaries/{id}", self._summary)
        post("/summaries/{id}", self._save_summary)
        post("/summaries/{id}/approve", self._approve_summary)
        post("/summaries/{id}/forward", self._forward)
        post("/summaries/{id}/mail", self._mail_again)
        get("/files/{name}", self._file)
        get("/audit", self._audit)
        get("/accounts", self._accounts)
        post("/accounts", self._add_account)
        post("/accounts/{name}", self._change_account)
        return application

    def start(self) -> None:
        """Read every idea for the summaries beside the start, on a thread and connection of
        its own: loading spaCy takes about 5 s and reading 100,000 ideas 30 s, which the first
        groups page would otherwise wait for (a page asked for meanwhile waits only for the
        rest)."""
        threading.Thread(target=self._warm, name="staff-warm-up", daemon=True).start()

    def _warm(self) -> None:
        try:
            store = Store(self.app.settings.db)
        except StoreError as err:
            log.warning("reading the ideas for summaries failed: %s", describe(err))
            return
        try:
            reports.summaries(store, self.taxonomy, self.catalogue, self.language, None)
        except Exception as err:  # the first groups page will read them, and meet it there
            log.warning("reading the ideas for summaries failed: %s", describe(err))
        finally:
            store.close()
        # What is alive now (spaCy, every idea's reading) lives as long as the process. Out of
        # the garbage collector's sight, its full passes no longer walk all of it again each
        # time forwarding a large field makes a hundred thousand objects (they took half the
        # time of making the spreadsheet rows). What is frozen and later dropped is still
        # freed by reference counting, unless it was part of a cycle.
        gc.freeze()

    async def stop(self) -> None:
        self._reader.shutdown(wait=True)
        if self._helper is not None:
            await asyncio.to_thread(self._helper.shutdown, wait=True, cancel_futures=True)
        self._store.close()

    async def _read(self, call: Callable[..., Any], *args: Any) -> Any:
        """A read on the pages' own thread and connection; a refusal becomes a page."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, call, *args)
        except REFUSED as err:
            raise Refused("staff_refused") from err

    def t(self, key: str, **params: object) -> str:
        return self.catalogue.text(self.language, key, **params)

    def tn(self, key: str, count: int, **params: object) -> str:
        return self.catalogue.plural(self.language, key, count, **params)

    # sessions and forms

    def _sign(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x00{value}".encode("utf-8", "replace")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _same(self, given: Any, expected: str) -> bool:
        return isinstance(given, str) and hmac.compare_digest(
            given.encode("utf-8", "replace"), expected.encode()
        )

    async def _member(self, request: web.Request) -> Member | None:
        token = request.cookies.get(COOKIE, "")
        if not token:
            return None
        now = _now()
        member = await self._read(accounts.session, self._store, token, now)
        if member is not None:
            seen = datetime.fromisoformat(member.seen_at) if member.seen_at else now
            if (now - seen).total_seconds() > TOUCH_SECONDS:
                await self.app.in_engine(self._touch, member.token_hash, _stamp(now))
        return member

    def _touch(self, token_hash: str, now: str) -> None:
        with self.app.engine.store.transaction():
            self.app.engine.store.touch_session(token_hash, now)

    async def _viewer(self, request: web.Request, admin: bool = False) -> Member:
        """The signed-in member reading a page; others are sent to sign in."""
        member = await self._member(request)
        if member is None:
            raise web.HTTPSeeOther(PREFIX + "login")
        if admin and not member.is_admin:
            raise Refused("staff_not_allowed", 403)
        return member

    async def _actor(
        self, request: web.Request, admin: bool = False, max_size: int | None = None
    ) -> tuple[Member, Any]:
        """The signed-in member sending a form, with the form; refused without a session,
        without the role, or without the form's token."""
        if max_size is not None:
            request = request.clone(client_max_size=max_size)
        form = await request.post()
        member = await self._member(request)
        if member is None:
            raise Refused("staff_signed_out", 403)
        if not self._same(form.get("csrf"), self._sign("csrf", member.token_hash)):
            raise Refused("staff_expired", 403)
        if admin and not member.is_admin:
            raise Refused("staff_not_allowed", 403)
        return member, form

    def _context(self, request: web.Request, member: Member | None, **extra: Any) -> dict:
        done = request.query.get("done", "")
        return {
            "t": self.t,
            "tn": self.tn,
            "lang": self.t("web_lang"),
            "dir": self.t("web_dir"),
            "static": self.web.static_version,
            "member": member,
            "csrf": self._sign("csrf", member.token_hash) if member else "",
            "done": done if done in DONE else None,
            "undo": _int(request.query.get("undo")),
            "mail": request.query.get("mail") if request.query.get("mail") in MAIL else None,
            "path": request.path_qs,
            "fields": self.fields,
            "lanes": self.lanes,
            "lane_names": dict(self.lanes),
            **extra,
        }

    def _render(
        self, template: str, request: web.Request, context: dict, status: int = 200
    ) -> web.Response:
        return aiohttp_jinja2.render_template(
            f"staff/{template}", request, context, status=status, app_key=aiohttp_jinja2.APP_KEY
        )

    def _back(self, form: Any, done: str, **query: Any) -> web.HTTPSeeOther:
        """Back to the page the form was on (only ever a dashboard page), saying what happened."""
        back = form.get("back", "")
        if not isinstance(back, str) or not back.startswith(PREFIX) or "//" in back:
            back = PREFIX
        base = back.split("?", 1)[0]
        kept = {k: v for k, v in URL(back).query.items() if k not in ("done", "undo")}
        return web.HTTPSeeOther(f"{base}?{urlencode({**kept, 'done': done, **query})}")

    async def _run(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A change, in the engine's thread; the staff service's refusals become a page."""

        def job() -> Any:
            return call(*args, **kwargs)

        try:
            return await self.app.in_engine(job)
        except REFUSED as err:
            raise Refused("staff_refused") from err

    async def _refused(self, request: web.Request, err: Refused) -> web.Response:
        member = await self._member(request)
        # Why, in the moderator's language: the staff service's refusals name their sentence.
        cause = err.__cause__
        why = self.t(cause.key, **cause.params) if isinstance(cause, Refusal) and cause.key else ""
        context = self._context(request, member, problem=err.key, why=why)
        return self._render("refused.html", request, context, err.status)

    @web.middleware
    async def _refusals(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as err:
            return await self._refused(request, err)

    # signing in and out

    async def _login_form(
        self, request: web.Request, status: int = 200, problem: str = ""
    ) -> web.Response:
        pre = request.cookies.get(LOGIN_COOKIE, "")
        fresh = not (0 < len(pre) <= 64)
        if fresh:
            pre = secrets.token_urlsafe(24)
        context = self._context(
            request, None, login_csrf=self._sign("login", pre), problem=problem or None
        )
        response = self._render("login.html", request, context, status)
        if fresh:
            response.set_cookie(
                LOGIN_COOKIE,
                pre,
                httponly=True,
                samesite="Strict",
                secure=self.web.client(request)[1],
                path=PREFIX,
            )
        return response

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        pre = request.cookies.get(LOGIN_COOKIE, "")
        if not pre or not self._same(form.get("csrf"), self._sign("login", pre)):
            return await self._login_form(request, 403, "staff_expired")
        name, password = form.get("name", ""), form.get("password", "")
        if not isinstance(name, str) or not isinstance(password, str):
            return await self._login_form(request, 400, "staff_login_failed")
        name = name.strip()[:64]
        address, secure = self.web.client(request)
        keys = (f"name:{name.casefold()}", f"address:{address}")
        if not self.throttle.allowed(*keys):
            log.warning("staff sign-in held back after too many wrong passwords")
            return await self._login_form(request, 429, "staff_login_throttled")
        found = await self._read(accounts.authenticate, self._store, name, password[:1024])
        if found is None:
            self.throttle.failed(*keys)
            log.info("staff sign-in failed")
            return await self._login_form(request, 403, "staff_login_failed")
        token = await self.app.in_engine(
            accounts.open_session, self.app.engine.store, found, _stamp(_now())
        )
        response = web.HTTPSeeOther(PREFIX)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="Strict", secure=secure, path=PREFIX
        )
        response.del_cookie(LOGIN_COOKIE, path=PREFIX)
        raise response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        everywhere = form.get("everywhere") == "1"
        await self.app.in_engine(
            accounts.close_session, self.app.engine.store, member, _stamp(_now()), everywhere
        )
        response = web.HTTPSeeOther(PREFIX + "login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response

    # the review queue

    def _shown(self, idea: dict[str, Any]) -> dict[str, Any]:
        """An idea as a page shows it: redacted, with its field's name."""
        labels = self.catalogue.redaction_labels(self.language)
        lane = idea["confirmed_field"] or idea["suggested_field"] or ""
        return {
            **{k: v for k, v in idea.items() if k not in ("text", "findings", "kept")},
            "shown": findings.for_others(idea, labels),
            "field": lane,
            "field_name": dict(self.lanes).get(lane, lane or self.t("workshop_no_field")),
        }

    def _queue_page(self, states: tuple[str, ...], lane: str | None, after: int) -> dict:
        store = self._store
        ideas = [self._shown(i) for i in store.review_queue(states, lane, PAGE + 1, after)]
        return {
            "ideas": ideas[:PAGE],
            "more": ideas[PAGE]["id"] - 1 if len(ideas) > PAGE else None,
            "counts": store.review_counts(),
        }

    async def _queue(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        state = request.query.get("state", "open")
        states = (review.PENDING, review.HELD) if state not in STATES else (state,)
        lane = request.query.get("field") or None
        if lane not in dict(self.lanes):
            lane = None
        after = _int(request.query.get("after"), 0) or 0
        page = await self._read(self._queue_page, states, lane, after)
        context = self._context(
            request,
            member,
            state=state if state in STATES else "open",
            lane=lane,
            reasons=review.REASONS,
            **page,
        )
        return self._render("queue.html", request, context)

    async def _idea(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        idea_id = _int(request.match_info["id"])
        idea = await self._read(self._store.staff_idea, idea_id) if idea_id else None
        if idea is None:
            raise web.HTTPNotFound()
        history = await self._read(
            lambda: self._store.audit_entries(subject=f"idea:{idea_id}", limit=50)
        )
        context = self._context(
            request, member, idea=self._shown(idea), history=history, reasons=review.REASONS
        )
        return self._render("idea.html", request, context)

    def _number(self, request: web.Request) -> int:
        """The idea, group or summary number in the path."""
        number = _int(request.match_info["id"])
        if number is None:
            raise web.HTTPNotFound()
        return number

    async def _decide(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        idea_id, state = self._number(request), form.get("state")
        if state not in review.AUDITED_AS:
            raise Refused("staff_bad_form")
        reason = form.get("reason") or None
        if state == review.REJECTED and reason not in review.REASONS:
            raise Refused("staff_reason_needed")
        note = form.get("note") if isinstance(form.get("note"), str) else None
        store, now = self.app.engine.store, _stamp(_now())
        was = await self._run(review.review, store, idea_id, state, member.actor, now, reason, note)
        if was is None:
            raise web.HTTPNotFound()
        done = {review.APPROVED: "approved", review.REJECTED: "rejected"}.get(state, "reopened")
        raise self._back(form, done, undo=idea_id)

    async def _undo(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        store, now = self.app.engine.store, _stamp(_now())
        await self._run(review.undo, store, self._number(request), member.actor, now)
        raise self._back(form, "undone")

    async def _field(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        field = form.get("field")
        if field not in dict(self.fields):
            raise Refused("staff_bad_form")
        engine = self.app.engine
        await self._run(
            review.correct_field,
            engine.store,
            engine.taxonomy,
            engine.nlp,
            self._number(request),
            field,
            member.actor,
            _stamp(_now()),
        )
        raise self._back(form, "field")

    async def _duplicate(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        of = _int(
            form.get("of", "").strip().lstrip("#") if isinstance(form.get("of"), str) else None
        )
        if of is None:
            raise Refused("staff_bad_form")
        store, idea_id = self.app.engine.store, self._number(request)
        await self._run(review.mark_duplicate, store, idea_id, of, member.actor, _stamp(_now()))
        raise self._back(form, "duplicate", undo=idea_id)

    async def _split(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        parts = form.get("parts")
        if not isinstance(parts, str):
            raise Refused("staff_bad_form")
        engine = self.app.engine
        await self._run(
            review.split,
            engine.store,
            engine.nlp,
            self._number(request),
            parts.splitlines()[:20],
            member.actor,
            _stamp(_now()),
        )
        raise self._back(form, "split")

    async def _reveal(self, request: web.Request) -> web.Response:
        member, form = await self._actor(request, admin=True)
        reason = form.get("reason")
        if not isinstance(reason, str):
            raise Refused("staff_bad_form")
        idea_id = self._number(request)
        raw = await self._run(
            review.reveal, self.app.engine.store, idea_id, member.actor, reason, _stamp(_now())
        )
        context = self._context(request, member, idea_id=idea_id, raw=raw)
        return self._render("reveal.html", request, context)

    # groups

    def _groups_page(self, lane: str) -> dict:
        fields = reports.summaries(self._store, self.taxonomy, self.catalogue, self.language, lane)
        shown = fields[0].groups if fields else []
        ids = [c for g in shown for c in [g.id, *g.merged_from]]
        trend = self._store.group_trend(groups.trend_since(_now()), ids)
        rows = []
        for g in shown:
            recent = sum(trend.get(c, (0, 0))[0] for c in [g.id, *g.merged_from])
            rows.append({"group": g, "recent": recent})
        all_groups = [
            (c["id"], c["custom_label"]) for c in self._store.clusters() if c["lane"] == lane
        ]
        return {
            "field_summary": fields[0] if fields else None,
            "rows": rows,
            "all_groups": all_groups,
        }

    async def _groups(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        lane = request.query.get("field") or self.lanes[0][0]
        if lane not in dict(self.lanes):
            raise web.HTTPNotFound()
        page = await self._read(self._groups_page, lane)
        context = self._context(request, member, lane=lane, **page)
        return self._render("groups.html", request, context)

    async def _group(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        cluster_id = self._number(request)
        cluster = await self._read(self._store.cluster, cluster_id)
        if cluster is None:
            raise web.HTTPNotFound()
        merged = await self._read(
            lambda: [c["id"] for c in self._store.clusters() if c["merged_into"] == cluster_id]
        )
        ideas = await self._read(self._store.ideas_in, [cluster_id, *merged])
        others = await self._read(
            lambda: [c for c in self._store.clusters() if c["id"] != cluster_id]
        )
        context = self._context(
            request,
            member,
            cluster=cluster,
            merged=merged,
            ideas=[self._shown(i) for i in ideas],
            others=others,
        )
        return self._render("group.html", request, context)

    async def _rename(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        label = form.get("label")
        if not isinstance(label, str):
            raise Refused("staff_bad_form")
        store = self.app.engine.store
        await self._run(
            groups.rename, store, self._number(request), label, member.actor, _stamp(_now())
        )
        raise self._back(form, "renamed")

    async def _merge(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        target = _int(form.get("into"))
        if target is None:
            raise Refused("staff_bad_form")
        store = self.app.engine.store
        await self._run(
            groups.merge, store, self._number(request), target, member.actor, _stamp(_now())
        )
        raise self._back(form, "merged")

    async def _unmerge(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        store = self.app.engine.store
        await self._run(groups.unmerge, store, self._number(request), member.actor, _stamp(_now()))
        raise self._back(form, "unmerged")

    async def _move(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        raw = form.get("to", "")
        target, lane = _int(raw), None
        if target is None:
            lane = raw[4:] if isinstance(raw, str) and raw.startswith("new:") else None
            if lane not in dict(self.lanes):
                raise Refused("staff_bad_form")
        engine = self.app.engine
        await self._run(
            groups.move,
            engine.store,
            engine.taxonomy,
            engine.nlp,
            self._number(request),
            target,
            member.actor,
            _stamp(_now()),
            lane,
        )
        raise self._back(form, "moved")

    async def _map(self, request: web.Request) -> web.Response:
        await self._viewer(request)
        svg = await self._read(self._picture, "map", self._map_svg)
        return web.Response(body=svg.encode(), content_type="image/svg+xml")

    async def _counts(self, request: web.Request) -> web.Response:
        await self._viewer(request)
        svg = await self._read(self._picture, "counts", self._counts_svg)
        return web.Response(body=svg.encode(), content_type="image/svg+xml")

    async def _reach(self, request: web.Request) -> web.Response:
        """Who took part, against the population: tables and pictures."""
        from mitreden.staff import reach

        member = await self._viewer(request)
        figures = await self._read(self._picture, "reach", self._reach_figures)
        labels = self._reach_labels()
        context = self._context(
            request, member, reach=figures, labels=labels, cells=reach.cells, K=reach.K
        )
        return self._render("reach.html", request, context)

    async def _reach_picture(self, request: web.Request) -> web.Response:
        """A dimension's bar chart, or the district map ("map")."""
        from mitreden.staff import charts, reach

        await self._viewer(request)
        name = request.match_info["name"]
        if name not in (*reach.DIMENSIONS, "map"):
            raise web.HTTPNotFound()
        figures = await self._read(self._picture, "reach", self._reach_figures)
        labels = self._reach_labels()
        wanted = "district" if name == "map" else name
        dimension = next(d for d in figures.dimensions if d.name == wanted)
        if name == "map":
            try:
                scene = charts.district_map(dimension, labels, self.app.settings.districts)
            except (OSError, ValueError, KeyError, TypeError) as err:  # the operator's file
                log.warning("the district outlines cannot be drawn: %s", describe(err))
                raise Refused("staff_reach_no_map") from err
        else:
            scene = charts.bars(dimension, labels)
        return web.Response(body=charts.svg(scene).encode(), content_type="image/svg+xml")

    def _reach_figures(self) -> "Reach":
        """The reach figures, with the population file read each time they are worked out
        (an operator may replace it while the server runs)."""
        from mitreden.staff import reach

        try:
            population = reach.load_population(self.app.settings.population)
        except reach.PopulationError as err:
            log.warning("the population file cannot be read: %s", describe(err))
            raise Refused("staff_reach_no_population") from err
        return reach.figures(self._store, population)

    def _population(self) -> "Population | None":
        """The population for a summary's table of who spoke; without it, no table."""
        from mitreden.staff import reach

        try:
            return reach.load_population(self.app.settings.population)
        except reach.PopulationError as err:
            log.warning("the population file cannot be read: %s", describe(err))
            return None

    def _reach_labels(self) -> "Labels":
        from mitreden.staff import reach

        return reach.Labels(self.app.engine.flow, self.catalogue, self.language)

    def _picture(self, name: str, draw: Callable[[], Any]) -> Any:
        """A picture drawn again only when ideas or groups changed (`Store.revision`): the map
        of 100,000 ideas takes seconds to draw. Runs on the one pages thread."""
        revision = self._store.revision()
        kept = self._pictures.get(name)
        if kept is None or kept[0] != revision:
            kept = self._pictures[name] = (revision, draw())
        return kept[1]

    def _counts_svg(self) -> str:
        """Ideas per week, stacked by lane."""
        from mitreden.staff import ideamap

        names = dict(self.lanes)
        rows = [
            (at, lane if lane in names else NEW_TOPICS) for at, lane in self._store.created_lanes()
        ]
        return ideamap.counts_chart(
            ideamap.weekly_counts(rows),
            list(names.items()),
            self.t("staff_counts_title"),
            self.tn("staff_counts_description", len(rows)),
        )

    def _map_svg(self) -> str:
        """Every idea (a sample of a large number) as a point, coloured by its lane."""
        from mitreden.staff import ideamap

        rows = self._store.idea_vectors()
        lane_of = {idea: lane for idea, _, lane, _ in self._store.memberships()}
        names = dict(self.lanes)
        points = []
        if rows:
            xy = ideamap.layout(np.stack([row[4] for row in rows]))
            for (idea_id, _, suggested, confirmed, _), (x, y) in zip(rows, xy, strict=True):
                lane = lane_of.get(idea_id) or confirmed or suggested
                lane = lane if lane in names else NEW_TOPICS
                href = f"{PREFIX}ideas/{idea_id}"
                points.append(ideamap.MapPoint(idea_id, float(x), float(y), lane, href))
        legend = [(lane, names[lane]) for lane in names]
        return ideamap.idea_map(
            points,
            legend,
            self.t("staff_map_title"),
            self.tn("staff_map_description", len(points)),
            point_label=lambda p: self.t("staff_idea_number", id=p.idea_id),
        )

    # summaries

    async def _summaries(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        latest = await self._read(self._store.summaries_of, None, 100)
        context = self._context(request, member, summaries=latest)
        return self._render("summaries.html", request, context)

    async def _draft(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        lane = form.get("field")
        if lane not in dict(self.lanes):
            raise Refused("staff_bad_form")
        engine = self.app.engine
        summary_id = await self._run(
            summaries.draft,
            engine.store,
            engine.taxonomy,
            engine.catalogue,
            lane,
            self.language,
            member.actor,
            _stamp(_now()),
            self._population(),
        )
        raise web.HTTPSeeOther(f"{PREFIX}summaries/{summary_id}?done=drafted")

    async def _summary(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        summary = await self._read(self._store.summary, self._number(request))
        if summary is None:
            raise web.HTTPNotFound()
        if summary["state"] != summaries.FORWARDED:
            self._file_maker()  # approving and forwarding may come next: start the helper
        context = self._context(
            request,
            member,
            summary=summary,
            preview=reports.to_html(summary["text"]),
            files=self._files_of(summary["id"]),
            smtp=self.app.settings.smtp() is not None,
        )
        return self._render("summary.html", request, context)

    def _files_of(self, summary_id: int) -> list[str]:
        folder = self.app.settings.forward_directory
        if not folder.is_dir():
            return []
        marker = f"-{summary_id}-"
        return sorted(
            p.name for p in folder.iterdir() if marker in p.name and FILE_NAME.fullmatch(p.name)
        )

    async def _save_summary(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request, max_size=SUMMARY_BODY)
        text = form.get("text")
        if not isinstance(text, str):
            raise Refused("staff_bad_form")
        store = self.app.engine.store
        await self._run(
            summaries.edit, store, self._number(request), text, member.actor, _stamp(_now())
        )
        raise self._back(form, "saved")

    async def _approve_summary(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request)
        store = self.app.engine.store
        await self._run(
            summaries.approve, store, self._number(request), member.actor, _stamp(_now())
        )
        self._file_maker()  # forwarding comes next: have the helper process ready
        raise self._back(form, "approved_summary")

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """Forward an approved summary. Only the transaction runs in the engine's thread: the
        files of a large field take seconds to make, and a mail server may be slow, and
        residents' replies must not wait for either."""
        from mitreden.staff import files, forwarding

        member, form = await self._actor(request)
        engine, settings = self.app.engine, self.app.settings
        number, now = self._number(request), _stamp(_now())
        settings.smtp()  # a broken mail setup is refused before anything is forwarded
        content, rendered = await self._prepared(number, summaries.APPROVED)
        paths = await self._aside(files.write, rendered, settings.forward_directory)
        result = await self._run(
            forwarding.commit,
            engine.store,
            settings,
            engine.taxonomy,
            engine.catalogue,
            number,
            paths,
            member.actor,
            now,
        )
        self.app.deliver_soon()  # Matrix sends each notice before it returns: not waited for
        mail = await self._mail(content, rendered, result, member.actor, now)
        raise self._back(form, "forwarded", notified=result.notified, mail=mail)

    async def _mail_again(self, request: web.Request) -> web.StreamResponse:
        """Send a forwarded summary's e-mail again, after the mail server had failed."""
        from mitreden.staff import forwarding

        member, form = await self._actor(request)
        number = self._number(request)
        content, rendered = await self._prepared(number, summaries.FORWARDED)
        result = forwarding.Forwarding(number)
        mail = await self._mail(content, rendered, result, member.actor, _stamp(_now()))
        raise self._back(form, "mailed", mail=mail)

    async def _prepared(self, number: int, state: str) -> tuple["Forwarded", dict]:
        """A summary in `state` with its ideas, read on the pages' thread, and its files,
        made beside the engine's thread and in the helper process. The PDF needs only the
        summary's text, so the helper makes it while the ideas are read."""
        from mitreden.staff import files, forwarding

        engine = self.app.engine
        summary = await self._read(forwarding.summary_in, self._store, number, state)
        pdf_file = self._start_pdf(summary)
        content = await self._read(
            forwarding.forwarded, self._store, engine.taxonomy, engine.catalogue, summary
        )
        try:
            rendered = await self._aside(files.render, content, self._helper, pdf_file)
        except BrokenProcessPool:
            self._lost_helper()
            rendered = await self._aside(files.render, content)
        return content, rendered

    def _start_pdf(self, summary: dict) -> "Future[bytes] | None":
        """The summary's PDF, begun in the helper process; None if it has just died."""
        from mitreden.staff import forwarding, pdf

        language = summary["language"]
        name = forwarding.field_name(self.taxonomy, self.catalogue, summary["lane"], language)
        try:
            return self._file_maker().submit(pdf.document, summary["text"], name, language)
        except BrokenProcessPool:
            self._lost_helper()
            return None

    def _file_maker(self) -> ProcessPoolExecutor:
        """The helper process, started if it is not running: when a summary is looked at or
        approved, so that the forward does not wait the second it takes (it loads fpdf2 and
        the fonts by making an empty PDF)."""
        from mitreden.staff import files, pdf

        if self._helper is None:
            self._helper = files.helper_process()
            self._helper.submit(pdf.document, "", "", "de")
        return self._helper

    def _lost_helper(self) -> None:
        """The helper process died (killed, out of memory): this time's files are made here,
        and the next forward starts another."""
        log.warning("the process that makes PDF and XLSX files stopped; starting another")
        if self._helper is not None:
            self._helper.shutdown(wait=False)
        self._helper = None

    async def _mail(
        self, content: "Forwarded", rendered: dict, result: "Forwarding", actor: str, now: str
    ) -> str:
        """Send the e-mail beside the engine, audit it in its thread; how it went, for the
        banner (catalogue keys staff_mail_*)."""
        from mitreden.staff import forwarding

        settings = self.app.settings
        result.mailed, result.mail_error = await self._aside(
            forwarding.send_mail, settings, content, rendered
        )
        await self._run(
            forwarding.record_mail,
            self.app.engine.store,
            settings,
            result.summary_id,
            result,
            actor,
            now,
        )
        return {None: "none", True: "sent", False: "failed"}[result.mailed]

    async def _aside(self, call: Callable[..., Any], *args: Any) -> Any:
        """Work that neither reads the pages' connection nor writes: on a thread of its own."""
        return await asyncio.get_running_loop().run_in_executor(None, call, *args)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self._viewer(request)
        name = request.match_info["name"]
        path = self.app.settings.forward_directory / name
        if not FILE_NAME.fullmatch(name) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(
            path, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    # the audit log

    async def _audit(self, request: web.Request) -> web.Response:
        member = await self._viewer(request)
        query = request.query
        actor, action, subject = (
            query.get(k, "").strip()[:200] or None for k in ("actor", "action", "subject")
        )
        before = _int(query.get("before"))
        entries = await self._read(
            lambda: self._store.audit_entries(actor, action, subject, before, 101)
        )
        actions = await self._read(self._store.audit_actions)
        context = self._context(
            request,
            member,
            entries=entries[:100],
            more=entries[99]["id"] if len(entries) > 100 else None,
            actions=actions,
            filters={"actor": actor or "", "action": action or "", "subject": subject or ""},
        )
        return self._render("audit.html", request, context)

    # accounts (admins only)

    async def _accounts(self, request: web.Request) -> web.Response:
        member = await self._viewer(request, admin=True)
        people = await self._read(self._store.staff_members)
        context = self._context(request, member, people=people, roles=accounts.ROLES)
        return self._render("accounts.html", request, context)

    async def _add_account(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request, admin=True)
        name, role, password = (form.get(k) for k in ("name", "role", "password"))
        if not all(isinstance(v, str) for v in (name, role, password)):
            raise Refused("staff_bad_form")
        await self._run(
            accounts.add,
            self.app.engine.store,
            name.strip(),
            role,
            password,
            member.actor,
            _stamp(_now()),
        )
        raise self._back(form, "account")

    async def _change_account(self, request: web.Request) -> web.StreamResponse:
        member, form = await self._actor(request, admin=True)
        name, change = request.match_info["name"], form.get("change")
        options: dict[str, Any] = {}
        if change == "disable":
            options["disabled"] = True
        elif change == "enable":
            options["disabled"] = False
        elif change == "role" and form.get("role") in accounts.ROLES:
            options["role"] = form.get("role")
        else:
            raise Refused("staff_bad_form")
        await self._run(
            accounts.change, self.app.engine.store, name, member.actor, _stamp(_now()), **options
        )
        raise self._back(form, "account")
