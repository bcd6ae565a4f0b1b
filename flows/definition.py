"""Loading a flow definition (see flows/participation.yaml for the format) and checking it."""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mitreden.errors import OperatorError
from mitreden.yamlfile import load_yaml


class FlowError(OperatorError, ValueError):
    """A flow definition that points at a step, message, action or source that does not exist."""


@dataclass(frozen=True)
class ChoiceSpec:
    value: str
    label: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    say: tuple[str, ...] = ()
    ask: str | None = None
    input: str = "choice"
    choices: tuple[ChoiceSpec, ...] = ()
    choices_from: str | None = None
    extra: tuple[ChoiceSpec, ...] = ()
    skippable: bool = False
    action: str | None = None
    store_as: str | None = None
    route: dict[str, str] = field(default_factory=dict)
    next: str | None = None
    when_empty: str | None = None
    validate: dict[str, int] = field(default_factory=dict)
    end: bool = False
    detect: tuple[str, ...] = ()
    """Languages a typed answer that is no choice may choose by being written in them."""

    def targets(self) -> list[str]:
        return [t for t in (self.next, self.when_empty, *self.route.values()) if t]


@dataclass(frozen=True)
class Flow:
    start: str
    consent_version: str
    steps: dict[str, Step]
    commands: dict[str, str]
    """Every accepted command word -> the command it names."""
    roles: dict[str, str]
    """The steps the engine sends people to itself (`ROLES`) -> their names in this flow."""


# What the engine needs a flow to name (the flow file's `roles`): the language question
# (/sprache), the question before erasing (/loeschen), where /abbrechen leads, and the idea
# question (an idea typed at any point goes there; workshops use its `validate`).
ROLES = ("language", "delete", "cancelled", "idea")


def _choices(raw: list | None) -> tuple[ChoiceSpec, ...]:
    return tuple(
        ChoiceSpec(value=str(c["value"]), label=c.get("label"), text=c.get("text"))
        for c in raw or ()
    )


def load_flow(path: Path | None = None) -> Flow:
    path = path or Path(__file__).resolve().parent / "participation.yaml"
    try:
        raw = load_yaml(path)
        steps = {}
        for name, spec in raw["steps"].items():
            spec = dict(spec)
            spec["say"] = tuple(spec.get("say", ()))
            spec["choices"] = _choices(spec.get("choices"))
            spec["extra"] = _choices(spec.get("extra"))
            spec["route"] = {str(k): v for k, v in spec.get("route", {}).items()}
            if not isinstance(spec.get("detect", []), list):
                raise FlowError(f"{path}: step {name!r}: detect must be a list of languages")
            spec["detect"] = tuple(str(language) for language in spec.get("detect", ()))
            steps[name] = Step(name=name, **spec)
        commands = {word: command for command, words in raw["commands"].items() for word in words}
        roles = {str(role): str(step) for role, step in (raw.get("roles") or {}).items()}
        flow = Flow(raw["start"], str(raw["consent_version"]), steps, commands, roles)
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise FlowError(f"cannot read flow {path}: {err}") from err
    for step in flow.steps.values():
        unknown = [t for t in step.targets() if t not in flow.steps]
        if unknown:
            raise FlowError(f"{path}: step {step.name!r} leads to unknown {unknown}")
    missing = [role for role in ROLES if role not in flow.roles]
    if missing:
        raise FlowError(f"{path}: roles must name the steps for {missing}")
    unknown_steps = {r: s for r, s in flow.roles.items() if s not in flow.steps}
    if unknown_steps:
        raise FlowError(f"{path}: roles name unknown steps {unknown_steps}")
    return flow
