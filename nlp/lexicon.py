"""The word lists the redactor reads (data/redaction/), loaded on first use and kept.

Importing the redactor must stay cheap (`mitreden --help` never needs a street list), so each
list is read only when `find()` first asks for it, and only once per process.
"""

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from mitreden.yamlfile import load_yaml


def _path(name: str) -> Traversable:
    return files("mitreden.data") / "redaction" / name


@cache
def words(name: str) -> frozenset[str]:
    """The entries of data/redaction/<name>.txt: one a line, '#' lines are the header."""
    text = _path(f"{name}.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


@cache
def table(name: str) -> dict[str, Any]:
    """data/redaction/<name>.yaml as a mapping (words such as "no" and "on" stay words)."""
    return load_yaml(Path(str(_path(f"{name}.yaml"))))


def context(key: str) -> Any:
    """One list of data/redaction/context.yaml."""
    return table("context")[key]
