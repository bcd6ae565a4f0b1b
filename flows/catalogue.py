"""Message catalogues: every user-facing sentence, one YAML file per language.

An entry that depends on a number ("1 Idee", "2 Ideen") is a mapping of CLDR plural categories
(zero, one, two, few, many, other; `other` required) and is read with `Catalogue.plural`; which
category a number takes comes from CLDR's rules for the language (through Babel), so another
language needs only its catalogue, however many forms it has.
"""

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mitreden.errors import OperatorError
from mitreden.nlp.redact import KINDS
from mitreden.yamlfile import load_yaml

if TYPE_CHECKING:
    from babel.plural import PluralRule

LANGUAGES = ("de", "en", "de-simple", "tr", "ar", "uk")
PLURAL_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
PARALLEL_SENTENCES = 32
"""Enough: the offsets of 20 and of all 159 long messages differed in the third decimal."""
PARALLEL_MIN_LENGTH = 30
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


class CatalogueError(OperatorError, ValueError):
    """A catalogue file is missing, unreadable, or lacks a key another language has."""


def is_plural(entry: object) -> bool:
    """Whether an entry is one message in plural forms: a mapping keyed by CLDR categories."""
    return isinstance(entry, dict) and bool(entry) and set(entry) <= PLURAL_CATEGORIES


@functools.cache
def plural_rule(language: str) -> "PluralRule":
    """CLDR's plural rule for a catalogue language; a variant such as de-simple follows its
    language. Babel is imported here, on first use, so starting the bot or the CLI does not
    pay for it."""
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(language, sep="-").plural_form
    except (ValueError, UnknownLocaleError) as err:
        raise CatalogueError(f"no plural rules for language {language!r}: {err}") from err


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
        for key in sorted(union):
            plural = {lang for lang, entries in messages.items() if is_plural(entries[key])}
            if plural and plural != set(messages):
                raise CatalogueError(
                    f"{key!r} has plural forms in {', '.join(sorted(plural))} "
                    f"but not in {', '.join(sorted(set(messages) - plural))}"
                )
            for lang in sorted(plural):
                if "other" not in messages[lang][key]:
                    raise CatalogueError(f"catalogue {lang!r}: plural {key!r} lacks 'other'")

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
        if is_plural(template):
            raise CatalogueError(f"{key!r} has plural forms; read it with Catalogue.plural")
        return template.format(**params) if params else template

    def plural(self, language: str, key: str, count: int, **params: object) -> str:
        """`key` in the form `count` takes in `language` ("1 Idee", "2 Ideen"), formatted with
        `count` and `params`. A form the entry leaves out falls back to `other`."""
        if language not in self.messages:
            language = LANGUAGES[0]
        forms = self.messages[language][key]
        if not is_plural(forms):
            raise CatalogueError(f"{key!r} has no plural forms; read it with Catalogue.text")
        template = forms.get(plural_rule(language)(count), forms["other"])
        return template.format(count=count, **params)

    def entries(self, language: str, key: str) -> dict[str, str]:
        """A mapping entry (such as the command menu), in catalogue order."""
        return dict(self.messages[language][key])

    def words(self, language: str, key: str) -> frozenset[str]:
        """A list entry (words the bot understands), lower-cased."""
        return frozenset(w.casefold() for w in self.messages[language][key])

    def parallel(self, count: int = PARALLEL_SENTENCES) -> dict[str, list[str]]:
        """The same `count` sentences in each language (placeholders taken out), for the NLP
        to tell what a language adds to a text's vector from what it says (`nlp/neutral.py`).
        Einfache Sprache is left out: it says things differently, in the same language."""
        first = self.messages[LANGUAGES[0]]
        keys = sorted(
            key
            for key, template in first.items()
            if isinstance(template, str) and len(template) >= PARALLEL_MIN_LENGTH
        )[:count]
        return {
            lang: [PLACEHOLDER.sub("", self.messages[lang][key]) for key in keys]
            for lang in LANGUAGES
            if lang != "de-simple"
        }

    def right_to_left(self, language: str) -> bool:
        """Whether `language` is written right to left (its catalogue's `web_dir`)."""
        return self.text(language, "web_dir") == "rtl"

    def redaction_labels(self, language: str) -> dict[str, str]:
        """What stands in for each kind of personal data that `nlp.redact` removes."""
        return {kind: self.text(language, f"redacted_{kind}") for kind in KINDS}
