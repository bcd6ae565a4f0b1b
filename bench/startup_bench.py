"""How soon `mitreden run` can be opened in a browser, beside a bare aiohttp app started the
same way in the same run (the floor: Python and aiohttp alone).

For each repeat it starts the process on a fresh database and a free port, and measures the
time until the "open http://…" line is printed, until the page answers, and (for mitreden)
until /healthz says the model is ready. The goal of issue 13: the page within 3 s.

    python bench/startup_bench.py [--repeats 5] [--json]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ECHO = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_get("/", lambda request: web.Response(text="ok"))
async def ready(app):
    print("open http://127.0.0.1:" + sys.argv[1] + "/", flush=True)
app.on_startup.append(ready)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.read()
    except OSError:
        return None


def measure(command: list[str], env: dict[str, str], port: int, health: bool) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        printed = time.perf_counter() - started
        if "http://" not in line:
            raise RuntimeError(f"no address printed: {line!r}")
        while fetch(f"http://127.0.0.1:{port}/") is None:
            time.sleep(0.01)
        page = time.perf_counter() - started
        ready = float("nan")
        while health:
            body = fetch(f"http://127.0.0.1:{port}/healthz")
            if body and json.loads(body)["ready"]:
                ready = time.perf_counter() - started
                break
            time.sleep(0.05)
        return {"printed": printed, "page": page, "ready": ready}
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    mitreden = str(Path(sys.executable).parent / "mitreden")
    rows: dict[str, list[dict[str, float]]] = {"aiohttp alone": [], "mitreden run": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # alternate, so both see the same machine
            port = free_port()
            rows["aiohttp alone"].append(
                measure([sys.executable, "-c", ECHO, str(port)], dict(os.environ), port, False)
            )
            port = free_port()
            env = {
                **os.environ,
                "MITREDEN_DB": f"{tmp}/run{repeat}.db",
                "MITREDEN_WEB_LISTEN": f"127.0.0.1:{port}",
                "HOME": tmp,
            }
            rows["mitreden run"].append(measure([mitreden, "run"], env, port, True))
    header = f"{'':15} {'printed s':>10} {'page s':>10} {'model ready s':>14}"
    print(f"{header}   (median of {args.repeats})")
    summary = {}
    for name, runs in rows.items():
        medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        summary[name] = medians
        print(
            f"{name:15} {medians['printed']:10.2f} {medians['page']:10.2f} {medians['ready']:14.2f}"
        )
    if args.json:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
