"""A siting result as GeoJSON, CSV, a standalone HTML map (folium) and a one-page PDF.

The HTML map works with no network: folium's default CDN links (Leaflet, jQuery,
Bootstrap, Font Awesome) are dropped and Leaflet itself, the only one this map uses, is
inlined from the npm copy the app serves. It has no base map tiles for the same reason.
"""

import csv
import html
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import folium
from reportlab.graphics.shapes import Circle, Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from layers.model import CouncilProfile

FORMATS = ("json", "geojson", "csv", "html", "pdf")
LEAFLET = Path(__file__).resolve().parent.parent / "frontend" / "node_modules" / "leaflet" / "dist"
CSV_COLUMNS = ("rank", "feature_id", "label", "lon", "lat", "gain_weight", "gain_pct",
               "cumulative_pct")  # fmt: skip
PDF_SITES = 20  # rows of the sites table that fit on the page
COLOURS = {"chosen": "#d4351c", "fixed": "#505a5f", "uncovered": "#1d70b8"}


def coverage_lines(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(distance type, before, after, reachable) rows, the headline type first."""
    order = sorted(result["coverage"], key=lambda name: name != result["distance"]["type"])
    rows = []
    for name in order:
        figures = result["coverage"][name]
        rows.append(
            (
                "Route (walking network)" if name == "route" else "Straight line",
                *(
                    f"{figures[k]['pct']:.1f}% ({figures[k]['weight']:g})"
                    for k in ("before", "after", "reachable")
                ),
            )  # fmt: skip
        )
    return rows


def solver_line(result: dict[str, Any]) -> str:
    """How good the sites are, in words: proven optimal or within the gap proven."""
    solver = result["solver"]
    if solver["optimal"]:
        return "Proven optimal"
    why = "the time limit" if solver["status"] == "time limit" else "the gap asked for"
    most = solver["bound"].get("pct")
    bound = f"; no choice of sites covers more than {most:.2f}%" if most is not None else ""
    return (
        f"Proven within {100 * solver['gap']:.2f}% of the optimum (stopped at {why}; "
        f"asked: {100 * solver['max_gap']:g}%){bound}"
    )


def to_csv(result: dict[str, Any]) -> str:
    """The chosen sites, ranked; text that a spreadsheet would run as a formula is quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for site in result["sites"]:
        row = [site[c] for c in CSV_COLUMNS]
        row = [f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row]
        writer.writerow(row)
    return out.getvalue()


def _inline_leaflet(figure: folium.Figure) -> None:
    css = (LEAFLET / "leaflet.css").read_text(encoding="utf-8")
    js = (LEAFLET / "leaflet.js").read_text(encoding="utf-8")
    figure.header.add_child(folium.Element(f"<style>{css}</style>\n<script>{js}</script>"))


def _centre(result: dict[str, Any]) -> list[float]:
    points = [f["geometry"]["coordinates"] for f in result["geojson"]["features"]
              if f["geometry"]["type"] == "Point"]  # fmt: skip
    if not points:
        return [53.4, -2.15]
    lons, lats = zip(*points, strict=True)
    return [(min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2]


def _template_safe(text: str) -> str:
    """folium writes tooltips into JavaScript template literals without escaping them:
    a backtick or ${ in a site's name would break (or inject into) the page."""
    return text.replace("`", "&#96;").replace("$", "&#36;")


def to_html(result: dict[str, Any], council: CouncilProfile) -> str:
    m = folium.Map(location=_centre(result), zoom_start=13, tiles=None, control_scale=True)
    m.default_js, m.default_css = [], []  # no CDN: Leaflet is inlined below
    features = result["geojson"]["features"]
    layers = {
        "Service areas (straight line)": folium.FeatureGroup("Service areas (straight line)"),
        "Service areas (route)": folium.FeatureGroup("Service areas (route)"),
        "Uncovered demand": folium.FeatureGroup("Uncovered demand"),
        "Existing sites": folium.FeatureGroup("Existing sites"),
        "Chosen sites": folium.FeatureGroup("Chosen sites"),
    }
    for feature in features:
        props, geometry = feature["properties"], feature["geometry"]
        role = props["role"]
        if role == "service_area":
            straight = props["distance_type"] == "straight"
            group = layers["Service areas (straight line)" if straight else "Service areas (route)"]
            folium.GeoJson(
                geometry,
                style_function=lambda _, s=straight: {
                    "color": "#f47738" if s else "#00703c", "weight": 1 if s else 2,
                    "fillOpacity": 0.08 if s else 0, "opacity": 0.7,
                },
            ).add_to(group)  # fmt: skip
            continue
        lon, lat = geometry["coordinates"]
        label = html.escape(str(props.get("label") or f"Feature {props.get('feature_id')}"))
        if role == "chosen":
            gain, total = props["gain_pct"], props["cumulative_pct"]
            text = f"{props['rank']}. {label}: +{gain:.2f}% (to {total:.1f}%)"
            radius, group = 7, layers["Chosen sites"]
        elif role == "fixed":
            text, radius, group = f"Existing: {label}", 5, layers["Existing sites"]
        else:
            text, radius, group = (
                f"Uncovered demand, weight {props['weight']:g}",
                2,
                layers["Uncovered demand"],
            )
        folium.CircleMarker(
            [lat, lon], radius=radius, color=COLOURS[role], fill=True, fill_opacity=0.9,
            weight=1, tooltip=_template_safe(text),
        ).add_to(group)  # fmt: skip
    for group in layers.values():
        group.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    figure = m.get_root()
    _inline_leaflet(figure)
    summary = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{before}</td><td>{after}</td></tr>"
        for name, before, after, _ in coverage_lines(result)
    )
    title = html.escape(f"{council.short_name}: defibrillator siting")
    figure.header.add_child(folium.Element(f"<title>{title}</title>"))
    figure.html.add_child(
        folium.Element(
            '<div style="position:fixed;top:10px;left:60px;z-index:1000;background:#fff;'
            'padding:8px;font:14px sans-serif;border:1px solid #505a5f">'
            f"<strong>{title}</strong><br>{len(result['sites'])} new sites, "
            f"{html.escape(result['distance']['label'])}, {result['distance']['metres']:g} m"
            "<table><tr><th></th><th>Before</th><th>After</th></tr>"
            f"{summary}</table>{html.escape(solver_line(result))}</div>"
        )
    )
    return figure.render()


def _mini_map(result: dict[str, Any], width: float, height: float) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(Rect(0, 0, width, height, strokeColor=colors.grey, fillColor=None))
    points = [
        (f["properties"]["role"], *f["geometry"]["coordinates"])
        for f in result["geojson"]["features"]
        if f["geometry"]["type"] == "Point"
    ]
    if not points:
        return drawing
    # Framed on the new sites and the demand left: existing sites far off would shrink it.
    framing = [p for p in points if p[0] != "fixed"] or points
    lons, lats = [p[1] for p in framing], [p[2] for p in framing]
    span = max(max(lons) - min(lons), (max(lats) - min(lats)) * 1.68, 1e-6)  # 1.68: cos 53.4°
    scale = min(width, height) / span * 0.9
    for role in ("uncovered", "fixed", "chosen"):
        for kind, lon, lat in points:
            if kind == role:
                x = width / 2 + (lon - (min(lons) + max(lons)) / 2) * scale
                y = height / 2 + (lat - (min(lats) + max(lats)) / 2) * scale * 1.68
                if not (0 < x < width and 10 < y < height):
                    continue
                radius = {"chosen": 2.5, "fixed": 1.8, "uncovered": 0.6}[role]
                colour = colors.HexColor(COLOURS[role])
                drawing.add(Circle(x, y, radius, fillColor=colour, strokeColor=None))
    legend = "red: chosen   grey: existing   blue: uncovered demand"
    drawing.add(String(4, 4, legend, fontSize=7))
    return drawing


def to_pdf(result: dict[str, Any], council: CouncilProfile) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"{council.short_name}: defibrillator siting")  # fmt: skip
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    d, demand, candidates = result["distance"], result["demand"], result["candidates"]
    when = datetime.now(UTC).strftime("%d %B %Y %H:%M UTC")
    intro = (
        f"{result['problem'].capitalize()}: {len(result['sites'])} new sites from "
        f"{candidates['count']} candidates ({html.escape(candidates['layer'])}), "
        f"{result['fixed']['count']} existing sites kept. Demand: "
        f"{html.escape(demand['layer'])} ({demand['points']} points, weight "
        f"{html.escape(str(demand['weight_field'] or 'one per feature'))}, total "
        f"{demand['total_weight']:g}). Coverage within {d['metres']:g} m "
        f"(about {d['walking_time_s'] // 60} min {d['walking_time_s'] % 60} s on foot). "
        f"{html.escape(d['label'])}. Unreachable by any site: {result['unreachable']['pct']:.1f}%."
        f" {html.escape(solver_line(result))}."
    )
    table = Table(
        [("Distance", "Before", "After", "Reachable at most"), *coverage_lines(result)],
        hAlign="LEFT",
    )
    grid = [("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]
    table.setStyle(
        TableStyle(
            [
                *grid,
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f3f2f1")),
            ]
        )  # fmt: skip
    )
    rows = [("Rank", "Site", "Adds", "Cumulative")] + [
        (s["rank"], Paragraph(html.escape(str(s["label"] or s["feature_id"]))[:60], small),
         f"{s['gain_pct']:.2f}%", f"{s['cumulative_pct']:.1f}%")
        for s in result["sites"][:PDF_SITES]
    ]  # fmt: skip
    sites = Table(rows, colWidths=(10 * mm, 62 * mm, 16 * mm, 18 * mm), hAlign="LEFT")
    sites.setStyle(TableStyle([*grid, ("FONTSIZE", (0, 0), (-1, -1), 7)]))
    more = len(result["sites"]) - PDF_SITES
    story = [
        Paragraph(html.escape(f"{council.short_name}: defibrillator siting"), styles["Heading1"]),
        Paragraph(html.escape(f"{council.name}, {when}"), small),
        Spacer(1, 3 * mm),
        Paragraph(intro, small),
        Spacer(1, 3 * mm),
        table,
        Spacer(1, 3 * mm),
        Table(
            [[sites, _mini_map(result, 70 * mm, 80 * mm)]],
            hAlign="LEFT",
            style=[("VALIGN", (0, 0), (-1, -1), "TOP")],
        ),  # fmt: skip
    ]
    if more > 0:
        story.append(Paragraph(f"… and {more} more sites in the CSV and GeoJSON.", small))
    doc.build(story)
    return out.getvalue()


def render(result: dict[str, Any], fmt: str, council: CouncilProfile) -> tuple[str, Any]:
    """(media type, body) of the result in one of FORMATS."""
    if fmt == "geojson":
        return "application/geo+json", result["geojson"]
    if fmt == "csv":
        return "text/csv; charset=utf-8", to_csv(result).encode()
    if fmt == "html":
        return "text/html; charset=utf-8", to_html(result, council).encode()
    if fmt == "pdf":
        return "application/pdf", to_pdf(result, council)
    return "application/json", result
