"""Data shipped with mitreden: the GD:B action-field taxonomy, the paraphrase pairs that
calibrate near-duplicates, and filler words kept out of labels. No runtime database here."""

from importlib.resources import files
from pathlib import Path


def default_taxonomy_path() -> Path:
    return Path(str(files(__name__) / "gdb_action_fields.yaml"))


def paraphrases_path() -> Path:
    return Path(str(files(__name__) / "paraphrases.yaml"))


def filler_words_path() -> Path:
    return Path(str(files(__name__) / "filler_words.yaml"))


def population_path() -> Path:
    return Path(str(files(__name__) / "population_berlin.csv"))


def districts_path() -> Path:
    return Path(str(files(__name__) / "berlin_districts.geojson"))
