"""The README says what the code does: every setting has its row in the Configuration table,
with its environment variable, and every command of `mitreden` is shown at work. A setting or a
command added without a word in the README fails here, and so does a catalogue key that the
translators' page (docs/messages.md) does not say where it is seen."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from mitreden.cli import _parser
from mitreden.config import Settings
from mitreden.flows.catalogue import Catalogue

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MESSAGES = (ROOT / "docs" / "messages.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    [subparsers] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(subparsers.choices)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_has_a_row_with_its_environment_variable(name: str) -> None:
    row = re.search(rf"^\| `{name}` \| `MITREDEN_{name.upper()}`", README, re.MULTILINE)
    assert row, f"README's Configuration table has no row for {name} (MITREDEN_{name.upper()})"


def test_every_row_of_the_table_is_a_setting() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    rows = re.findall(r"^\| `([a-z_]+)` \| `MITREDEN_", README, re.MULTILINE)
    assert rows and set(rows) <= names
    assert len(rows) == len(set(rows))


@pytest.mark.parametrize("command", commands())
def test_every_command_is_shown_in_the_readme(command: str) -> None:
    assert re.search(rf"\bmitreden {command}\b", README), f"README never shows `mitreden {command}`"


def described_keys() -> list[str]:
    """The catalogue keys docs/messages.md describes: the first cell of its table rows."""
    return re.findall(r"^\| `([a-z0-9_]+)` \|", MESSAGES, re.MULTILINE)


def test_every_catalogue_key_says_where_it_is_seen() -> None:
    missing = sorted(set(Catalogue.load().messages["de"]) - set(described_keys()))
    assert not missing, f"docs/messages.md does not say where these are seen: {missing}"


def test_the_messages_page_names_only_keys_that_exist_and_each_once() -> None:
    keys, described = set(Catalogue.load().messages["de"]), described_keys()
    assert described, "docs/messages.md has no table rows"
    gone = sorted(set(described) - keys)
    assert not gone, f"docs/messages.md describes keys no catalogue has: {gone}"
    twice = sorted({key for key in described if described.count(key) > 1})
    assert not twice, f"docs/messages.md describes these more than once: {twice}"
