"""The README says what the code does: every setting has its row in the Configuration table,
with its environment variable, and every command of `mitreden` is shown at work. A setting or a
command added without a word in the README fails here."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from mitreden.cli import _parser
from mitreden.config import Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


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
