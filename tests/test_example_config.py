"""mitreden.example.toml: it loads, names every setting, and never drifts from the defaults."""

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from mitreden.config import SECRETS, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "mitreden.example.toml"
NAMES = [f.name for f in fields(Settings)]
# `# name = value`: a setting shown commented out (a secret, or a path that depends on the
# machine). Prose comments never start with a lower-case word followed by "=".
COMMENTED = re.compile(r"^#\s*([a-z_][a-z0-9_]*)\s*=\s*(.+)$", re.MULTILINE)
# Commented-out Matrix settings are only valid beside a homeserver and an account.
MATRIX_ACCOUNT = {
    "matrix_homeserver": "https://matrix.example.org",
    "matrix_user_id": "@mitreden:example.org",
}


def _text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def _commented() -> dict[str, object]:
    """The commented-out settings with their example values, parsed as TOML."""
    return {
        name: tomllib.loads(f"value = {value}")["value"]
        for name, value in COMMENTED.findall(_text())
    }


def test_example_loads_and_equals_the_defaults() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings == Settings()


def test_every_uncommented_value_is_the_default() -> None:
    document = tomllib.loads(_text())
    assert document, "the example sets nothing"
    settings = load_settings(EXAMPLE, environ={})
    default = Settings()
    for name, raw in document.items():
        assert getattr(settings, name) == getattr(default, name), (name, raw)
        # Also as written, so "warning" for WARNING or "~/x.db" for a path does not slip through.
        assert raw == getattr(default, name), (name, raw)


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_has_an_entry(name: str) -> None:
    pattern = rf"^(#\s*)?{re.escape(name)}\s*="
    assert re.search(pattern, _text(), re.MULTILINE), f"{name} is missing from {EXAMPLE.name}"


def test_every_entry_is_a_setting_and_appears_once() -> None:
    uncommented = list(tomllib.loads(_text()))
    commented = [name for name, _ in COMMENTED.findall(_text())]
    entries = uncommented + commented
    assert sorted(entries) == sorted(NAMES)


def test_secrets_are_only_shown_commented_out() -> None:
    document = tomllib.loads(_text())
    assert set(_commented()) >= SECRETS
    assert not SECRETS & set(document)


def test_commented_examples_are_valid_when_uncommented(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    commented = _commented()
    assert commented
    for name, value in commented.items():
        extra = MATRIX_ACCOUNT if name.startswith("matrix_") else {}
        settings = load_settings(empty, environ={}, **extra, **{name: value})
        assert str(getattr(settings, name)) == value
