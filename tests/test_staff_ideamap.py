"""The dashboard's pictures: embedding layout, idea map and weekly counts, as SVG that parses,
is labelled for assistive technology, escapes every caller's word and uses no inline style."""

import xml.etree.ElementTree as ET
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from mitreden.nlp.clusters import NEW_TOPICS
from mitreden.nlp.taxonomy import Taxonomy
from mitreden.staff.ideamap import (
    PALETTE,
    MapPoint,
    colours,
    counts_chart,
    idea_map,
    layout,
    markers,
    sample,
    swatch,
    weekly_counts,
)
from mitreden.store import Store

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>\"'&"
NOW = "2026-11-22T10:00:00+00:00"


def label(point: MapPoint) -> str:
    return f"Idee {point.idea_id}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    ids = [element.get("id") for element in root.iter() if element.get("id")]
    assert len(ids) == len(set(ids))
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert not any(element.tag.endswith("style") for element in root.iter())
    assert not any("style" in element.attrib for element in root.iter())
    assert not any(element.tag.endswith("script") for element in root.iter())
    return root


def blobs(rng: np.random.Generator, each: int) -> np.ndarray:
    centre = rng.standard_normal(384)
    near = centre + 0.05 * rng.standard_normal((each, 384))
    far = -centre + 0.05 * rng.standard_normal((each, 384))
    return np.vstack([near, far]).astype(np.float32)


def test_layout_fills_the_unit_square_the_same_way_every_time() -> None:
    vectors = np.random.default_rng(1).standard_normal((300, 384)).astype(np.float32)
    coordinates = layout(vectors)
    assert coordinates.shape == (300, 2)
    assert np.isfinite(coordinates).all()
    assert coordinates.min(axis=0).tolist() == [0.0, 0.0]
    assert coordinates.max(axis=0).tolist() == [1.0, 1.0]
    assert np.array_equal(coordinates, layout(vectors.copy()))
    # Neither the vectors' scale nor their shift changes the picture; mirrored vectors mirror it.
    np.testing.assert_allclose(layout(vectors * 3 + 1), coordinates, atol=1e-4)
    np.testing.assert_allclose(layout(-vectors), 1 - coordinates, atol=1e-4)


def test_layout_separates_two_groups() -> None:
    vectors = blobs(np.random.default_rng(2), 50)
    x = layout(vectors)[:, 0]
    assert x[:50].max() < x[50:].min() or x[50:].max() < x[:50].min()


@pytest.mark.parametrize(
    "vectors",
    [
        np.zeros((0, 384), dtype=np.float32),
        np.ones((1, 384), dtype=np.float32),
        np.full((7, 384), 0.3, dtype=np.float32),
        np.zeros((5, 384), dtype=np.float32),
        np.zeros((3, 0), dtype=np.float32),
        np.arange(4, dtype=np.float32).reshape(4, 1),
    ],
    ids=["none", "one", "identical", "zeros", "no-dimensions", "one-dimension"],
)
def test_layout_of_degenerate_input_is_finite(vectors: np.ndarray) -> None:
    coordinates = layout(vectors)
    assert coordinates.shape == (len(vectors), 2)
    assert np.isfinite(coordinates).all()
    assert ((coordinates >= 0) & (coordinates <= 1)).all()


def test_layout_of_two_ideas_spreads_them_on_one_axis() -> None:
    rng = np.random.default_rng(3)
    coordinates = layout(rng.standard_normal((2, 384)).astype(np.float32))
    assert sorted(coordinates[:, 0].tolist()) == [0.0, 1.0]
    assert coordinates[:, 1].tolist() == [0.5, 0.5]


def test_layout_rejects_a_flat_list() -> None:
    with pytest.raises(ValueError):
        layout(np.zeros(384))


def test_palette_has_enough_contrast_against_white() -> None:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    assert len(set(PALETTE)) == len(PALETTE)
    for colour in PALETTE:
        assert 1.05 / (luminance(colour) + 0.05) >= 3.0, colour


def test_markers_are_stable_by_position(taxonomy: Taxonomy) -> None:
    lanes = [leaf.id for leaf in taxonomy.leaves] + [NEW_TOPICS]
    assigned = markers(lanes)
    assert len(set(assigned.values())) == len(lanes)  # 13 lanes, no two alike
    assert markers(lanes[:3]) == {lane: assigned[lane] for lane in lanes[:3]}
    assert colours(lanes) == {lane: marker.colour for lane, marker in assigned.items()}
    assert [m.hollow for m in assigned.values()] == [i >= len(PALETTE) for i in range(len(lanes))]
    ring = ET.fromstring(swatch(assigned[NEW_TOPICS]))
    assert ring.get("aria-hidden") == "true"
    circle = ring.find(f"{SVG}circle")
    assert (circle.get("fill"), circle.get("stroke")) == ("#FFFFFF", assigned[NEW_TOPICS].colour)


def test_idea_map_from_stored_vectors(db_path: Path, taxonomy: Taxonomy) -> None:
    """The dashboard's path: embeddings from a real store, laid out, drawn per lane."""
    store = Store(db_path)
    first, second = taxonomy.leaves[0].id, taxonomy.leaves[1].id
    vectors = blobs(np.random.default_rng(4), 10)
    with store.transaction():
        store.ensure_participant("p-1", "test", NOW)
        for index, vector in enumerate(vectors):
            store.add_idea(
                participant_id="p-1",
                text="Idee",
                suggested_field=first if index < 10 else second,
                confirmed_field=NEW_TOPICS if index == 0 else None,
                created_at=NOW,
                updated_at=NOW,
                embedding=vector,
            )
    rows = store.idea_vectors()
    coordinates = layout(np.stack([vector for *_, vector in rows]))
    points = [
        MapPoint(idea_id, float(x), float(y), confirmed or suggested, f"/staff/ideas/{idea_id}")
        for (idea_id, _, suggested, confirmed, _), (x, y) in zip(rows, coordinates, strict=True)
    ]
    legend = [(leaf.id, leaf.label("de")) for leaf in taxonomy.leaves] + [(NEW_TOPICS, "Neu")]
    root = parse(idea_map(points, legend, "Ideen", "20 Ideen", label))
    links = root.findall(f"{SVG}a")
    assert [link.get("href") for link in links] == [f"/staff/ideas/{i}" for i, *_ in rows]
    assert all(link.get("tabindex") == "-1" for link in links)
    assert [link.find(f"{SVG}title").text for link in links] == [f"Idee {i}" for i, *_ in rows]
    paints = [(c.get("fill"), c.get("stroke")) for c in root.iter(f"{SVG}circle")]
    lane_markers = markers([lane for lane, _ in legend])
    assert lane_markers[NEW_TOPICS].hollow  # the thirteenth lane: an outline
    assert (
        paints[:20]
        == [("#FFFFFF", lane_markers[NEW_TOPICS].colour)]
        + [(lane_markers[first].colour, "#FFFFFF")] * 9
        + [(lane_markers[second].colour, "#FFFFFF")] * 10
    )
    assert len(paints) == 20 + len(legend)
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert texts == [name for _, name in legend]


def test_idea_map_escapes_every_word() -> None:
    points = [
        MapPoint(1, 0.2, 0.3, "a", f"/ideas/1?x={HOSTILE}"),
        MapPoint(2, 0.8, 0.9, "b", None),
    ]
    svg = idea_map(points, [("a", HOSTILE), ("b", "B\x0b")], HOSTILE, HOSTILE, lambda p: HOSTILE)
    assert "<script>" not in svg
    root = parse(svg)
    assert root.find(f"{SVG}title").text == HOSTILE
    assert root.find(f"{SVG}desc").text == HOSTILE
    assert root.find(f"{SVG}a").get("href") == f"/ideas/1?x={HOSTILE}"
    assert [circle.find(f"{SVG}title") for circle in root.iter(f"{SVG}circle")][1].text == HOSTILE
    assert [text.text for text in root.iter(f"{SVG}text")] == [HOSTILE, "B"]


def test_idea_map_draws_a_stable_sample_of_many() -> None:
    rng = np.random.default_rng(5)
    points = [MapPoint(i, *rng.random(2), "a", None) for i in range(1, 1201)]
    root = parse(idea_map(points, [("a", "A")], "t", "d", label, limit=500))
    drawn = [circle.find(f"{SVG}title") for circle in root.iter(f"{SVG}circle")]
    assert len(drawn) == 500 + 1 and drawn[-1] is None  # and the legend's swatch
    assert [title.text for title in drawn[:-1]] == [label(p) for p in sample(points, 500)]
    kept = {p.idea_id for p in sample(points, 500)}
    assert kept == {p.idea_id for p in sample(list(reversed(points)), 500)}
    assert kept <= {p.idea_id for p in sample(points, 600)}
    assert sample(points[:10], 500) == points[:10]


def test_idea_map_refuses_a_lane_without_legend_or_an_unsafe_ident() -> None:
    point = MapPoint(1, 0.5, 0.5, "elsewhere", None)
    with pytest.raises(ValueError, match="elsewhere"):
        idea_map([point], [("a", "A")], "t", "d", label)
    with pytest.raises(ValueError):
        idea_map([], [("a", "A")], "t", "d", label, ident='x" onload="1')


def test_weekly_counts_fill_the_weeks_across_new_year() -> None:
    rows = [
        ("2026-12-21T09:00:00+00:00", "a"),  # 2026-W52
        ("2026-12-31T23:30:00+00:00", "b"),  # 2026-W53, Thursday
        ("2026-12-28T10:00:00+00:00", "a"),
        ("2027-01-01T08:00:00+00:00", "a"),  # still 2026-W53
        ("2027-01-19T08:00:00+00:00", "b"),  # 2027-W03
    ]
    assert weekly_counts(rows) == [
        ("2026-W52", {"a": 1}),
        ("2026-W53", {"a": 2, "b": 1}),
        ("2027-W01", {}),
        ("2027-W02", {}),
        ("2027-W03", {"b": 1}),
    ]
    assert weekly_counts([]) == []


def test_weekly_counts_in_the_city_s_zone() -> None:
    sunday_night = [("2027-01-03T23:30:00+00:00", "a")]  # Monday 00:30 in Berlin
    assert weekly_counts(sunday_night) == [("2026-W53", {"a": 1})]
    assert weekly_counts(sunday_night, ZoneInfo("Europe/Berlin")) == [("2027-W01", {"a": 1})]
    assert weekly_counts(sunday_night, UTC) == [("2026-W53", {"a": 1})]


def test_counts_chart_stacks_lanes_per_week() -> None:
    weeks = [(f"2026-W{n:02d}", {"a": n, "b": 2} if n % 3 else {}) for n in range(40, 54)]
    weeks.append(("2027-W01", {"c": 1}))
    legend = [("a", "A"), ("b", HOSTILE), ("c", "C")]
    svg = counts_chart(weeks, legend, HOSTILE, "d", ident="weekly")
    assert "<script>" not in svg
    root = parse(svg)
    assert root.find(f"{SVG}title").get("id") == "weekly-title"
    lane_colours = colours(["a", "b", "c"])
    bars = [rect for rect in root.iter(f"{SVG}rect")]
    assert [bar.get("fill") for bar in bars].count(lane_colours["a"]) == 10
    assert [bar.get("fill") for bar in bars].count(lane_colours["c"]) == 1
    texts = [text.text for text in root.iter(f"{SVG}text")]
    ticks = [int(t) for t in texts if t.isdigit()]
    assert ticks[0] == 0 and ticks[-1] >= 55 and 3 <= len(ticks) <= 6
    week_labels = [t for t in texts if "-W" in t]
    assert week_labels[0] == "2026-W40" and 3 <= len(week_labels) <= 6
    assert texts[-3:] == ["A", HOSTILE, "C"]


def test_counts_chart_of_nothing() -> None:
    root = parse(counts_chart([], [("a", "A")], "t", "d"))
    assert [text.text for text in root.iter(f"{SVG}text")] == ["0", "1", "A"]
