"""Message catalogues: every user-facing sentence, one YAML file per language."""

from pathlib import Path
from typing import Any

import yaml

from mitreden.nlp.redact import KINDS
from mitreden.yamlfile import load_yaml

LANGUAGES = ("de", "en", "de-simple")


class CatalogueError(ValueError):
    """A catalogue file is missing, unreadable, or lacks a key another language has."""


class Catalogue:
    def __init__(self, messages: dict[str, dict[str, Any]]) -> None:
        self.messages = messages
        keys = {lang: set(entries) for lang, entries in messages.items()}
        union = set().union(*keys.values())
        for lang, present in keys.items():
            if present != union:
                raise CatalogueError(
                    f"catalogue {lang!r} lacks {', '.join(sorted(union - present))}"
                )

    @classmethod
    def load(cls, directory: Path | None = None) -> "Catalogue":
        directory = directory or Path(__file__).resolve().parent / "catalogues"
        messages = {}
        for lang in LANGUAGES:
            path = directory / f"{lang}.yaml"
            try:
                messages[lang] = load_yaml(path)
            except (OSError, yaml.YAMLError) as err:
                raise CatalogueError(f"cannot read catalogue {path}: {err}") from err
        return cls(messages)

    def has(self, key: str) -> bool:
        return key in self.messages[LANGUAGES[0]]

    def text(self, language: str, key: str, **params: object) -> str:
        template = self.messages.get(language, self.messages[LANGUAGES[0]])[key]
        return template.format(**params) if params else template

    def entries(self, language: str, key: str) -> dict[str, str]:
        """A mapping entry (such as the command menu), in catalogue order."""
        return dict(self.messages[language][key])

    def words(self, language: str, key: str) -> frozenset[str]:
        """A list entry (words the bot understands), lower-cased."""
        return frozenset(w.casefold() for w in self.messages[language][key])

    def redaction_labels(self, language: str) -> dict[str, str]:
        """What stands in for each kind of personal data that `nlp.redact` removes."""
        return {kind: self.text(language, f"redacted_{kind}") for kind in KINDS}
