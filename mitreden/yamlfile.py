"""YAML as people write it: only true/false are booleans.

PyYAML follows YAML 1.1, where yes, no, on, off, y and n are booleans too; in a catalogue of
words people type ("ja", "no") or a flow that routes on "yes", that silently turns words
into True and False.
"""

import re
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it: the catalogues load in a third of the time
# (every command and every start reads them); the resolvers below are Python either way.
_Safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Safe):  # type: ignore[misc, valid-type]
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; raises OSError, UnicodeDecodeError or yaml.YAMLError."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
