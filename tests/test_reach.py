"""Who is heard: reach figures of a seeded database against a small population, worked out by
hand below; no figure from fewer than 5 people; the pictures and the command."""

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from isolated import environment
from PIL import Image

from mitreden.config import Settings
from mitreden.data import districts_path, population_path
from mitreden.flows.catalogue import Catalogue
from mitreden.flows.definition import load_flow
from mitreden.staff import charts, forwarding, reach, summaries
from mitreden.store import Store

NOW = "2026-11-23T10:00:00+00:00"  # a Monday: ISO week 2026-W48
FIELD = "begegnungs_und_lernorte"
POPULATION = """\
# Made up for this test
district,age_band,residents
mitte,18-29,3000
mitte,30-49,7000
neukoelln,18-29,6000
neukoelln,30-49,14000
pankow,18-29,1000
pankow,30-49,9000
"""
DISTRICT_IDS = {
    "mitte",
    "friedrichshain-kreuzberg",
    "pankow",
    "charlottenburg-wilmersdorf",
    "spandau",
    "steglitz-zehlendorf",
    "tempelhof-schoeneberg",
    "neukoelln",
    "treptow-koepenick",
    "marzahn-hellersdorf",
    "lichtenberg",
    "reinickendorf",
}


def seed(store: Store) -> None:
    """Mitte: 10 people, an idea each (6 aged 18-29, 4 aged 30-49), on the web. Neukölln: 6
    people aged 30-49, two ideas each, on Telegram. Pankow: 2 people aged 18-29 on Matrix.
    3 people who named no district and no age, on the web. One more in Mitte whose only
    idea was rejected: not counted."""
    people = (
        [(f"m{n}", "web", "mitte", "18-29" if n < 6 else "30-49", 1) for n in range(10)]
        + [(f"n{n}", "telegram", "neukoelln", "30-49", 2) for n in range(6)]
        + [(f"p{n}", "matrix", "pankow", "18-29", 1) for n in range(2)]
        + [(f"x{n}", "web", None, None, 1) for n in range(3)]
    )
    with store.transaction():
        for who, channel, district, band, ideas in people:
            store.ensure_participant(who, channel, NOW)
            for _ in range(ideas):
                add(store, who, district, band)
        store.ensure_participant("r0", "web", NOW)
        rejected = add(store, "r0", "mitte", "18-29")
        store.decide(rejected, "rejected", "spam", None, NOW)


def add(store: Store, who: str, district: str | None, band: str | None) -> int:
    return store.add_idea(
        participant_id=who,
        text="Mehr Bänke",
        language="de",
        district=district,
        age_band=band,
        confirmed_field=FIELD,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def population(tmp_path: Path) -> reach.Population:
    path = tmp_path / "population.csv"
    path.write_text(POPULATION, encoding="utf-8")
    return reach.load_population(path)


@pytest.fixture
def figures(db_path: Path, population: reach.Population) -> reach.Reach:
    store = Store(db_path)
    seed(store)
    return reach.figures(store, population)


def dimension(figures: reach.Reach, name: str) -> reach.Dimension:
    return next(d for d in figures.dimensions if d.name == name)


def test_district_figures_equal_the_hand_computed_ones(figures: reach.Reach) -> None:
    assert (figures.participants, figures.ideas) == (21, 27)
    districts = dimension(figures, "district")
    neukoelln, mitte, *hidden = districts.groups  # furthest below parity first
    # 18 people named a district; Mitte holds 10,000 of the 40,000 residents.
    assert (mitte.value, mitte.participants, mitte.ideas) == ("mitte", 10, 10)
    assert mitte.share == pytest.approx(10 / 18)
    assert mitte.population_share == pytest.approx(0.25)
    assert mitte.per_10000 == pytest.approx(10.0)
    assert mitte.parity == pytest.approx((10 / 18) / 0.25)
    assert (neukoelln.value, neukoelln.participants, neukoelln.ideas) == ("neukoelln", 6, 12)
    assert neukoelln.per_10000 == pytest.approx(3.0)
    assert neukoelln.parity == pytest.approx((6 / 18) / 0.5)
    assert districts.representation == pytest.approx(3.0 / 10.0)
    # Pankow's 2 and the 3 who named none are fewer than 5: not shown, not even as a rate.
    assert {(g.value, g.participants, g.ideas, g.per_10000) for g in hidden} == {
        ("pankow", None, None, None),
        ("", None, None, None),
    }
    assert [g.population_share for g in hidden if g.value == "pankow"] == [0.25]


def test_a_single_hidden_group_hides_the_next_smallest_too(figures: reach.Reach) -> None:
    """With the total shown, one hidden group could be worked out from the others."""
    ages = {g.value: g.participants for g in dimension(figures, "age_band").groups}
    assert ages == {"30-49": 10, "18-29": None, "": None}  # 3 unsaid, so 18-29's 8 hidden
    channels = {g.value: g.participants for g in dimension(figures, "channel").groups}
    assert channels == {"web": 13, "telegram": None, "matrix": None}
    weeks = dimension(figures, "week").groups
    assert [(g.value, g.participants, g.ideas) for g in weeks] == [("2026-W48", 21, 27)]


def test_fewer_than_five_people_in_all_show_no_figure(
    db_path: Path, population: reach.Population
) -> None:
    store = Store(db_path)
    with store.transaction():
        for who in ("a", "b"):
            store.ensure_participant(who, "web", NOW)
            add(store, who, "mitte", "18-29")
    small = reach.figures(store, population)
    assert (small.participants, small.ideas) == (None, None)
    shown = [g.participants for d in small.dimensions for g in d.groups]
    assert set(shown) <= {None, 0}


def test_the_tables_show_names_and_hide_small_groups(figures: reach.Reach) -> None:
    labels = reach.Labels(load_flow(), Catalogue.load(), "de")
    table = reach.to_markdown(figures, labels)
    assert "| Neukölln | 6 | 12 | 33.3 % | 50.0 % | 3.0 | 0.67 |" in table
    assert "| Pankow | <5 | <5 |  | 25.0 % |  |  |" in table
    assert "Repräsentation (niedrigste ÷ höchste Rate): 0.30" in table
    assert "Made up for this test" in table
    rows = list(csv.DictReader(io.StringIO(reach.to_csv(figures))))
    pankow = next(r for r in rows if r["dimension"] == "district" and r["value"] == "pankow")
    assert (pankow["participants"], pankow["ideas"]) == ("", "")
    data = json.loads(reach.to_json(figures))
    assert data["k"] == 5 and data["participants"] == 21
    assert not [
        g
        for g in data["groups"]
        if g["participants"] is not None and g["participants"] < 5 and g["participants"] > 0
    ]


def test_a_summary_tells_the_strategy_team_who_spoke(
    db_path: Path, population: reach.Population, taxonomy
) -> None:
    store = Store(db_path)
    seed(store)
    catalogue = Catalogue.load()
    made = summaries.draft(store, taxonomy, catalogue, FIELD, "de", "staff:anna", NOW, population)
    text = store.summary(made)["text"]
    assert "\n### Wer mitgemacht hat\n" in text and "\n#### Bezirk\n" in text
    assert "| Neukölln | 6 | 12 | 33.3 % | 50.0 % | 3.0 | 0.67 |" in text
    assert "#### Woche" not in text  # the weeks are the dashboard's
    told = forwarding.notice(catalogue, taxonomy, store.summary(made), "en").text
    assert text.split("\n")[0] in told and "Wer mitgemacht hat" not in told
    plain = summaries.draft(store, taxonomy, catalogue, FIELD, "de", "staff:anna", NOW)
    assert "Wer mitgemacht hat" not in store.summary(plain)["text"]


def test_no_csv_cell_is_a_formula(db_path: Path, population: reach.Population) -> None:
    store = Store(db_path)
    with store.transaction():
        for n in range(5):
            store.ensure_participant(f"f{n}", "=HYPERLINK(1)", NOW)
            add(store, f"f{n}", "=cmd|' /C calc'!A0", "18-29")
    rows = list(csv.DictReader(io.StringIO(reach.to_csv(reach.figures(store, population)))))
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


def test_a_broken_population_file_is_a_clear_error(tmp_path: Path) -> None:
    for text in ("", "district,age_band,residents\nmitte,18-29,many\n", "a,b\n1,2\n"):
        path = tmp_path / "population.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(reach.PopulationError):
            reach.load_population(path)
    with pytest.raises(reach.PopulationError):
        reach.load_population(tmp_path / "missing.csv")


def test_the_shipped_population_is_berlins_twelve_districts_and_six_age_bands() -> None:
    berlin = reach.load_population(population_path())
    assert set(berlin.by["district"]) == DISTRICT_IDS
    assert set(berlin.by["age_band"]) == {"under-14", "14-17", "18-29", "30-49", "50-64", "65-plus"}
    total = sum(berlin.by["district"].values())
    assert total == sum(berlin.by["age_band"].values())
    assert 3_600_000 < total < 4_000_000
    assert "Amt für Statistik Berlin-Brandenburg" in berlin.source


def test_the_map_has_berlins_twelve_districts(figures: reach.Reach) -> None:
    labels = reach.Labels(load_flow(), Catalogue.load(), "de")
    scene = charts.district_map(dimension(figures, "district"), labels, districts_path())
    titled = {s.title.split(":")[0] for s in scene.shapes if s.kind == "polygon"}
    assert len(titled) == 12 and "Neukölln" in titled
    drawn = charts.svg(scene)
    assert drawn.startswith("<svg") and drawn.count("<polygon") >= 12
    assert "Mitte: 10.0" in drawn and "Pankow: weniger als 5 Personen" in drawn


def test_the_command_writes_tables_and_pictures(db_path: Path, tmp_path: Path) -> None:
    seed(Store(db_path))
    env = environment(tmp_path, MITREDEN_LOG_LEVEL="WARNING")
    command = ["mitreden", "reach", "--db", str(db_path)]
    table = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "## Wer mitgemacht hat" in table.stdout
    for form in ("svg", "png"):
        folder = tmp_path / form
        run = subprocess.run(
            [*command, "--format", form, "--out", str(folder), "--language", "en"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        written = sorted(p.name for p in folder.iterdir())
        assert written == sorted(
            [f"reach-{d}.{form}" for d in reach.DIMENSIONS] + [f"reach-map.{form}"]
        )
    assert "<svg" in (tmp_path / "svg" / "reach-map.svg").read_text("utf-8")
    with Image.open(tmp_path / "png" / "reach-map.png") as image:
        assert image.format == "PNG" and image.size[0] == 2 * charts.WIDTH
    refused = subprocess.run([*command, "--format", "svg"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and re.match(r"mitreden: error: .*--out", refused.stderr)


def test_settings_point_at_the_shipped_data() -> None:
    settings = Settings()
    assert settings.population == population_path() and settings.districts == districts_path()


def test_broken_data_files_are_one_clear_line(db_path: Path, tmp_path: Path) -> None:
    seed(Store(db_path))
    broken = tmp_path / "broken"
    broken.write_text('{"features": [{"geometry": 1}]', encoding="utf-8")
    command = ["mitreden", "reach", "--db", str(db_path)]
    for setting, form in (("MITREDEN_POPULATION", "csv"), ("MITREDEN_DISTRICTS", "svg")):
        env = environment(tmp_path, **{setting: str(broken)})
        run = subprocess.run(
            [*command, "--format", form, "--out", str(tmp_path / "out")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("mitreden: error: ") and run.stderr.count("\n") == 1
        assert "Traceback" not in run.stderr
