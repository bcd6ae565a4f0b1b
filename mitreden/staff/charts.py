"""The reach figures as pictures: a bar chart per dimension (each group's share of those who
took part beside its share of the population) and a map of Berlin's districts coloured by
participation per 10,000 residents.

Each picture is first a `Scene` (rectangles, polygons, text), drawn as SVG for the dashboard
and the files, or as PNG with Pillow (which fpdf2 brings) in the shipped DejaVu font. The map's
district outlines are shipped in data/berlin_districts.geojson (source and licence in
data/README.md); an operator of another city points `districts` at their own.
"""

import io
import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from mitreden.staff.pdf import font_path
from mitreden.staff.reach import Dimension, Labels

WIDTH = 720
ROW = 30
LABEL_WIDTH = 230
BAR_WIDTH = WIDTH - LABEL_WIDTH - 90
INK, PARTICIPANTS, POPULATION, HIDDEN = "#1b1b1b", "#0a4a82", "#9aa5b1", "#d9d9d9"
# Participation per 10,000 from little to much: light to dark blue (contrast with INK text).
SCALE = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")


@dataclass(frozen=True)
class Shape:
    kind: str  # rect, polygon or text
    points: tuple[tuple[float, float], ...]
    fill: str = INK
    text: str = ""
    size: int = 13
    title: str = ""


@dataclass
class Scene:
    width: int
    height: int
    title: str
    shapes: list[Shape] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, title: str = "") -> None:
        self.shapes.append(Shape("rect", ((x, y), (x + w, y + h)), fill, title=title))

    def text(self, x: float, y: float, text: str, size: int = 13) -> None:
        self.shapes.append(Shape("text", ((x, y),), INK, text, size))


def bars(dimension: Dimension, labels: Labels) -> Scene:
    """Each group's share of participants (blue) over its share of the population (grey);
    hidden groups (fewer than reach.K people) say so instead of a bar."""
    groups = [g for g in dimension.groups if g.share is not None or g.population_share]
    scene = Scene(WIDTH, 70 + ROW * max(1, len(groups)), labels.dimension(dimension.name))
    scene.text(10, 22, scene.title, 16)
    scene.rect(10, 34, 12, 12, PARTICIPANTS)
    scene.text(28, 44, labels.t("reach_chart_participation"), 12)
    scene.rect(LABEL_WIDTH + 60, 34, 12, 12, POPULATION)
    scene.text(LABEL_WIDTH + 78, 44, labels.t("reach_chart_population"), 12)
    top = max([g.share or 0 for g in groups] + [g.population_share or 0 for g in groups] + [0.01])
    for n, group in enumerate(groups):
        y = 60 + n * ROW
        scene.text(10, y + 15, labels.group(dimension.name, group.value)[:34], 12)
        if group.share is not None:
            width = BAR_WIDTH * group.share / top
            scene.rect(LABEL_WIDTH, y + 2, width, 11, PARTICIPANTS, f"{group.share:.1%}")
            scene.text(LABEL_WIDTH + width + 4, y + 12, f"{group.share * 100:.1f} %", 11)
        elif group.participants is None:
            scene.text(LABEL_WIDTH, y + 12, labels.hidden(), 11)
        if group.population_share:
            width = BAR_WIDTH * group.population_share / top
            scene.rect(LABEL_WIDTH, y + 15, width, 9, POPULATION, f"{group.population_share:.1%}")
            scene.text(LABEL_WIDTH + width + 4, y + 24, f"{group.population_share * 100:.1f} %", 9)
    return scene


def district_map(dimension: Dimension, labels: Labels, outlines: Path) -> Scene:
    """The districts of `outlines` (GeoJSON with an `id` per feature, as the district answers
    name them), each coloured by its participation per 10,000 residents."""
    features = json.loads(outlines.read_text("utf-8"))["features"]
    rings = {f["properties"]["id"]: _rings(f["geometry"]) for f in features}
    points = [p for polygons in rings.values() for ring in polygons for p in ring]
    west, east = min(p[0] for p in points), max(p[0] for p in points)
    south, north = min(p[1] for p in points), max(p[1] for p in points)
    squash = math.cos(math.radians((north + south) / 2))  # degrees east are shorter
    scale = (WIDTH - 40) / ((east - west) * squash)
    height = int((north - south) * scale) + 110
    scene = Scene(WIDTH, height, labels.t("reach_map_title"))
    scene.text(10, 22, scene.title, 16)
    rates = {g.value: g.per_10000 for g in dimension.groups}
    shown = [r for r in rates.values() if r is not None]
    low, high = (min(shown), max(shown)) if shown else (0.0, 0.0)

    def at(lon: float, lat: float) -> tuple[float, float]:
        return (20 + (lon - west) * squash * scale, 40 + (north - lat) * scale)

    for district, polygons in rings.items():
        rate = rates.get(district)
        colour = HIDDEN if rate is None else SCALE[_step(rate, low, high)]
        name = labels.group("district", district)
        title = f"{name}: {labels.hidden() if rate is None else f'{rate:.1f}'}"
        for ring in polygons:
            shape = Shape("polygon", tuple(at(*p) for p in ring), colour, title=title)
            scene.shapes.append(shape)
    y = height - 40
    for n, colour in enumerate(SCALE):
        value = low + (high - low) * n / (len(SCALE) - 1) if shown else 0.0
        scene.rect(20 + n * 90, y, 24, 14, colour)
        scene.text(48 + n * 90, y + 12, f"{value:.1f}", 11)
    scene.rect(20 + len(SCALE) * 90, y, 24, 14, HIDDEN)
    scene.text(48 + len(SCALE) * 90, y + 12, labels.hidden(), 11)
    return scene


def svg(scene: Scene) -> str:
    """The scene as an SVG document: presentation attributes only (the dashboard's content
    security policy allows no style), a title for screen readers and one per shape."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {scene.width} {scene.height}" '
        f'width="{scene.width}" height="{scene.height}" role="img" '
        f'font-family="DejaVu Sans, sans-serif"><title>{escape(scene.title)}</title>'
        f'<rect width="{scene.width}" height="{scene.height}" fill="#ffffff"/>'
    ]
    for shape in scene.shapes:
        title = f"<title>{escape(shape.title)}</title>" if shape.title else ""
        if shape.kind == "rect":
            (x0, y0), (x1, y1) = shape.points
            out.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{shape.fill}">{title}</rect>'
            )
        elif shape.kind == "polygon":
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in shape.points)
            out.append(
                f'<polygon points="{points}" fill="{shape.fill}" stroke="#ffffff" '
                f'stroke-width="1">{title}</polygon>'
            )
        else:
            x, y = shape.points[0]
            out.append(
                f'<text x="{x:.1f}" y="{y:.1f}" font-size="{shape.size}" fill="{shape.fill}">'
                f"{escape(shape.text)}</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def png(scene: Scene) -> bytes:
    """The scene as a PNG, twice the SVG's size for sharp print. Scripts that must be
    shaped (Arabic) are drawn letter by letter: use the SVG for those."""
    from PIL import Image, ImageDraw, ImageFont

    zoom = 2
    image = Image.new("RGB", (scene.width * zoom, scene.height * zoom), "#ffffff")
    draw = ImageDraw.Draw(image)
    fonts: dict[int, ImageFont.FreeTypeFont] = {}
    for shape in scene.shapes:
        points = [(x * zoom, y * zoom) for x, y in shape.points]
        if shape.kind == "rect":
            draw.rectangle(points, fill=shape.fill)
        elif shape.kind == "polygon":
            draw.polygon(points, fill=shape.fill, outline="#ffffff")
        else:
            if shape.size not in fonts:
                path = str(font_path("DejaVuSans.ttf"))
                fonts[shape.size] = ImageFont.truetype(path, shape.size * zoom)
            draw.text(points[0], shape.text, fill=shape.fill, font=fonts[shape.size], anchor="ls")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _rings(geometry: dict) -> list[list[tuple[float, float]]]:
    """The outer rings of a Polygon or MultiPolygon (holes are not drawn)."""
    if geometry["type"] == "Polygon":
        return [[tuple(p[:2]) for p in geometry["coordinates"][0]]]
    return [[tuple(p[:2]) for p in polygon[0]] for polygon in geometry["coordinates"]]


def _step(rate: float, low: float, high: float) -> int:
    if high <= low:
        return len(SCALE) - 1
    return min(len(SCALE) - 1, int((rate - low) / (high - low) * len(SCALE)))
