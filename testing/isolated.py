"""The environment a `mitreden` subprocess runs in during tests and benches: this process's,
without the operator's own MITREDEN_ settings, with a home, config and data folder of its own,
plus the settings a test gives."""

import os
from pathlib import Path


def environment(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MITREDEN_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
    )
    # `mitreden run` serves the web chat; on a free port, so runs side by side never clash.
    env.update({"MITREDEN_WEB_LISTEN": "127.0.0.1:0", **settings})
    return env
