"""A saved analysis result as a PDF report: a map drawn on the server from our own layers
(matplotlib, no tiles, no network) with the site, what was found and a scale bar and north
arrow, the summary table, then the features of each layer."""

import io
import math
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import shapely
from matplotlib import rc_context
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from sqlalchemy import text
from sqlalchemy.engine import Engine

from layers.catalogue import Catalogue

A4 = (8.27, 11.69)
ROWS_PER_PAGE = 38
MAX_BASEMAP_FEATURES = 5000
MAX_ROWS_PER_LAYER = 200  # in the PDF; the CSV has every feature
SITE_COLOUR = "#d4351c"
TEXT = "#0b0c0c"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _area(m2: float | None) -> str:
    if m2 is None:
        return ""
    return f"{m2:,.0f} m²" if m2 < 10_000 else f"{m2 / 10_000:,.2f} ha"


SUMMARY_HEADER = ["Layer", "Found", "On site", "Area on site", "Share of site", "Notes"]


def summary_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Layer, found, on site, area on site, share of site, notes (as the page shows them),
    without the columns that say nothing for this analysis."""
    rows = summary_rows(result)
    keep = [i for i in range(len(SUMMARY_HEADER)) if i < 2 or any(row[i] for row in rows)]
    return [SUMMARY_HEADER[i] for i in keep], [[row[i] for i in keep] for row in rows]


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for section in result["sections"]:
        found = f"{section['count']}{'+' if section['truncated'] else ''}"
        note = ""
        if "population" in section:
            note = f"about {section['population']['estimate']:,} residents"
        elif section.get("groups"):
            label = section.get("group_label", "")
            note = "; ".join(
                f"{label} {g['value']}: {_share(g['share'])}" for g in section["groups"]
            )
        rows.append([
            section["title"], found, str(section.get("on_site", "")),
            _area(section.get("overlap_m2")), _share(section.get("share")), note,
        ])  # fmt: skip
    return rows


def _frame(features: list[dict], srid: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame.from_features(features, crs=4326).to_crs(srid)


def _scale_bar(ax: Any, width_m: float) -> None:  # noqa: ANN401 (matplotlib axes)
    length = 10 ** math.floor(math.log10(width_m / 4))
    for step in (5, 2):
        if length * step <= width_m / 4:
            length *= step
            break
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    x, y = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.04
    ax.plot([x, x + length], [y, y], color=TEXT, linewidth=3, solid_capstyle="butt")
    label = f"{length:g} m" if length < 1000 else f"{length / 1000:g} km"
    ax.text(x + length / 2, y + (y1 - y0) * 0.015, label, ha="center", fontsize=8, color=TEXT)
    ax.annotate("N", xy=(0.95, 0.95), xytext=(0.95, 0.85), xycoords="axes fraction",
                ha="center", fontsize=10, fontweight="bold", color=TEXT,
                arrowprops={"arrowstyle": "-|>", "color": TEXT})  # fmt: skip


def _basemap(ax: Any, engine: Engine, catalogue: Catalogue, extent: tuple) -> None:  # noqa: ANN401
    """The council's base map layers and boundary, light, clipped to the map's extent."""
    council = catalogue.council
    for layer_id in [*council.basemap_layers, council.boundary_layer]:
        layer = catalogue.layers.get(layer_id)
        if layer is None or layer.access != "public":
            continue
        box = f"ST_MakeEnvelope({', '.join(map(str, extent))}, {layer.srid})"
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT ST_AsBinary(ST_Intersection(geom, {box}))"
                    f' FROM layers."{layer.table_name}"'
                    f" WHERE geom && {box} LIMIT {MAX_BASEMAP_FEATURES}"
                )
            ).scalars()
            shapes = gpd.GeoSeries([shapely.from_wkb(bytes(row)) for row in rows])
        if shapes.empty:
            continue
        if layer_id == council.boundary_layer:
            shapes.boundary.plot(ax=ax, color=TEXT, linewidth=1.5)
        elif layer.geometry.endswith("Polygon"):
            shapes.boundary.plot(ax=ax, color="#b1b4b6", linewidth=0.6)
        elif layer.geometry.endswith("LineString"):
            shapes.plot(ax=ax, color="#5694ca", linewidth=1)
        else:
            shapes.plot(ax=ax, color="#b1b4b6", markersize=3)


def _map(
    fig: Figure, result: dict[str, Any], catalogue: Catalogue, engine: Engine, srid: int
) -> None:
    ax = fig.add_axes((0.07, 0.40, 0.86, 0.44))
    site = _frame([{"type": "Feature", "geometry": result["site"]["geometry"],
                    "properties": {}}], srid)  # fmt: skip
    minx, miny, maxx, maxy = site.total_bounds
    reach = result["parameters"].get("distance_m", 0)
    margin = max(maxx - minx, maxy - miny) * 0.25 + max(reach * 1.1, 50)
    extent = (minx - margin, miny - margin, maxx + margin, maxy + margin)
    _basemap(ax, engine, catalogue, extent)
    handles = []
    if result.get("zone"):
        zone = _frame([{"type": "Feature", "geometry": result["zone"], "properties": {}}], srid)
        zone.boundary.plot(ax=ax, color=SITE_COLOUR, linewidth=1, linestyle="--")
        handles.append(Line2D([], [], color=SITE_COLOUR, linestyle="--", label="Reach"))
    for section in result["sections"]:
        if not section["features"]:
            continue
        style = (
            catalogue.layers[section["layer"]].style
            if section["layer"] in catalogue.layers
            else None
        )
        colour = style.colour if style else "#505a5f"
        fill = (style.fill_colour or style.colour) if style else "#b1b4b6"
        frame = _frame(section["features"], srid)
        if section["geometry"].endswith("Polygon"):
            alpha = max(style.fill_opacity if style else 0.2, 0.15)
            frame.plot(ax=ax, facecolor=fill, edgecolor=colour, alpha=alpha, linewidth=0.8)
            handles.append(
                Patch(facecolor=fill, edgecolor=colour, alpha=0.5, label=section["title"])
            )
        elif section["geometry"].endswith("LineString"):
            frame.plot(ax=ax, color=colour, linewidth=1.5)
            handles.append(Line2D([], [], color=colour, label=section["title"]))
        else:
            frame.plot(ax=ax, color=fill, edgecolor=colour, markersize=18, linewidth=0.6)
            handles.append(Line2D([], [], marker="o", linestyle="", color=fill,
                                  markeredgecolor=colour, label=section["title"]))  # fmt: skip
    geometry = result["site"]["geometry"]["type"]
    if geometry.endswith("Point"):
        site.plot(ax=ax, color=SITE_COLOUR, markersize=40, marker="*")
    else:
        site.plot(ax=ax, facecolor="none", edgecolor=SITE_COLOUR, linewidth=2)
    handles.append(Line2D([], [], color=SITE_COLOUR, linewidth=2, label="Site"))
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    _scale_bar(ax, (maxx - minx) + 2 * margin)
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.9)


def _table(fig: Figure, rect: tuple, header: list[str], rows: list[list[str]]) -> None:
    ax = fig.add_axes(rect)
    ax.axis("off")
    if not rows:
        ax.text(0, 1, "Nothing found.", fontsize=9, va="top")
        return
    table = ax.table(cellText=rows, colLabels=header, loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.25)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#b1b4b6")
        if row == 0:
            cell.set_text_props(fontweight="bold")
    table.auto_set_column_width(list(range(len(header))))


def _heading(fig: Figure, title: str, subtitle: str) -> None:
    fig.text(0.07, 0.95, title, fontsize=16, fontweight="bold", color=TEXT)
    fig.text(0.07, 0.925, subtitle, fontsize=9, color=TEXT)


def _feature_rows(section: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    fields = section["fields"][:4]
    measures = [("distance_m", "Distance (m)"), ("overlap_m2", "On site"), ("share", "Share"),
                ("population_estimate", "Residents (est.)")]  # fmt: skip
    present = [m for m in measures if any(m[0] in f["properties"] for f in section["features"])]
    header = [f["label"] for f in fields] + [label for _, label in present]
    rows = []
    for feature in section["features"][:MAX_ROWS_PER_LAYER]:
        p = feature["properties"]
        cells = [str(p.get(f["name"]) if p.get(f["name"]) is not None else "")[:40] for f in fields]
        for name, _ in present:
            value = p.get(name)
            cells.append(_share(value) if name == "share" else _area(value) if name == "overlap_m2"
                         else "" if value is None else f"{value:,.1f}")  # fmt: skip
        rows.append(cells)
    return header, rows


def render_pdf(
    result: dict[str, Any], catalogue: Catalogue, engine: Engine, finished: datetime | None
) -> bytes:
    council = catalogue.council
    srid = catalogue.layers[council.boundary_layer].srid
    when = (finished or datetime.now(UTC)).strftime("%d %B %Y %H:%M UTC")
    site = result["site"]
    title = f"{council.short_name}: {result['title']}"
    subtitle = f"Site: {site['label']}"
    if site["area_m2"]:
        subtitle += f" ({_area(site['area_m2'])})"
    subtitle += f". Produced {when}."
    out = io.BytesIO()
    # Text from the data is text: a "$" in a proposal must not start matplotlib's mathtext.
    with (
        rc_context({"text.parse_math": False}),
        PdfPages(out, metadata={"Title": title, "Creator": f"{council.short_name} maps"}) as pdf,
    ):
        fig = Figure(figsize=A4)
        _heading(fig, title, subtitle)
        _map(fig, result, catalogue, engine, srid)
        _table(fig, (0.07, 0.08, 0.86, 0.30), *summary_table(result))
        notes = [council.attribution]
        if any(s["synthetic"] for s in result["sections"]):
            notes.insert(0, "Layers marked synthetic are generated data, not council records.")
        if method := result["parameters"].get("method"):
            notes.insert(0, f"Distances: {method}.")
        fig.text(0.07, 0.03, "\n".join(notes), fontsize=6, color=TEXT, wrap=True)
        pdf.savefig(fig)
        for section in result["sections"]:
            if not section["features"]:
                continue
            header, rows = _feature_rows(section)
            for start in range(0, len(rows), ROWS_PER_PAGE):
                fig = Figure(figsize=A4)
                _heading(
                    fig, section["title"], f"{section['count']} found. {section['attribution']}"
                )
                _table(fig, (0.07, 0.05, 0.86, 0.85), header, rows[start : start + ROWS_PER_PAGE])
                pdf.savefig(fig)
    return out.getvalue()
