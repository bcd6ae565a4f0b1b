"""Data shipped with mitreden: the GD:B action-field taxonomy and the paraphrase pairs that
calibrate near-duplicates. No runtime database lives here."""

from importlib.resources import files
from pathlib import Path


def default_taxonomy_path() -> Path:
    return Path(str(files(__name__) / "gdb_action_fields.yaml"))


def paraphrases_path() -> Path:
    return Path(str(files(__name__) / "paraphrases.yaml"))
