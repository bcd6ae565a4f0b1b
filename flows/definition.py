"""Loading a flow definition (see flows/participation.yaml for the format) and checking it."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import yaml

from mitreden.errors import OperatorError
from mitreden.yamlfile import load_yaml

FLOW_FILE = Path(__file__).resolve().parent / "participation.yaml"


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


# What the engine needs a flow to name (the flow file's `roles`): the language question
# (/sprache), the question before erasing (/loeschen), where /abbrechen leads, and the idea
# question (an idea typed at any point goes there; workshops use its `validate`).
ROLES = ("language", "delete", "cancelled", "idea")

# The answers the code tells apart (the flow file's `answers`), each the value of a choice the
# flow offers: agreeing and declining (consent, notifications, erasing, another idea; a typed
# "ja" or "nein" picks them), another field than those suggested, no field, changing the idea's
# words, and supporting none of the similar ideas. A Literal, so mypy refuses a misspelt one.
Answer = Literal["yes", "no", "other", "unsure", "change", "none"]
ANSWERS: tuple[Answer, ...] = get_args(Answer)


@dataclass(frozen=True)
class Flow:
    start: str
    consent_version: str
    steps: dict[str, Step]
    commands: dict[str, str]
    """Every accepted command word -> the command it names."""
    roles: dict[str, str]
    """The steps the engine sends people to itself (`ROLES`) -> their names in this flow."""
    answers: dict[Answer, str]
    """The answers the code tells apart (`Answer`) -> their choice values in this flow."""


def _choices(raw: list | None) -> tuple[ChoiceSpec, ...]:
    return tuple(
        ChoiceSpec(value=str(c["value"]), label=c.get("label"), text=c.get("text"))
        for c in raw or ()
    )


def _answers(path: Path, raw: dict | None, steps: dict[str, Step]) -> dict[Answer, str]:
    """The flow's choice value for each answer in `ANSWERS`; refuses one that is missing, one
    the code does not know, and a value that no step's fixed choices offer."""
    given = {str(answer): str(value) for answer, value in (raw or {}).items()}
    missing = [answer for answer in ANSWERS if answer not in given]
    if missing:
        raise FlowError(f"{path}: answers must name the choice values for {missing}")
    unknown = sorted(set(given) - set(ANSWERS))
    if unknown:
        raise FlowError(f"{path}: answers name {unknown}, which the code does not use")
    offered = {c.value for step in steps.values() for c in (*step.choices, *step.extra)}
    not_offered = {answer: value for answer, value in given.items() if value not in offered}
    if not_offered:
        raise FlowError(f"{path}: answers name values no step offers {not_offered}")
    return {answer: given[answer] for answer in ANSWERS}


def load_flow(path: Path | None = None) -> Flow:
    path = path or FLOW_FILE
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
        answers = _answers(path, raw.get("answers"), steps)
        flow = Flow(raw["start"], str(raw["consent_version"]), steps, commands, roles, answers)
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
