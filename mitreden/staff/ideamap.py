"""Two pictures for the moderators' dashboard, drawn on the server as SVG: where ideas lie
relative to each other (a map of their embeddings) and how many came in each week.

SVG because the page then downloads nothing and runs no chart library, and the same text works
inline in HTML and served as image/svg+xml. The page's Content-Security-Policy forbids inline
style, so everything is drawn with presentation attributes (fill, stroke, font-size), never a
`style` attribute or element. Every word shown comes from the caller (catalogues, taxonomy);
this module only places it, escaped, and adds nothing but numbers.

Colours are for lanes (action fields in taxonomy order, then NEW_TOPICS). Eight colours that
each have at least 3:1 contrast against white (WCAG 1.4.11) and stay apart under simulated
protanopia, deuteranopia and tritanopia (picked from the Okabe-Ito and Paul Tol palettes,
darkened where needed); lanes after the eighth get the same colours as hollow markers, so
sixteen lanes are told apart without relying on colour alone.
"""

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from xml.sax.saxutils import escape, quoteattr

import numpy as np

# In the order lanes get them: each prefix keeps its colours as far apart as it can.
PALETTE = (
    "#1E9BE2",  # sky blue, darkened
    "#000000",  # black
    "#EE6677",  # rose
    "#332288",  # indigo
    "#882255",  # wine
    "#979732",  # olive
    "#CC79A7",  # reddish purple
    "#117733",  # green
)
TEXT = "#000000"
FRAME = "#767676"  # 4.5:1 against white
HOLLOW_STROKE = 2.0
FONT = "sans-serif"
FONT_SIZE = 13
LEGEND_ROW = 20
MARGIN = 12
# Above this many ideas the map draws a sample, so the page stays light (about 150 bytes each).
MAX_POINTS = 5000
# Rows centred and multiplied at a time: bounds the memory `layout` needs beside its input.
CHUNK = 8192
# Characters XML 1.0 does not allow: one in a label would make the whole picture unreadable.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
SAFE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class MapPoint:
    idea_id: int
    x: float  # 0 (left) to 1 (right), as `layout` gives
    y: float  # 0 (bottom) to 1 (top)
    lane: str
    href: str | None


@dataclass(frozen=True)
class Marker:
    """How a lane is drawn: its colour, filled or as an outline."""

    colour: str
    hollow: bool


def markers(lanes: list[str]) -> dict[str, Marker]:
    """A stable marker per lane, by position in `lanes` (pass them in taxonomy order, NEW_TOPICS
    last, so a lane keeps its look from one page to the next). After 16 lanes markers repeat."""
    return {
        lane: Marker(PALETTE[i % len(PALETTE)], (i // len(PALETTE)) % 2 == 1)
        for i, lane in enumerate(lanes)
    }


def colours(lanes: list[str]) -> dict[str, str]:
    """A stable colour per lane, the same the pictures use (see `markers` for hollow ones)."""
    return {lane: marker.colour for lane, marker in markers(lanes).items()}


def swatch(marker: Marker, size: int = 12) -> str:
    """A lane's marker as a small SVG for an HTML legend beside the pictures; hidden from
    assistive technology, since the label next to it says which lane it is."""
    half = size / 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" aria-hidden="true" focusable="false">'
        f"{_circle(half, half, half - HOLLOW_STROKE / 2, marker)}</svg>"
    )


def layout(vectors: np.ndarray) -> np.ndarray:
    """(N, 2) coordinates in [0, 1] for N vectors: their first two principal components.

    Principal components, not t-SNE or UMAP: linear, so a distance on the map means the same
    everywhere, the same ideas always land in the same place, and 100,000 vectors of dimension
    384 take a fraction of a second with numpy alone. The covariance matrix (dimension squared)
    is built in chunks and decomposed, so memory stays near the input's size. Each component's
    sign makes its largest loading positive, so the picture does not mirror between runs. A
    component without spread (one idea, identical ideas, two ideas on the second axis) puts
    everything at 0.5 on that axis.
    """
    data = np.asarray(vectors)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {data.shape}")
    count, dimension = data.shape
    coordinates = np.full((count, 2), 0.5)
    if count < 2 or dimension == 0:
        return coordinates
    mean = data.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((dimension, dimension))
    for block in _centred(data, mean):
        covariance += block.T @ block  # float32 products, summed in float64
    covariance /= count
    values, loadings = np.linalg.eigh(covariance)
    scale = values.sum() + mean @ mean
    components = []
    for axis in range(min(2, dimension)):
        value, component = values[-1 - axis], loadings[:, -1 - axis]
        # Below these, the spread is float32 rounding (centring, products), not the ideas.
        if value <= 1e-12 * scale or value <= 1e-5 * values[-1]:
            break
        if component[np.argmax(np.abs(component))] < 0:
            component = -component
        components.append(component)
    if not components:
        return coordinates
    weights = np.stack(components, axis=1).astype(np.float32)
    projected = np.concatenate([block @ weights for block in _centred(data, mean)])
    low, high = projected.min(axis=0), projected.max(axis=0)
    coordinates[:, : len(components)] = (projected - low) / (high - low)
    return coordinates


def _centred(data: np.ndarray, mean: np.ndarray) -> Iterable[np.ndarray]:
    """`data` minus `mean` in float32 blocks: the embeddings' own precision, and products
    several times faster than in float64."""
    mean32 = mean.astype(np.float32)
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK].astype(np.float32, copy=False) - mean32


def sample(points: list[MapPoint], limit: int) -> list[MapPoint]:
    """At most `limit` points, in their order. Which ones depends only on their idea ids (a hash,
    not their position), so the same ideas stay on the map as new ones arrive."""
    if len(points) <= limit:
        return points
    ranked = sorted(range(len(points)), key=lambda i: (_hash(points[i].idea_id), i))
    return [points[i] for i in sorted(ranked[:limit])]


def _hash(idea_id: int) -> bytes:
    return hashlib.blake2b(str(idea_id).encode(), digest_size=8).digest()


def idea_map(
    points: list[MapPoint],
    legend: list[tuple[str, str]],
    title: str,
    description: str,
    point_label: Callable[[MapPoint], str],
    size: int = 640,
    limit: int = MAX_POINTS,
    ident: str = "ideamap",
) -> str:
    """An SVG map of ideas: one circle per idea, marked by its lane, with a legend below.

    `legend` is (lane, label) per lane, in taxonomy order: it fixes the markers (`markers`) and
    must name every lane a point is in. `point_label` gives each circle its tooltip
    (e.g. "Idee 17"). A point with `href` is a link, for pointer users only (`tabindex="-1"`):
    inside role="img" links are hidden from screen readers, and thousands of tab stops would
    trap keyboard users, so the page must offer the same ideas as an HTML list too.

    With more than `limit` points a sample of `limit` is drawn (`sample`). The caller knows
    from `len(points) > limit` and should say so in `description` and on the page.
    `ident` prefixes the ids in the picture; give each picture on one page its own.
    """
    lane_markers = _lane_markers(legend, {p.lane for p in points})
    drawn = sample(points, limit)
    plot = size - 2 * MARGIN
    radius = 4 if len(drawn) <= 1000 else 3
    parts = [
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot}" height="{plot}" fill="#FFFFFF" '
        f'stroke="{FRAME}" stroke-width="1"/>'
    ]
    for point in drawn:
        cx = MARGIN + radius + point.x * (plot - 2 * radius)
        cy = MARGIN + radius + (1 - point.y) * (plot - 2 * radius)
        tip = f"<title>{_text(point_label(point))}</title>"
        marker = lane_markers[point.lane]
        if point.href is None:
            parts.append(_circle(cx, cy, radius, marker, tip))
        else:
            circle = _circle(cx, cy, radius, marker)
            parts.append(f'<a href={_attr(point.href)} tabindex="-1">{tip}{circle}</a>')
    parts.append(_legend(legend, lane_markers, size + MARGIN))
    height = size + 2 * MARGIN + LEGEND_ROW * len(legend)
    return _document(ident, size, height, title, description, parts)


def weekly_counts(
    rows: Iterable[tuple[str, str]], zone: tzinfo | None = None
) -> list[tuple[str, dict[str, int]]]:
    """Ideas per ISO week and lane from (created_at, lane) pairs, every week from the first to
    the last in order, a week without ideas as {}. Labels are ISO weeks ("2026-W48"; the
    days around New Year may belong to the neighbouring year's week 1 or week 53).

    With `zone`, timestamps that carry an offset are counted in that zone's calendar (a week
    starts at Monday midnight there, not in UTC); without it, by the date as written.
    """
    counts: dict[date, dict[str, int]] = {}
    for created_at, lane in rows:
        moment = datetime.fromisoformat(created_at)
        if zone is not None and moment.tzinfo is not None:
            moment = moment.astimezone(zone)
        day = moment.date()
        monday = day - timedelta(days=day.weekday())
        week = counts.setdefault(monday, {})
        week[lane] = week.get(lane, 0) + 1
    if not counts:
        return []
    result = []
    monday, last = min(counts), max(counts)
    while monday <= last:
        year, number, _ = monday.isocalendar()
        result.append((f"{year}-W{number:02d}", counts.get(monday, {})))
        monday += timedelta(weeks=1)
    return result


def counts_chart(
    weeks: list[tuple[str, dict[str, int]]],
    legend: list[tuple[str, str]],
    title: str,
    description: str,
    width: int = 640,
    height: int = 320,
    ident: str = "counts",
) -> str:
    """An SVG stacked bar chart: one bar per week, a segment per lane (first lane at the
    bottom), a count axis with a few round ticks, a few week labels, the legend below.

    `weeks` as `weekly_counts` gives; `legend` as for `idea_map`, and must name every lane
    counted. `ident` prefixes the ids in the picture; give each picture on one page its own.
    """
    lane_markers = _lane_markers(legend, {lane for _, week in weeks for lane in week})
    left, bottom = MARGIN + 4 * FONT_SIZE, height - MARGIN - 2 * FONT_SIZE
    top, right = MARGIN + FONT_SIZE // 2, width - MARGIN - 2 * FONT_SIZE
    step, ceiling = _ticks(max((sum(week.values()) for _, week in weeks), default=0))
    per_unit = (bottom - top) / ceiling
    parts = []
    for value in range(0, ceiling + 1, step):
        y = bottom - value * per_unit
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{FRAME}" '
            f'stroke-width="{1 if value == 0 else 0.5}"/>'
        )
        parts.append(_label(left - 6, y, str(value), anchor="end"))
    slot = (right - left) / max(len(weeks), 1)
    bar = max(slot * 0.8, 1.0)
    for index, (_, week) in enumerate(weeks):
        x, base = left + index * slot + (slot - bar) / 2, float(bottom)
        for lane, _ in legend:
            if week.get(lane, 0) <= 0:
                continue
            tall = week[lane] * per_unit
            parts.append(_bar(x, base - tall, bar, tall, lane_markers[lane]))
            base -= tall
    labelled = range(0, len(weeks), max(1, -(-len(weeks) // 6)))
    for index in labelled:
        x = left + (index + 0.5) * slot
        parts.append(_label(x, bottom + FONT_SIZE, weeks[index][0], anchor="middle"))
    parts.append(_legend(legend, lane_markers, height + MARGIN))
    total_height = height + 2 * MARGIN + LEGEND_ROW * len(legend)
    return _document(ident, width, total_height, title, description, parts)


def _ticks(largest: int) -> tuple[int, int]:
    """A round step (1, 2 or 5 times a power of ten) giving at most five steps up to a
    multiple of it at or above `largest`, and that multiple."""
    largest = max(largest, 1)
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if largest <= 5 * step:
                return step, -(-largest // step) * step
        magnitude *= 10


def _lane_markers(legend: list[tuple[str, str]], used: set[str]) -> dict[str, Marker]:
    lane_markers = markers([lane for lane, _ in legend])
    missing = used - lane_markers.keys()
    if missing:
        raise ValueError(f"lanes without a legend entry: {sorted(missing)}")
    return lane_markers


def _document(
    ident: str, width: int, height: int, title: str, description: str, parts: list[str]
) -> str:
    if not SAFE_ID.match(ident):
        raise ValueError(f"ident must be a plain XML id, got {ident!r}")
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="{ident}-title {ident}-desc" font-family="{FONT}" '
            f'font-size="{FONT_SIZE}">',
            f'<title id="{ident}-title">{_text(title)}</title>',
            f'<desc id="{ident}-desc">{_text(description)}</desc>',
            *parts,
            "</svg>",
        ]
    )


def _legend(legend: list[tuple[str, str]], lane_markers: dict[str, Marker], top: float) -> str:
    rows = []
    for row, (lane, label) in enumerate(legend):
        y = top + (row + 0.5) * LEGEND_ROW
        rows.append(_circle(MARGIN + 6, y, 5, lane_markers[lane]))
        rows.append(_label(MARGIN + 18, y, label, anchor="start"))
    return "".join(rows)


def _circle(cx: float, cy: float, r: float, marker: Marker, inner: str = "") -> str:
    if marker.hollow:
        paint = f'fill="#FFFFFF" stroke="{marker.colour}" stroke-width="{HOLLOW_STROKE}"'
    else:
        paint = f'fill="{marker.colour}" stroke="#FFFFFF" stroke-width="0.5"'
    circle = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:g}" {paint}'
    return f"{circle}>{inner}</circle>" if inner else f"{circle}/>"


def _bar(x: float, y: float, width: float, height: float, marker: Marker) -> str:
    if marker.hollow:  # the outline drawn inside the segment, not over its neighbours
        inset = min(HOLLOW_STROKE / 2, width / 2, height / 2)
        x, y, width, height = x + inset, y + inset, width - 2 * inset, height - 2 * inset
        paint = f'fill="#FFFFFF" stroke="{marker.colour}" stroke-width="{HOLLOW_STROKE}"'
    else:  # a hairline of white between stacked segments, as between circles
        paint = f'fill="{marker.colour}" stroke="#FFFFFF" stroke-width="0.5"'
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" {paint}/>'


def _label(x: float, y: float, text: str, anchor: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" dominant-baseline="middle" '
        f'fill="{TEXT}">{_text(text)}</text>'
    )


def _text(text: str) -> str:
    return escape(NOT_XML.sub("", text))


def _attr(text: str) -> str:
    return quoteattr(NOT_XML.sub("", text))
