"""Who is heard and who is missing: participants and ideas by district, age band, actor group,
channel, language and week, set against the city's population where it is known.

For each group: how many people took part and how many ideas they gave, the group's share of
those who said (a person who named two districts counts in both; shares are of all such
person-group pairs, so they add up to 100 % as the population's do), and where the population
is known (districts and age bands, from `population`), the population's share, participation
per 10,000 residents, and parity (share ÷ population share: 1 is as many as the population
would let one expect, 0.5 half as many). A dimension's representation score is its lowest
rate ÷ its highest (as Go Vocal reports it): 1 is even, near 0 is one group barely heard.
Groups furthest below parity come first.

k-anonymity: no figure from fewer than K people is shown. Where exactly one group of a
dimension would be hidden, the next smallest is hidden too, so no hidden figure can be worked
out from the total and the others. The district is the one a person named for their idea:
the only place mitreden asks about.
"""

import csv
import functools
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from mitreden.flows.catalogue import LANGUAGES, Catalogue
from mitreden.flows.definition import Flow
from mitreden.spreadsheets import spreadsheet_safe
from mitreden.store import Store

K = 5
DIMENSIONS = ("district", "age_band", "actor_group", "channel", "language", "week")
# What a summary tells the strategy team about who spoke (the weeks are the dashboard's).
IN_SUMMARIES = ("district", "age_band", "actor_group", "channel", "language")
NOT_GIVEN = ""  # the group of those who did not say


class PopulationError(ValueError):
    """A population file that is missing, unreadable or not in the schema."""


@dataclass(frozen=True)
class Population:
    """Residents per district and per age band (each summed over the other)."""

    by: dict[str, dict[str, int]]
    """{"district": {"mitte": 397000, …}, "age_band": {"18-29": …, …}}"""
    source: str


@dataclass
class Group:
    value: str
    participants: int | None
    """None: fewer than K, or hidden so that such a group cannot be worked out."""
    ideas: int | None
    share: float | None = None
    population: int | None = None
    population_share: float | None = None
    per_10000: float | None = None
    parity: float | None = None


@dataclass
class Dimension:
    name: str
    groups: list[Group]
    representation: float | None = None
    """Lowest rate ÷ highest among the groups shown, where the population is known."""


@dataclass
class Reach:
    participants: int | None
    ideas: int | None
    dimensions: list[Dimension] = field(default_factory=list)
    population_source: str = ""


def load_population(path: Path) -> Population:
    """A CSV of `district,age_band,residents` rows; its source is the comment lines (#) at
    its top, or the file's name."""
    by: dict[str, dict[str, int]] = {"district": {}, "age_band": {}}
    try:
        with path.open(encoding="utf-8", newline="") as f:
            lines = f.readlines()
        source = [line for line in lines if line.startswith("#")]
        table = [line for line in lines if not line.startswith("#")]
        for n, row in enumerate(csv.DictReader(table), start=2):
            wrong = PopulationError(f"{path}: row {n} is not district,age_band,residents")
            try:
                residents = int(row["residents"])
                district, band = row["district"].strip(), row["age_band"].strip()
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise wrong from err
            if residents < 0 or not district or not band:
                raise wrong
            by["district"][district] = by["district"].get(district, 0) + residents
            by["age_band"][band] = by["age_band"].get(band, 0) + residents
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PopulationError(f"cannot read population {path}: {err}") from err
    if not by["district"]:
        raise PopulationError(f"{path}: no rows")
    described = " ".join(line.lstrip("# ").strip() for line in source).strip()
    return Population(by, described or path.name)


# Where each dimension is in a row of `Store.reach_rows`.
COLUMN = {"district": 1, "age_band": 2, "actor_group": 3, "language": 4, "week": 5, "channel": 6}


def figures(
    store: Store,
    population: Population,
    idea_ids: list[int] | None = None,
    dimensions: tuple[str, ...] = DIMENSIONS,
) -> Reach:
    """The reach of every idea but the rejected ones, or of those of `idea_ids` (a summary's)."""
    rows = store.reach_rows(idea_ids)
    people = {row[0] for row in rows}
    reach = Reach(_shown(len(people)), _shown(len(rows)), population_source=population.source)
    for name in dimensions:
        column = COLUMN[name]
        members: dict[str, set[str]] = {}
        ideas: dict[str, int] = {}
        for row in rows:
            value = row[column] or NOT_GIVEN
            if name == "week":
                value = _week(value)
            members.setdefault(value, set()).add(row[0])
            ideas[value] = ideas.get(value, 0) + 1
        counts = {value: (len(members[value]), ideas[value]) for value in members}
        reach.dimensions.append(_dimension(name, counts, population.by.get(name, {})))
    return reach


@functools.cache
def _week(day: str) -> str:
    """An ISO week ("2026-W48") from a day ("2026-11-23"); not given for what is no day."""
    try:
        year, week, _ = date.fromisoformat(day).isocalendar()
    except ValueError:
        return NOT_GIVEN
    return f"{year}-W{week:02d}"


def _dimension(
    name: str, counts: dict[str, tuple[int, int]], population: dict[str, int]
) -> Dimension:
    """`counts`: (people, ideas) per group."""
    counted = {value: people for value, (people, _) in counts.items()}
    ideas = {value: number for value, (_, number) in counts.items()}
    # Groups of the population nobody spoke for are part of the picture too.
    for value in population:
        counted.setdefault(value, 0)
        ideas.setdefault(value, 0)
    hidden = {value for value, count in counted.items() if 0 < count < K}
    if len(hidden) == 1:  # with the total, one hidden group could be worked out
        shown = [v for v in counted if v not in hidden and counted[v] > 0]
        if shown:
            hidden.add(min(shown, key=lambda v: (counted[v], v)))
    # Shares of all (person, group) pairs, so that they add up to 1 like the population's.
    said = sum(count for value, count in counted.items() if value != NOT_GIVEN)
    everyone = sum(population.get(v, 0) for v in counted if v != NOT_GIVEN)
    groups = []
    for value, count in counted.items():
        group = Group(value, None, None) if value in hidden else Group(value, count, ideas[value])
        if value != NOT_GIVEN and group.participants is not None and said:
            group.share = count / said
        residents = population.get(value)
        if residents:
            group.population = residents
            group.population_share = residents / everyone
            if group.participants is not None:
                group.per_10000 = count / residents * 10_000
                if group.share is not None:
                    group.parity = group.share / group.population_share
        groups.append(group)
    rates = [g.per_10000 for g in groups if g.per_10000 is not None]
    representation = min(rates) / max(rates) if len(rates) > 1 and max(rates) > 0 else None
    groups.sort(key=lambda g: _order(g, bool(population)))
    return Dimension(name, groups, representation)


def _order(group: Group, with_population: bool) -> tuple:
    """Furthest below parity first where the population is known; else the largest first;
    hidden groups and those who did not say last."""
    last = group.participants is None or group.value == NOT_GIVEN
    if with_population:
        return (last, group.parity if group.parity is not None else 1e9, group.value)
    return (last, -(group.participants or 0), group.value)


def _shown(count: int) -> int | None:
    return None if 0 < count < K else count


# the figures as text


class Labels:
    """What a group is called in `language`: districts by their names, age bands and actor
    groups by the flow's answers, languages by their own names."""

    def __init__(self, flow: Flow, catalogue: Catalogue, language: str) -> None:
        self.catalogue, self.language = catalogue, language
        self._names: dict[str, dict[str, str]] = {}
        for step in flow.steps.values():
            if step.store_as in DIMENSIONS:
                self._names[step.store_as] = {
                    c.value: c.text or catalogue.text(language, c.label or "") for c in step.choices
                }
        self._names["language"] = {
            code: catalogue.text(language, "lang_simple" if code == "de-simple" else f"lang_{code}")
            for code in LANGUAGES
        }

    def t(self, key: str, **params: object) -> str:
        return self.catalogue.text(self.language, key, **params)

    def hidden(self) -> str:
        """What stands where a group is too small to show ("fewer than 5 people")."""
        return self.t("reach_map_hidden", k=K)

    def dimension(self, name: str) -> str:
        return self.t(f"reach_{name}")

    def group(self, dimension: str, value: str) -> str:
        if value == NOT_GIVEN:
            return self.t("reach_not_given")
        return self._names.get(dimension, {}).get(value, value)


COLUMNS = ("participants", "ideas", "share", "population_share", "per_10000", "parity")


def cells(group: Group) -> list[str]:
    """A group's figures as shown: counts whole, shares in per cent, "<5" where hidden."""
    if group.participants is None:
        return [f"<{K}", f"<{K}", "", _percent(group.population_share), "", ""]
    return [
        str(group.participants),
        str(group.ideas),
        _percent(group.share),
        _percent(group.population_share),
        "" if group.per_10000 is None else f"{group.per_10000:.1f}",
        "" if group.parity is None else f"{group.parity:.2f}",
    ]


def to_markdown(
    reach: Reach, labels: Labels, dimensions: tuple[str, ...] = DIMENSIONS, level: int = 2
) -> str:
    """Tables for the summary and the terminal, one per dimension, under a heading of
    `level` (a field's summary has its groups at 3)."""
    head = "| " + " | ".join([labels.t("reach_group")] + [labels.t(f"reach_{c}") for c in COLUMNS])
    out = ["#" * level + f" {labels.t('reach_title')}", "", _totals(reach, labels)]
    for dimension in reach.dimensions:
        if dimension.name not in dimensions:
            continue
        out += ["", "#" * (level + 1) + f" {labels.dimension(dimension.name)}", ""]
        if dimension.representation is not None:
            score = f"{dimension.representation:.2f}"
            out += [f"{labels.t('reach_representation')}: {score}", ""]
        out += [head + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for group in dimension.groups:
            name = labels.group(dimension.name, group.value).replace("|", "/")
            out.append("| " + " | ".join([name, *cells(group)]) + " |")
    out += [
        "",
        f"{labels.t('reach_hidden_note', k=K)} {labels.t('reach_source')}: "
        f"{reach.population_source}",
    ]
    return "\n".join(out) + "\n"


def to_rows(reach: Reach) -> list[dict[str, object]]:
    """One row per group, for CSV and JSON: ids, not names, and None where hidden."""
    return [
        {"dimension": d.name, **asdict(g), "representation": d.representation}
        for d in reach.dimensions
        for g in d.groups
    ]


def to_csv(reach: Reach) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["dimension", *Group.__dataclass_fields__, "representation"])
    writer.writeheader()
    for row in to_rows(reach):
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def to_json(reach: Reach) -> str:
    return json.dumps(
        {
            "participants": reach.participants,
            "ideas": reach.ideas,
            "k": K,
            "population_source": reach.population_source,
            "groups": to_rows(reach),
        },
        ensure_ascii=False,
        indent=2,
    )


def _totals(reach: Reach, labels: Labels) -> str:
    people = f"<{K}" if reach.participants is None else str(reach.participants)
    ideas = f"<{K}" if reach.ideas is None else str(reach.ideas)
    return f"{labels.t('reach_participants')}: {people} · {labels.t('reach_ideas')}: {ideas}"


def _cell(value: object) -> object:
    """A CSV cell: empty for hidden, and no text a spreadsheet would take for a formula."""
    if value is None:
        return ""
    return spreadsheet_safe(value) if isinstance(value, str) else value


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f} %"
