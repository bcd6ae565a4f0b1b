"""The action-field taxonomy: loading, checking, and the words each language shows for a field."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mitreden.errors import OperatorError
from mitreden.yamlfile import load_yaml

REQUIRED = (
    "id",
    "name_de",
    "name_en",
    "description_de",
    "description_en",
    "keywords_de",
    "keywords_en",
)


# name_tr, short_uk, …: a further language's name or button label (not de, en, de_simple).
FURTHER = re.compile(r"(name|short)_([a-z]{2,3})")


class TaxonomyError(OperatorError, ValueError):
    """A taxonomy file that does not follow the schema in data/gdb_action_fields.yaml."""


@dataclass(frozen=True)
class ActionField:
    id: str
    name_de: str
    name_en: str
    description_de: str
    description_en: str
    keywords_de: tuple[str, ...]
    keywords_en: tuple[str, ...]
    parent: str | None = None
    short_de: str | None = None
    short_en: str | None = None
    short_de_simple: str | None = None
    names: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """The name in each further language (name_tr: {"tr": …}); German is shown otherwise."""
    shorts: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """Button labels in further languages (short_tr, …); the name is shown otherwise."""

    def label(self, language: str) -> str:
        """A button label in `language`."""
        if language in self.shorts or language in self.names:
            return self.shorts.get(language) or self.names[language]
        if language == "en":
            return self.short_en or self.name_en
        if language == "de-simple":
            return self.short_de_simple or self.short_de or self.name_de
        return self.short_de or self.name_de

    def title(self, language: str) -> str:
        """The field's name in a summary: the strategy's full name in de and en, the short
        one in Einfache Sprache, whose readers the long official names would lose."""
        if language == "de-simple":
            return self.label(language)
        if language in self.names:
            return self.names[language]
        return self.name_en if language == "en" else self.name_de

    def texts(self) -> list[str]:
        """What describes the field to an embedding model, in both languages."""
        return [
            f"{self.name_de}. {self.description_de}",
            f"{self.name_en}. {self.description_en}",
            ", ".join(self.keywords_de),
            ", ".join(self.keywords_en),
            *self.keywords_de,
            *self.keywords_en,
        ]


@dataclass(frozen=True)
class Taxonomy:
    fields: tuple[ActionField, ...]

    @property
    def leaves(self) -> tuple[ActionField, ...]:
        """The fields ideas are filed under: those no other field names as its parent."""
        parents = {f.parent for f in self.fields}
        return tuple(f for f in self.fields if f.id not in parents)

    def get(self, field_id: str | None) -> ActionField:
        """The field of that id; KeyError for an unknown id and for None (none chosen yet)."""
        for f in self.fields:
            if f.id == field_id:
                return f
        raise KeyError(field_id)


def _field(entry: object, where: str) -> ActionField:
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{where}: each action field must be a mapping")
    missing = [key for key in REQUIRED if not entry.get(key)]
    if missing:
        raise TaxonomyError(f"{where} ({entry.get('id', '?')}): missing {', '.join(missing)}")
    for key in ("keywords_de", "keywords_en"):
        if not isinstance(entry[key], list) or not all(isinstance(k, str) for k in entry[key]):
            raise TaxonomyError(f"{where} ({entry['id']}): {key} must be a list of words")
    known = {name for name in ActionField.__dataclass_fields__}
    values = {k: v for k, v in entry.items() if k in known}
    values["id"] = str(values["id"])
    values["keywords_de"] = tuple(entry["keywords_de"])
    values["keywords_en"] = tuple(entry["keywords_en"])
    values["names"], values["shorts"] = {}, {}
    for key, text in entry.items():
        further = FURTHER.fullmatch(str(key))
        if further and further.group(2) not in ("de", "en"):
            if not isinstance(text, str) or not text.strip():
                raise TaxonomyError(f"{where} ({entry['id']}): {key} must be a name")
            values[f"{further.group(1)}s"][further.group(2)] = text.strip()
    return ActionField(**values)


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and check a taxonomy file; every problem is a TaxonomyError naming the file."""
    path = Path(path)
    try:
        document = load_yaml(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise TaxonomyError(f"cannot read taxonomy {path}: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("action_fields"), list):
        raise TaxonomyError(f"{path}: expected a mapping with a list 'action_fields'")
    fields = tuple(
        _field(entry, f"{path} entry {n}")
        for n, entry in enumerate(document["action_fields"], start=1)
    )
    ids = [f.id for f in fields]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TaxonomyError(f"{path}: duplicate ids {', '.join(duplicates)}")
    orphans = sorted(f.parent for f in fields if f.parent and f.parent not in ids)
    if orphans:
        raise TaxonomyError(f"{path}: unknown parent ids {', '.join(orphans)}")
    if not fields:
        raise TaxonomyError(f"{path}: no action fields")
    return Taxonomy(fields)
