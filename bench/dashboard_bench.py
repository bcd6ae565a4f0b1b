"""How fast the moderators' dashboard (/staff/) answers on a large database, beside a small one.

Two databases are built in a temporary directory, in a child process so that this process's
memory is the server's: 1,000 and 100,000 ideas over the taxonomy's 12 action fields (unevenly,
as participation is: the largest field has about 19 % of the ideas, the smallest 4 %) and 2 % in
the lane of new topics, from participants on web, Telegram and Matrix, with districts, age bands,
actor groups, supporters, review decisions and their audit entries. The texts are German
proposals and reports from bench/datasets/ (cycling dialogues and Berlin's Ordnungsamt) with
small variations (a lead-in, a district named at the end), so spaCy's keyword analysis reads
real words; each text's personal-data findings are stored with it, as the chat stores them. The
embeddings are random but clustered (unit float32 vectors of dimension 384 near their group's
centre, group centres near their field's), so groups are groups. The groups are written straight
into the store, as a regrouping leaves them: 10 to 40 per field (a field's ideas / 20), 3 % of
each field's ideas in none yet, a near-duplicate now and then, one group per field named by a
moderator and one merged. The regrouping itself is measured by cluster_bench.py.

For each database the real `App` is started in this process (web chat on a free port of
127.0.0.1, embedding backend none), a moderator signs in with an aiohttp client, and each page
is requested N times one after the other: the queue (open, and approved), the groups of the
largest field, a new summary draft for that field (the POST that makes it) and its preview,
the audit log and the map. The first request of each page is shown apart (cold) from the rest
(p50, p95 and max, nearest rank). A page that is slow stops repeating once it used its time
budget and was requested warm at least twice. Then one summary per lane (12 fields and new
topics) is approved and forwarded to files (no SMTP, no Matrix; the web chat puts the residents'
notices on their pages) and the total is timed. The drafts of the lanes other than the largest
are made beforehand in one pass, the way `staff.summaries.draft` makes each (one summary of all
lanes gives each lane the same text as asking for it alone), so that they do not add 12 more
slow drafts to the run; only approving and forwarding are timed.

Peak memory is this process's VmHWM, reset before each page and phase where the kernel allows
it (its RSS at that moment is the floor); the profiling phase is not counted, since cProfile
itself takes gigabytes on a summary of 100,000 ideas. `--profile` runs the staff-service work
behind each figure over its goal once more under cProfile, in the engine's thread, and prints
where the time goes.

Run: python bench/dashboard_bench.py [--sizes 1000,100000] [--repeats N] [--budget S]
                                     [--profile] [--quick] [--json]
"""

import argparse
import asyncio
import concurrent.futures
import cProfile
import html
import json
import math
import multiprocessing
import os
import platform
import pstats
import re
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common
import aiohttp
import numpy as np
from _common import DISTRICT_NAMES as DISTRICTS
from _common import finish, log, percentile, stamp

from mitreden import reports
from mitreden.app import App
from mitreden.config import Settings, load_settings
from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.taxonomy import load_taxonomy
from mitreden.staff import accounts, forwarding, summaries
from mitreden.store import Store

HERE = Path(__file__).resolve().parent
JSON = dict[str, Any]
SIZES = (1_000, 100_000)
DIMENSION = 384
GOAL_PAGE_P95_MS = 500.0
GOAL_FORWARD_S = 10.0
GOAL_PAGES = ("queue", "groups", "preview")
MIN_WARM = 2
NAME, PASSWORD = "moderator", "bench password, not secret"
ACTOR = f"staff:{NAME}"
LANGUAGE = "de"
DAYS = 56
NEW_TOPIC_SHARE = 0.02
UNGROUPED_SHARE = 0.03
IDEAS_PER_GROUP = 20
GROUPS_PER_FIELD = (10, 40)
# mitreden's own code in a profile, by its path in the repository.
OURS = ("mitreden/", "nlp/", "store/", "bot/", "flows/")
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
LOGIN_FORM = 'action="/staff/login"'


# building a database (in the child process)


@dataclass
class Lane:
    """One lane's groups while building: each group's centre and the texts its ideas take."""

    name: str
    cluster_ids: list[int]
    weights: np.ndarray
    centres: np.ndarray
    texts: list[list[str]]
    near: np.ndarray
    """The lane's centre: ideas in no group yet lie around it."""
    pool: list[str]


def make_lane(
    name: str, size: int, labels: list[list[str]], store: Store, now: str, rng: np.random.Generator
) -> Lane:
    low, high = GROUPS_PER_FIELD if name != NEW_TOPICS else (2, 20)
    count = min(max(size // IDEAS_PER_GROUP, low), high)
    centre = common.unit(rng.standard_normal(DIMENSION))
    centres = common.unit(centre + 0.9 * common.unit(rng.standard_normal((count, DIMENSION))))
    texts = []
    for g in range(count):
        label = labels[g % len(labels)]
        picked = rng.choice(len(label), size=min(len(label), 60), replace=False)
        texts.append([label[k] for k in picked])
    weights = 1.0 / np.arange(1, count + 1) ** 0.7  # some groups big, most small
    return Lane(
        name,
        [store.new_cluster(name, now) for _ in range(count)],
        weights / weights.sum(),
        centres,
        texts,
        centre,
        [t for label in labels for t in label],
    )


def build(path: str, count: int, seed: int) -> JSON:
    """A database of `count` ideas at `path`; what is in it."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    fields = [f.id for f in load_taxonomy(Settings().taxonomy).leaves]
    texts = common.pools(fields, rng)
    weights = 1.0 / (np.arange(len(fields)) + 3.0)
    weights = rng.permutation(weights / weights.sum())
    new = rng.random(count) < NEW_TOPIC_SHARE
    field_of = rng.choice(len(fields), size=count, p=weights)
    sizes = {f: int(np.sum((field_of == k) & ~new)) for k, f in enumerate(fields)}
    sizes[NEW_TOPICS] = int(new.sum())
    created = np.sort(rng.uniform(0, DAYS * 86400, size=count))
    begin = now - timedelta(days=DAYS)
    people = max(1, count * 2 // 5)
    channel_of = rng.choice(
        len(common.CHANNELS), size=people, p=[share for _, share in common.CHANNELS]
    )
    pids = [f"{common.CHANNELS[c][0]}:bench-{k:07d}" for k, c in enumerate(channel_of)]
    author = rng.integers(people, size=count)
    store = Store(path)
    try:
        with store.transaction():
            lanes = {
                lane: make_lane(
                    lane,
                    sizes[lane],
                    texts[lane] if lane != NEW_TOPICS else list(common.labelled_texts().values()),
                    store,
                    stamp(begin),
                    rng,
                )
                for lane in [*fields, NEW_TOPICS]
            }
        ideas, members, audit, last_in = [], [], [], {}
        districts = list(DISTRICTS)
        for i in range(count):
            idea_id = i + 1
            field_id = fields[field_of[i]]
            lane = lanes[NEW_TOPICS if new[i] else field_id]
            at = stamp(begin + timedelta(seconds=float(created[i])))
            grouped = rng.random() >= UNGROUPED_SHARE
            if grouped:
                g = int(rng.choice(len(lane.cluster_ids), p=lane.weights))
                base = lane.texts[g][rng.integers(len(lane.texts[g]))]
                centre = lane.centres[g]
                cluster = lane.cluster_ids[g]
                duplicate = last_in.get(cluster) if rng.random() < 0.04 else None
                members.append((idea_id, cluster, duplicate))
                last_in[cluster] = idea_id
            else:
                base = lane.pool[rng.integers(len(lane.pool))]
                centre = common.unit(lane.near + 0.9 * common.unit(rng.standard_normal(DIMENSION)))
            vector = common.unit(centre + rng.normal(0, 0.045, DIMENSION).astype(np.float32))
            district = districts[rng.integers(len(districts))] if rng.random() < 0.8 else None
            text, found = common.varied(base, district, rng)
            draw = rng.random()
            review = (
                "approved"
                if draw < 0.45
                else "rejected"
                if draw < 0.49
                else "held"
                if draw < 0.5
                else "pending"
            )
            reason = (
                common.REASONS[rng.integers(len(common.REASONS))] if review == "rejected" else None
            )
            if review in ("approved", "rejected"):
                detail = {"was": "pending", **({"reason": reason} if reason else {})}
                audit.append((at, ACTOR, f"idea.{review}", f"idea:{idea_id}", json.dumps(detail)))
            ideas.append(
                (
                    idea_id,
                    pids[author[i]],
                    text,
                    LANGUAGE,
                    field_id,
                    float(rng.uniform(0.2, 0.4) if new[i] else rng.uniform(0.35, 0.95)),
                    None if new[i] or rng.random() < 0.15 else field_id,
                    district,
                    common.AGE_BANDS[rng.integers(len(common.AGE_BANDS))]
                    if rng.random() < 0.7
                    else None,
                    common.ACTOR_GROUPS[rng.integers(len(common.ACTOR_GROUPS))]
                    if rng.random() < 0.75
                    else None,
                    int(rng.random() < 0.25),
                    at,
                    at,
                    vector.tobytes(),
                    "bench:clustered-random",
                    review,
                    reason,
                    found,
                )
            )
        told = sorted({pids[author[i]] for i in range(count) if ideas[i][10]})
        supports = {
            (pids[rng.integers(people)], int(rng.integers(count)) + 1)
            for _ in range(count * 2 // 5)
        }
        with store.transaction():
            store.db.executemany(
                "INSERT INTO participants (id, channel, created_at) VALUES (?, ?, ?)",
                [(p, p.split(":")[0], stamp(begin)) for p in pids],
            )
            store.db.executemany(
                "INSERT INTO ideas (id, participant_id, text, language, suggested_field, "
                "suggested_score, confirmed_field, district, age_band, actor_group, notify, "
                "created_at, updated_at, embedding, embedding_model, review, review_reason, "
                "findings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ideas,
            )
            store.db.executemany(
                "INSERT INTO cluster_members (idea_id, cluster_id, duplicate_of) VALUES (?, ?, ?)",
                members,
            )
            store.db.executemany(
                "INSERT INTO supports VALUES (?, ?, ?)",
                [(p, i, stamp(now)) for p, i in sorted(supports)],
            )
            store.db.executemany(
                "INSERT INTO contacts VALUES (?, ?, ?, ?)",
                [(p, p.split(":")[0], common.address(p), stamp(now)) for p in told],
            )
            store.db.executemany(
                "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                audit,
            )
            for lane in lanes.values():
                first, *_, last = lane.cluster_ids
                store.db.execute(
                    "UPDATE clusters SET custom_label = ? WHERE id = ?",
                    ("Von Moderation benannt", first),
                )
                store.db.execute("UPDATE clusters SET merged_into = ? WHERE id = ?", (first, last))
            store.db.execute(
                "INSERT INTO cluster_runs (at, model, ideas, clusters, kept_ids, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (stamp(now), "bench:clustered-random", len(members), len(last_in), 0, 0.0),
            )
            # A regrouping leaves no empty group behind; a named or merged-into one stays.
            store.db.execute(
                "DELETE FROM clusters WHERE id NOT IN (SELECT cluster_id FROM cluster_members) "
                "AND custom_label IS NULL AND id NOT IN "
                "(SELECT merged_into FROM clusters WHERE merged_into IS NOT NULL)"
            )
            groups = dict(
                store.db.execute("SELECT lane, count(*) FROM clusters GROUP BY lane").fetchall()
            )
        store.checkpoint()
    finally:
        store.close()
    return {
        "ideas": count,
        "path": path,
        "build_s": round(time.perf_counter() - started, 2),
        "lane_ideas": sizes,
        "groups": groups,
        "largest": max(fields, key=lambda f: sizes[f]),
        "participants": people,
        "supports": len(supports),
        "contacts": len(told),
        "audit": len(audit),
        "mb": round(os.path.getsize(path) / 2**20, 1),
    }


# memory


def reset_peak() -> bool:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so a database's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# the moderator's browser


class Refused(Exception):
    """A request the dashboard did not answer as a signed-in moderator expects."""


class Moderator:
    """An aiohttp session with its own cookie jar, signed in; every request is timed."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base, self.csrf = session, base.rstrip("/"), ""

    async def login(self) -> None:
        await self.get("/staff/login", signed_in=False)
        async with self.session.post(
            self.base + "/staff/login", data={"name": NAME, "password": PASSWORD, "csrf": self.csrf}
        ) as response:
            body = await response.text()
            if response.url.path != "/staff/" or LOGIN_FORM in body:
                raise Refused(f"sign-in failed: {response.status}")
        await self.get("/staff/")

    async def get(self, path: str, signed_in: bool = True) -> tuple[float, int]:
        """Milliseconds until the whole page was read, and its size in bytes."""
        start = time.perf_counter()
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            body = await response.read()
            elapsed = (time.perf_counter() - start) * 1000
        text = body.decode("utf-8", "replace")
        if response.status != 200 or (signed_in and LOGIN_FORM in text[:20000]):
            raise Refused(f"GET {path}: {response.status}")
        token = CSRF.search(text)
        if token:
            self.csrf = html.unescape(token.group(1))
        return elapsed, len(body)

    async def post(self, path: str, form: dict[str, str]) -> tuple[float, str]:
        """Milliseconds until the redirect came, and where it points."""
        start = time.perf_counter()
        async with self.session.post(
            self.base + path, data={**form, "csrf": self.csrf}, allow_redirects=False
        ) as response:
            await response.read()
            elapsed = (time.perf_counter() - start) * 1000
        if response.status != 303:
            raise Refused(f"POST {path}: {response.status}")
        return elapsed, response.headers["Location"]


# timing


@dataclass
class Timing:
    page: str
    ideas: int
    cold_ms: float
    warm_ms: list[float]
    kb: float
    peak_mb: float = 0.0
    """This process's peak while the page was requested (since the start of the database's
    run where the peak cannot be reset)."""

    def row(self) -> JSON:
        return {
            "page": self.page,
            "ideas": self.ideas,
            "n": 1 + len(self.warm_ms),
            "cold_ms": round(self.cold_ms, 1),
            **{
                f"{name}_ms": None if math.isnan(v) else round(v, 1)
                for name, v in (
                    ("p50", percentile(self.warm_ms, 50)),
                    ("p95", percentile(self.warm_ms, 95)),
                    ("max", max(self.warm_ms, default=math.nan)),
                )
            },
            "kb": round(self.kb, 1),
            "peak_mb": round(self.peak_mb),
        }


async def measure(
    page: str,
    ideas: int,
    request: Callable[[], Awaitable[tuple[float, int]]],
    repeats: int,
    budget: float,
) -> Timing:
    """`repeats` requests, the first one cold; fewer (at least MIN_WARM warm) once over budget."""
    reset_peak()
    began = time.perf_counter()
    cold, size = await request()
    warm: list[float] = []
    while 1 + len(warm) < repeats and (
        len(warm) < MIN_WARM or time.perf_counter() - began < budget
    ):
        warm.append((await request())[0])
    timing = Timing(page, ideas, cold, warm, size / 1024, peak_mb())
    log(f"  {page:<16} cold {cold:9.1f} ms, p95 {percentile(warm, 95):9.1f} ms ({len(warm)} warm)")
    return timing


@dataclass
class Forwarded:
    ideas: int
    lanes: int
    total_s: float
    approve_ms: list[float]
    forward_ms: list[float]
    largest_lane_s: float
    files: int
    notified: int
    drafts_s: float
    """Making the other lanes' drafts beforehand (not in total_s)."""


@dataclass
class Result:
    database: JSON
    start_s: float
    timings: list[Timing] = field(default_factory=list)
    forwarded: Forwarded | None = None
    peak_reset: bool = False
    peaks: dict[str, float] = field(default_factory=dict)
    """This process's peak memory by phase: starting, each page, drafts, forwarding, profiling."""

    def mark(self, phase: str) -> None:
        self.peaks[phase] = max(self.peaks.get(phase, 0.0), peak_mb())
        reset_peak()

    profiles: dict[str, JSON] = field(default_factory=dict)
    waits: dict[str, JSON] = field(default_factory=dict)
    """How long the engine's thread kept others waiting while the largest field was forwarded."""


def settings_for(database: JSON, folder: Path) -> Settings:
    empty = folder / "empty.toml"
    empty.write_text("")
    return load_settings(
        empty,
        environ={},
        db=database["path"],
        web_listen="127.0.0.1:0",
        embedding_backend="none",
        forward_dir=str(folder / f"forwarded-{database['ideas']}"),
    )


def other_drafts(app: App, skip: str, now: str) -> dict[str, int]:
    """A draft for every lane but `skip`, as `summaries.draft` makes each, from one summary of
    all lanes (keywords are weighed over every group either way, so the text is the same)."""
    engine, store = app.engine, app.engine.store
    fields = reports.summaries(store, engine.taxonomy, engine.catalogue, LANGUAGE, None)
    made = {}
    for summary in fields:
        if summary.lane == skip:
            continue
        text = reports.to_markdown([summary], engine.catalogue, LANGUAGE)
        with store.transaction():
            made[summary.lane] = store.add_summary(
                summary.lane, LANGUAGE, text, store.lane_idea_ids(summary.lane), ACTOR, now
            )
            store.audit(now, ACTOR, "summary.drafted", f"summary:{made[summary.lane]}")
    return made


async def forward_all(app: App, moderator: Moderator, lanes: dict[str, int]) -> Forwarded:
    """Approve and forward each lane's draft over HTTP, one after the other."""
    approve_ms, forward_ms, notified, per_lane = [], [], 0, {}
    began = time.perf_counter()
    for lane, summary_id in lanes.items():
        ms, _ = await moderator.post(f"/staff/summaries/{summary_id}/approve", {})
        approve_ms.append(ms)
        ms, where = await moderator.post(f"/staff/summaries/{summary_id}/forward", {})
        if "done=forwarded" not in where:
            raise Refused(f"forwarding {lane}: sent to {where}")
        forward_ms.append(ms)
        per_lane[lane] = (approve_ms[-1] + ms) / 1000
        found = re.search(r"notified=(\d+)", where)
        notified += int(found.group(1)) if found else 0
    total = time.perf_counter() - began
    folder = app.settings.forward_directory
    store = app.engine.store
    ideas = sum(len(store.summary(s)["idea_ids"]) for s in lanes.values())
    return Forwarded(
        ideas=ideas,
        lanes=len(lanes),
        total_s=total,
        approve_ms=approve_ms,
        forward_ms=forward_ms,
        largest_lane_s=max(per_lane.values()),
        files=sum(1 for p in folder.iterdir() if not p.name.startswith(".")),
        notified=notified,
        drafts_s=0.0,
    )


async def run_database(
    database: JSON, folder: Path, repeats: int, budget: float, profile: bool
) -> Result:
    settings = settings_for(database, folder)
    size, largest = database["ideas"], database["largest"]
    reset = reset_peak()
    began = time.perf_counter()
    app = App(settings)
    await app.start()
    # The word lists load, and the dashboard reads every idea for the summaries, on threads
    # of their own at start: wait for both, so no page shares the CPU with them.
    for thread in threading.enumerate():
        if thread.name in ("word-lists", "staff-warm-up"):
            await asyncio.to_thread(thread.join)
    result = Result(database, time.perf_counter() - began, peak_reset=reset)
    result.mark("start")
    try:
        now = stamp(datetime.now(UTC))
        store = app.engine.store
        await app.in_engine(accounts.add, store, NAME, accounts.MODERATOR, PASSWORD, "bench", now)
        assert app.web is not None and app.web.address is not None
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, an address
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            moderator = Moderator(session, app.web.address)
            await moderator.login()
            drafted: list[int] = []

            async def draft() -> tuple[float, int]:
                ms, where = await moderator.post("/staff/summaries", {"field": largest})
                found = re.match(r"/staff/summaries/(\d+)", where)
                if not found:
                    raise Refused(f"drafting: sent to {where}")
                drafted.append(int(found.group(1)))
                return ms, 0

            pages: list[tuple[str, Callable[[], Awaitable[tuple[float, int]]]]] = [
                ("queue", lambda: moderator.get("/staff/")),
                ("queue approved", lambda: moderator.get("/staff/?state=approved")),
                ("groups", lambda: moderator.get(f"/staff/groups?field={largest}")),
                ("draft", draft),
                ("preview", lambda: moderator.get(f"/staff/summaries/{drafted[-1]}")),
                ("audit", lambda: moderator.get("/staff/audit")),
                ("map", lambda: moderator.get("/staff/map.svg")),
            ]
            for page, request in pages:
                result.timings.append(await measure(page, size, request, repeats, budget))
                result.peaks[page] = result.timings[-1].peak_mb
            reset_peak()
            log(f"  making the drafts of the other lanes ({size:,} ideas)")
            started = time.perf_counter()
            lanes = await app.in_engine(other_drafts, app, largest, now)
            drafts_s = time.perf_counter() - started
            result.mark("drafts")
            lanes = {largest: drafted[-1], **lanes}
            log(f"  approving and forwarding {len(lanes)} lanes")
            result.forwarded = await forward_all(app, moderator, lanes)
            result.forwarded.drafts_s = drafts_s
            log(f"  forwarded in {result.forwarded.total_s:.2f} s")
            result.mark("forwarding")
            log("  the engine's thread while the largest field is forwarded")
            result.waits = await engine_waits(app, moderator, drafted[-1], now)
            result.mark("waits")
        if profile:
            result.profiles = await profiles(app, result, largest, drafted[-1])
            result.mark("profiling")
    finally:
        await app.stop()
    return result


# where the time goes


def profiled(call: Callable[..., Any], *args: Any) -> JSON:
    """`call(*args)` under cProfile in this thread: its heaviest functions."""
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    try:
        call(*args)
    finally:
        profiler.disable()
    seconds = time.perf_counter() - began
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        {
            "function": f"{short(path)}:{line}({name})",
            "calls": calls,
            "own_s": round(own, 3),
            "cumulative_s": round(cumulative, 3),
        }
        for (path, line, name), (_, calls, own, cumulative, _) in stats.items()
    ]
    return {
        "seconds": round(seconds, 2),
        "cumulative": sorted(rows, key=lambda r: -r["cumulative_s"])[:14],
        "own": sorted(rows, key=lambda r: -r["own_s"])[:8],
        "ours": sorted(
            (r for r in rows if r["function"].startswith(OURS)), key=lambda r: -r["cumulative_s"]
        )[:12],
    }


def short(path: str) -> str:
    for marker in ("site-packages/", str(HERE.parent) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


async def profiles(app: App, result: Result, largest: str, summary_id: int) -> JSON:
    """Profile, in the engine's thread, the service work behind each figure over its goal."""
    engine, store = app.engine, app.engine.store
    now = stamp(datetime.now(UTC))
    over = {
        t.page
        for t in result.timings
        if t.page in (*GOAL_PAGES, "draft") and percentile(t.warm_ms, 95) >= GOAL_PAGE_P95_MS
    }
    targets: dict[str, tuple[Callable[..., Any], tuple]] = {
        "queue": (
            lambda: (store.review_queue(("pending", "held"), None, 51, 0), store.review_counts()),
            (),
        ),
        "groups": (
            reports.summaries,
            (store, engine.taxonomy, engine.catalogue, LANGUAGE, largest),
        ),
        "draft": (
            summaries.draft,
            (store, engine.taxonomy, engine.catalogue, largest, LANGUAGE, ACTOR, now),
        ),
        "preview": (lambda: reports.to_html(store.summary(summary_id)["text"]), ()),
    }
    out = {}
    for page in sorted(over & set(targets)):
        log(f"  profiling {page}")
        call, args = targets[page]
        out[page] = await app.in_engine(profiled, call, *args)
    if result.forwarded and result.forwarded.total_s >= GOAL_FORWARD_S:
        log("  profiling forwarding of the largest field")
        out["forward"] = await app.in_engine(profiled, forward_copy, app, summary_id, now)
    return out


def approved_copy(app: App, summary_id: int, now: str) -> int:
    """An approved copy of a draft (the same text and ideas): one lane's work to forward."""
    store = app.engine.store
    original = store.summary(summary_id)
    with store.transaction():
        copy = store.add_summary(
            original["lane"], LANGUAGE, original["text"], original["idea_ids"], ACTOR, now
        )
    summaries.approve(store, copy, ACTOR, now)
    return copy


def forward_in_engine(app: App, summary_id: int, now: str) -> None:
    """All of forwarding in this thread, as the command line does it."""
    engine = app.engine
    forwarding.forward(
        engine.store, app.settings, engine.taxonomy, engine.catalogue, summary_id, ACTOR, now
    )


def forward_copy(app: App, summary_id: int, now: str) -> None:
    forward_in_engine(app, approved_copy(app, summary_id, now), now)


async def engine_waits(app: App, moderator: Moderator, summary_id: int, now: str) -> JSON:
    """While a copy of the largest field's summary is forwarded, an empty call into the
    engine's thread every 20 ms stands for a resident's step: how long it waited. Through the
    dashboard (only the transaction in that thread), beside all of forwarding in that thread
    (the command line's way, and the dashboard's before it split the work)."""

    async def pinged(work: Callable[[], Awaitable[Any]]) -> JSON:
        waits: list[float] = []
        done = asyncio.Event()

        async def ping() -> None:
            while not done.is_set():
                began = time.perf_counter()
                await app.in_engine(lambda: None)
                waits.append((time.perf_counter() - began) * 1000)
                await asyncio.sleep(0.02)

        pinger = asyncio.create_task(ping())
        began = time.perf_counter()
        try:
            await work()
        finally:
            done.set()
            await pinger
        return {
            "forward_s": round(time.perf_counter() - began, 2),
            "pings": len(waits),
            "wait_p50_ms": round(percentile(waits, 50), 1),
            "wait_p95_ms": round(percentile(waits, 95), 1),
            "wait_max_ms": round(max(waits), 1),
        }

    copy = await app.in_engine(approved_copy, app, summary_id, now)
    dashboard = await pinged(lambda: moderator.post(f"/staff/summaries/{copy}/forward", {}))
    copy = await app.in_engine(approved_copy, app, summary_id, now)
    in_engine = await pinged(lambda: app.in_engine(forward_in_engine, app, copy, now))
    return {"dashboard": dashboard, "all in the engine's thread": in_engine}


# the report


def machine() -> JSON:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
        # Other work on the same cores moves the figures; the load says whether there was any.
        "load": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def goals(results: list[Result]) -> JSON:
    """The goals at the largest database, with the same figure at the smallest beside it."""
    big, small = results[-1], results[0]

    def p95(result: Result, page: str) -> float:
        return next(percentile(t.warm_ms, 95) for t in result.timings if t.page == page)

    out: JSON = {}
    for page in GOAL_PAGES:
        value = p95(big, page)
        out[f"{page}_p95_ms"] = {
            "goal": f"< {GOAL_PAGE_P95_MS:.0f} ms at {big.database['ideas']:,} ideas",
            "value": round(value, 1),
            "beside": round(p95(small, page), 1),
            "beside_ideas": small.database["ideas"],
            "met": value < GOAL_PAGE_P95_MS,
        }
    if big.forwarded and small.forwarded:
        out["forward_s"] = {
            "goal": f"< {GOAL_FORWARD_S:.0f} s for {big.forwarded.lanes} lanes at "
            f"{big.database['ideas']:,} ideas",
            "value": round(big.forwarded.total_s, 2),
            "beside": round(small.forwarded.total_s, 2),
            "beside_ideas": small.database["ideas"],
            "met": big.forwarded.total_s < GOAL_FORWARD_S,
        }
    return out


def payload(results: list[Result], args: argparse.Namespace) -> JSON:
    return {
        "machine": machine(),
        "repeats": args.repeats,
        "budget_s": args.budget,
        "databases": [
            {
                **{k: v for k, v in r.database.items() if k != "path"},
                "start_s": round(r.start_s, 2),
                # cProfile itself takes gigabytes on a summary of 100,000 ideas: not the server's.
                "peak_mb": round(
                    max((mb for phase, mb in r.peaks.items() if phase != "profiling"), default=0)
                ),
                "peaks_mb": {phase: round(mb) for phase, mb in r.peaks.items()},
                "peak_reset": r.peak_reset,
            }
            for r in results
        ],
        "pages": [t.row() for r in results for t in r.timings],
        "forwarding": [
            {"ideas_in_db": r.database["ideas"], **asdict(r.forwarded)}
            for r in results
            if r.forwarded
        ],
        "engine_waits": [{"ideas_in_db": r.database["ideas"], **r.waits} for r in results],
        "goals": goals(results),
        "profiles": {str(r.database["ideas"]): r.profiles for r in results if r.profiles},
    }


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def print_report(data: JSON) -> None:
    print(
        f"{'page':<16} {'ideas':>8} {'n':>3} {'cold ms':>9} {'p50 ms':>9} {'p95 ms':>9} "
        f"{'max ms':>9} {'KB':>7}"
    )
    for row in data["pages"]:
        print(
            f"{row['page']:<16} {row['ideas']:>8,} {row['n']:>3} {ms(row['cold_ms']):>9} "
            f"{ms(row['p50_ms']):>9} {ms(row['p95_ms']):>9} {ms(row['max_ms']):>9} "
            f"{row['kb']:>7,.1f}"
        )
    print()
    for f in data["forwarding"]:
        print(
            f"forwarding at {f['ideas_in_db']:,} ideas: {f['lanes']} lanes, {f['ideas']:,} ideas, "
            f"{f['total_s']:.2f} s in all (approve p50 {percentile(f['approve_ms'], 50):.0f} ms, "
            f"forward p50 {percentile(f['forward_ms'], 50):.0f} ms, max "
            f"{max(f['forward_ms']):.0f} ms); {f['files']} files, {f['notified']:,} residents "
            f"told; the other lanes' drafts took {f['drafts_s']:.1f} s beforehand (not counted)"
        )
    for w in data["engine_waits"]:
        for how, f in w.items():
            if how == "ideas_in_db":
                continue
            print(
                f"while forwarding the largest field at {w['ideas_in_db']:,} ideas, {how}: "
                f"{f['forward_s']:.2f} s; the engine's thread answered {f['pings']} calls in "
                f"p50 {f['wait_p50_ms']:,.1f} ms, p95 {f['wait_p95_ms']:,.1f} ms, max "
                f"{f['wait_max_ms']:,.1f} ms"
            )
    for d in data["databases"]:
        groups = sum(d["groups"].values())
        print(
            f"database {d['ideas']:,} ideas: built in {d['build_s']:.1f} s ({d['mb']:,.0f} MB, "
            f"{groups} groups, {d['participants']:,} participants, {d['supports']:,} supports, "
            f"{d['audit']:,} audit entries), largest field {d['largest']} "
            f"({d['lane_ideas'][d['largest']]:,} ideas); App ready in {d['start_s']:.2f} s "
            "(word lists loaded, every idea read for the summaries); "
            f"peak memory {d['peak_mb']:,} MB"
            + ("" if d["peak_reset"] else " (peak since the process began)")
        )
        phases = ", ".join(f"{phase} {mb:,}" for phase, mb in d["peaks_mb"].items())
        print(f"  peak MB by phase: {phases} (profiling: cProfile's own, not counted)")
    m = data["machine"]
    print(
        f"machine: {m['cpus']} cpus, Python {m['python']}, SQLite {m['sqlite']}, "
        f"{m['platform']}, load average {m['load']} at the end; at most {data['repeats']} "
        f"requests per page, {data['budget_s']:.0f} s budget per page"
    )
    parts = []
    for name, g in data["goals"].items():
        unit_ = "s" if name == "forward_s" else "ms"
        label = name.removesuffix("_ms").removesuffix("_s").replace("_", " ")
        parts.append(
            f"{label} {g['goal']}: {'met' if g['met'] else 'missed'} ({g['value']:,} {unit_}; "
            f"{g['beside']:,} {unit_} at {g['beside_ideas']:,})"
        )
    print("goals: " + "; ".join(parts))
    for size, found in data["profiles"].items():
        for page, p in found.items():
            print(
                f"\nprofile of {page} at {int(size):,} ideas ({p['seconds']:.1f} s under cProfile)"
            )
            print(f"  {'cumulative s':>12} {'own s':>8} {'calls':>9}  function")
            for r in p["cumulative"]:
                print(
                    f"  {r['cumulative_s']:>12.2f} {r['own_s']:>8.2f} {r['calls']:>9,}  "
                    f"{r['function']}"
                )
            for title, key in (("heaviest on their own", "own"), ("mitreden's own", "ours")):
                print(f"  {title}:")
                for r in p[key]:
                    print(
                        f"  {r['cumulative_s']:>12.2f} {r['own_s']:>8.2f} {r['calls']:>9,}  "
                        f"{r['function']}"
                    )


async def run_all(databases: list[JSON], folder: Path, args: argparse.Namespace) -> list[Result]:
    results = []
    for database in databases:
        log(f"{database['ideas']:,} ideas: starting the App")
        profile = args.profile and database is databases[-1]
        results.append(await run_database(database, folder, args.repeats, args.budget, profile))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="ideas per database")
    parser.add_argument("--repeats", type=int, default=None, help="requests per page (20)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per page (120)")
    parser.add_argument("--profile", action="store_true", help="cProfile what misses its goal")
    parser.add_argument("--quick", action="store_true", help="5 requests, 30 s per page")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes is a comma-separated list of numbers")
    if not sizes or sizes[0] < 50:
        parser.error("--sizes needs at least one database of 50 ideas or more")
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.budget = args.budget or (30.0 if args.quick else 120.0)
    if args.repeats < 1 + MIN_WARM:
        parser.error(f"--repeats is at least {1 + MIN_WARM}")
    with tempfile.TemporaryDirectory(prefix="mitreden-dashboard-bench-") as tmp:
        folder = Path(tmp)
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as builder:
            databases = []
            for n, size in enumerate(sizes):
                log(f"building a database of {size:,} ideas")
                databases.append(
                    builder.submit(build, str(folder / f"{size}.db"), size, n).result()
                )
                log(f"  built in {databases[-1]['build_s']:.1f} s")
        results = asyncio.run(run_all(databases, folder, args))
        data = payload(results, args)
    return finish(args.json, lambda: data, lambda: print_report(data))


if __name__ == "__main__":
    sys.exit(main())
