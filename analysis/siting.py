"""Defibrillator siting by maximal covering location (MCLP), or by set cover to a target.

Demand (any point or polygon layer, with a weight field; polygons become a grid of
points sharing their weight), candidate sites (any point layer, filtered and constrained
to lie within or outside other layers' areas before solving) and existing sites kept
fixed are staged in temporary tables; the coverage pairs come from PostGIS (``ST_DWithin``)
and, when a walking network is loaded, from pgRouting (``pgr_withPointsDD``): sparse,
never a dense matrix. The sites come with a proven optimality gap, or proven optimal
(analysis.siting_solve: interchange heuristic, Lagrangian bound, HiGHS). Coverage is
reported by route and by straight line side by side for the same sites.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from geoalchemy2 import Geometry
from geoalchemy2 import functions as gf
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from analysis import network
from analysis.near import InputError
from analysis.siting_solve import DEFAULT_GAP, Coverage, Solution, solve
from layers.catalogue import Catalogue
from layers.model import Layer
from loaders.pipeline import live_versions
from mapserver.access import Principal
from mapserver.cql import FilterError, Translator, parse, to_sql
from mapserver.features_sql import table_of

DEFAULT_DISTANCE_M = 100.0
MAX_DISTANCE_M = 2_000.0
DEFAULT_SPACING_M = 100.0  # grid of demand points inside polygons
SPACING_RANGE_M = (10.0, 1_000.0)
MAX_DEMAND_POINTS = 250_000
MAX_SITES = 50_000
MAX_UNCOVERED_FEATURES = 5_000
SOLVER_TIME_LIMIT_S = 60.0  # the default of the siting_time_limit_s setting
MAX_GAP_PCT = 50.0
POINT_TYPES = ("Point", "MultiPoint")

DEMAND = """
CREATE TEMP TABLE siting_demand ON COMMIT DROP AS
WITH cells AS (
    SELECT s.fid, s.weight, ST_Centroid(g.geom) AS geom
    FROM siting_demand_source s, ST_SquareGrid(:spacing, s.geom) g
    WHERE :polygons AND ST_Intersects(s.geom, ST_Centroid(g.geom))
), points AS (
    SELECT fid, weight / count(*) OVER (PARTITION BY fid) AS weight, geom FROM cells
    UNION ALL
    SELECT fid, weight, ST_PointOnSurface(geom) FROM siting_demand_source s
    WHERE NOT (:polygons AND EXISTS (SELECT 1 FROM cells c WHERE c.fid = s.fid))
)
SELECT (row_number() OVER (ORDER BY fid, ST_X(geom), ST_Y(geom)) - 1)::int AS i,
       fid, weight::float8 AS weight, geom
FROM points WHERE :area IS NULL OR ST_Intersects(geom, ST_GeomFromEWKT(:area));
CREATE INDEX ON siting_demand USING gist (geom);
ANALYZE siting_demand;
"""
SITES = """
CREATE TEMP TABLE siting_sites ON COMMIT DROP AS
SELECT (row_number() OVER (ORDER BY fixed, fid) - 1)::int AS j, fid, fixed, label,
       ST_PointOnSurface(geom) AS geom
FROM siting_site_source;
CREATE INDEX ON siting_sites USING gist (geom);
ANALYZE siting_sites;
"""
STRAIGHT = """
SELECT d.i, s.j FROM siting_demand d JOIN siting_sites s ON ST_DWithin(d.geom, s.geom, {reach})
"""
COUNT_SITES = (
    "SELECT count(*) FILTER (WHERE NOT fixed), count(*) FILTER (WHERE fixed) FROM siting_sites"
)
ARRAYS = "SELECT coalesce(array_agg(weight ORDER BY i), '{}') FROM siting_demand"
SITE_ROWS = """
SELECT j, fid, fixed, label, ST_X(ST_Transform(geom, 4326)), ST_Y(ST_Transform(geom, 4326)),
       ST_AsGeoJSON(ST_Transform(ST_Buffer(geom, :reach, 16), 4326), 6)
FROM siting_sites WHERE j = ANY(:js) ORDER BY j
"""
UNCOVERED = """
SELECT fid, weight, ST_X(ST_Transform(geom, 4326)), ST_Y(ST_Transform(geom, 4326))
FROM siting_demand WHERE i = ANY(:is) ORDER BY weight DESC, i LIMIT :limit
"""


@dataclass(frozen=True)
class Area:
    """A layer's features (optionally filtered) that candidates must lie within or outside."""

    layer: Layer
    filter: dict | None


@dataclass(frozen=True)
class SitingRequest:
    demand: Layer
    weight_field: str | None
    demand_filter: dict | None
    candidates: Layer
    candidate_filter: dict | None
    within: list[Area]
    outside: list[Area]
    fixed: Layer | None
    fixed_filter: dict | None
    distance_m: float
    distance_type: str  # "route" or "straight"
    network: Layer | None
    p: int | None
    target_pct: float | None
    area_geojson: dict | None
    spacing_m: float = DEFAULT_SPACING_M
    label_field: str | None = None
    max_gap_pct: float = 100 * DEFAULT_GAP


def _number(
    data: dict, name: str, low: float, high: float, default: float | None = None
) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InputError(f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def _layer(catalogue: Catalogue, who: Principal, layer_id: Any, role: str) -> Layer:  # noqa: ANN401
    layer = catalogue.layers.get(str(layer_id)) if isinstance(layer_id, str) else None
    if layer is None or not who.can_read(layer):
        raise InputError(f"unknown {role} layer {layer_id!r}")
    return layer


def _filter(data: dict, name: str) -> dict | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InputError(f"{name} must be a CQL2 text filter")
    try:
        return parse(value)
    except FilterError as exc:
        raise InputError(f"{name}: {exc}") from None


def _areas(catalogue: Catalogue, who: Principal, data: dict, name: str) -> list[Area]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise InputError(f"{name} must be a list of {{layer, filter}} objects")
    areas = []
    for item in value:
        item = {"layer": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            raise InputError(f"{name} must be a list of {{layer, filter}} objects")
        layer = _layer(catalogue, who, item.get("layer"), "area")
        if "Polygon" not in layer.geometry:
            raise InputError(f"{name}: {layer.id} is not a polygon layer")
        areas.append(Area(layer, _filter(item, "filter")))
    return areas


def parse_request(
    catalogue: Catalogue, who: Principal, data: dict, loaded: set[str]
) -> SitingRequest:
    """The process inputs, checked: every mistake is an InputError saying what to fix."""
    for name in ("demand_layer", "candidate_layer"):
        if name not in data:
            raise InputError(f"missing input: {name}")
    demand = _layer(catalogue, who, data["demand_layer"], "demand")
    candidates = _layer(catalogue, who, data["candidate_layer"], "candidate")
    if candidates.geometry not in POINT_TYPES:
        raise InputError(f"candidate layer {candidates.id} must be a point layer")
    if "LineString" in demand.geometry:
        raise InputError(f"demand layer {demand.id} must be a point or polygon layer")
    weight = data.get("weight_field") or None
    if weight is not None:
        numeric = {f.name for f in who.fields(demand) if f.type in ("integer", "number")}
        if weight not in numeric:
            raise InputError(f"weight_field {weight!r} is not a number field of {demand.id}")
    fixed = data.get("fixed_layer") or None
    fixed_layer = _layer(catalogue, who, fixed, "fixed") if fixed else None
    if fixed_layer is not None and fixed_layer.geometry not in POINT_TYPES:
        raise InputError(f"fixed layer {fixed_layer.id} must be a point layer")
    if "distance" in data and "walking_time" in data:
        raise InputError("give distance (metres) or walking_time (seconds), not both")
    if "walking_time" in data:
        seconds = _number(data, "walking_time", 1, MAX_DISTANCE_M / network.WALK_SPEED_M_S)
        distance = round(seconds * network.WALK_SPEED_M_S, 1)
    else:
        distance = _number(data, "distance", 1, MAX_DISTANCE_M, DEFAULT_DISTANCE_M)
    walk = network.network_layer(list(catalogue.layers.values()), loaded)
    distance_type = data.get("distance_type", "auto")
    if distance_type not in ("auto", "route", "straight"):
        raise InputError("distance_type must be auto, route or straight")
    if distance_type == "route" and walk is None:
        raise InputError("distance_type route needs a walking network layer: none is loaded")
    if distance_type == "auto":
        distance_type = "route" if walk is not None else "straight"
    p, target = data.get("p"), data.get("target_coverage")
    if (p is None) == (target is None):
        raise InputError("give either p (new sites) or target_coverage (percent), not both")
    if p is not None and (isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= MAX_SITES):
        raise InputError(f"p must be a whole number from 0 to {MAX_SITES}")
    target = _number(data, "target_coverage", 0.001, 100) if target is not None else None
    area = data.get("area")
    if area is not None:
        if isinstance(area, dict) and area.get("type") == "Feature":
            area = area.get("geometry")
        if not isinstance(area, dict) or area.get("type") not in ("Polygon", "MultiPolygon"):
            raise InputError("area must be a GeoJSON polygon (CRS84)")
    label = data.get("label_field") or None
    visible = {f.name: f for f in who.fields(candidates)}
    if label is not None and label not in visible:
        raise InputError(f"label_field {label!r} is not a field of {candidates.id}")
    if label is None:
        strings = [f.name for f in visible.values() if f.type == "string"]
        label = "name" if "name" in visible else (strings[0] if strings else None)
    return SitingRequest(
        demand=demand, weight_field=weight, demand_filter=_filter(data, "demand_filter"),
        candidates=candidates, candidate_filter=_filter(data, "candidate_filter"),
        within=_areas(catalogue, who, data, "candidates_within"),
        outside=_areas(catalogue, who, data, "candidates_outside"),
        fixed=fixed_layer, fixed_filter=_filter(data, "fixed_filter"),
        distance_m=distance, distance_type=distance_type, network=walk,
        p=p, target_pct=target, area_geojson=area,
        spacing_m=_number(data, "demand_spacing", *SPACING_RANGE_M, DEFAULT_SPACING_M),
        label_field=label,
        max_gap_pct=_number(data, "max_gap", 0, MAX_GAP_PCT, 100 * DEFAULT_GAP),
    )  # fmt: skip


def _where(layer: Layer, table: sa.Table, who: Principal, tree: dict | None, name: str) -> list:
    if tree is None:
        return []
    columns = {f.name: table.c[f.name] for f in who.fields(layer)}
    columns[layer.id_field] = table.c[layer.id_field]
    try:
        return [to_sql(tree, Translator(columns, table.c.geom, layer.srid, 4326))]
    except FilterError as exc:
        raise InputError(f"{name}: {exc}") from None


def _area_condition(geom: sa.ColumnElement, area: Area, who: Principal) -> sa.ColumnElement:
    table = table_of(area.layer).alias()
    return sa.exists().where(
        gf.ST_Intersects(table.c.geom, geom),
        *_where(area.layer, table, who, area.filter, f"filter of {area.layer.id}"),
    )


def _temp_table(name: str, srid: int, *columns: sa.Column) -> sa.Table:
    return sa.Table(
        name, sa.MetaData(), *columns, sa.Column("geom", Geometry(srid=srid)),
        prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
    )  # fmt: skip


def _stage(conn: Connection, request: SitingRequest, who: Principal, area_ewkt: str | None) -> None:
    srid = request.candidates.srid
    clip = gf.ST_GeomFromEWKT(area_ewkt) if area_ewkt else None
    demand = table_of(request.demand)
    source = _temp_table(
        "siting_demand_source", srid, sa.Column("fid", sa.BigInteger), sa.Column("weight", sa.Float)
    )
    source.create(conn)
    weight = (
        sa.func.coalesce(sa.cast(demand.c[request.weight_field], sa.Float), 0.0)
        if request.weight_field
        else sa.literal(1.0)
    )
    conditions = _where(request.demand, demand, who, request.demand_filter, "demand_filter")
    if clip is not None:
        conditions.append(
            gf.ST_Intersects(demand.c.geom, gf.ST_Transform(clip, request.demand.srid))
        )
    conn.execute(
        source.insert().from_select(
            ["fid", "weight", "geom"],
            sa.select(
                demand.c[request.demand.id_field], weight, gf.ST_Transform(demand.c.geom, srid)
            ).where(*conditions),
        )
    )
    polygons = "Polygon" in request.demand.geometry
    if polygons:  # checked before the grid is made: a fine grid over a borough is millions
        area = conn.execute(text("SELECT sum(ST_Area(geom)) FROM siting_demand_source")).scalar()
        if (area or 0) / request.spacing_m**2 > MAX_DEMAND_POINTS:
            raise InputError(
                f"a {request.spacing_m:g} m grid over these polygons is more than "
                f"{MAX_DEMAND_POINTS} demand points: use a wider demand_spacing or an area"
            )
    conn.execute(
        text(DEMAND),
        {
            "spacing": request.spacing_m,
            "polygons": polygons,
            "area": area_ewkt,
        },
    )
    sites = _temp_table(
        "siting_site_source", srid, sa.Column("fid", sa.BigInteger),
        sa.Column("fixed", sa.Boolean), sa.Column("label", sa.Text),
    )  # fmt: skip
    sites.create(conn)
    candidates = table_of(request.candidates)
    where = _where(
        request.candidates, candidates, who, request.candidate_filter, "candidate_filter"
    )
    where += [_area_condition(candidates.c.geom, area, who) for area in request.within]
    where += [~_area_condition(candidates.c.geom, area, who) for area in request.outside]
    if clip is not None:
        where.append(gf.ST_Intersects(candidates.c.geom, gf.ST_Transform(clip, srid)))
    _add_sites(conn, sites, request.candidates, False, request.label_field, where)
    if request.fixed is not None:
        fixed = table_of(request.fixed)
        where = _where(request.fixed, fixed, who, request.fixed_filter, "fixed_filter")
        names = {f.name for f in who.fields(request.fixed)}
        _add_sites(conn, sites, request.fixed, True, "name" if "name" in names else None, where)
    conn.exec_driver_sql(SITES)


def _add_sites(
    conn: Connection, sites: sa.Table, layer: Layer, fixed: bool, label: str | None, where: list
) -> None:
    table = table_of(layer)
    conn.execute(
        sites.insert().from_select(
            ["fid", "fixed", "label", "geom"],
            sa.select(
                table.c[layer.id_field],
                sa.literal(fixed),
                sa.cast(table.c[label], sa.Text) if label else sa.null(),
                gf.ST_Transform(table.c.geom, sites.c.geom.type.srid),
            ).where(*where),
        )
    )


def _area_ewkt(conn: Connection, geojson: dict | None, srid: int) -> str | None:
    if geojson is None:
        return None
    row = conn.execute(
        text(
            "SELECT ST_IsValid(g), ST_IsValidReason(g), ST_AsEWKT(ST_Transform(g, :srid))"
            " FROM (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:shape), 4326) AS g) s"
        ),
        {"shape": json.dumps(geojson), "srid": srid},
    ).one()
    if not row[0]:
        raise InputError(f"area is not a valid polygon: {row[1]}")
    return row[2]


def _coverage_figures(
    cover: Coverage, weights: np.ndarray, fixed: np.ndarray, chosen: np.ndarray
) -> dict[str, Any]:
    total = float(weights.sum())
    after = fixed.copy()
    after[chosen] = True

    def figure(mask: np.ndarray) -> dict[str, float]:
        weight = float(weights[mask].sum())
        return {"weight": round(weight, 3), "pct": round(100 * weight / total, 2) if total else 0.0}

    return {
        "before": figure(cover.covered(fixed)),
        "after": figure(cover.covered(after)),
        "reachable": figure(cover.reachable()),
    }


def _solver(solution: Solution, request: SitingRequest, total: float) -> dict[str, Any]:
    """How good the sites are: proven optimal, or within a proven gap (stopped at the
    tolerance, or at the time limit), with the bound that proves it."""
    max_gap = request.max_gap_pct / 100
    status = "optimal" if solution.optimal else "gap" if solution.gap <= max_gap else "time limit"
    if request.p is not None:  # the most weight any p new sites (with the existing) cover
        bound = {"weight": round(solution.bound, 3),
                 "pct": round(100 * solution.bound / total, 2) if total else 0.0}  # fmt: skip
    else:
        bound = {"sites": int(solution.bound)}  # no fewer new sites can reach the target
    return {
        "name": "HiGHS",
        "method": "greedy and interchange, Lagrangian bound, HiGHS branch and bound",
        "optimal": solution.optimal,
        "gap": solution.gap,
        "max_gap": max_gap,
        "status": status,
        "bound": bound,
        "seconds": round(solution.seconds, 3),
    }


def _feature(geometry: dict, **properties: Any) -> dict:  # noqa: ANN401
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}


def run_siting(
    engine: Engine,
    catalogue: Catalogue,
    who: Principal,
    data: dict,
    *,
    time_limit: float = SOLVER_TIME_LIMIT_S,
    progress: Callable[[int, str], None] = lambda percent, message: None,
) -> dict[str, Any]:
    """Run one siting analysis from the process inputs; the result as a JSON-ready dict."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    with engine.begin() as conn:
        loaded = set(live_versions(conn))
        request = parse_request(catalogue, who, data, loaded)
        for layer in (request.demand, request.candidates, request.fixed):
            if layer is not None and layer.id not in loaded:
                raise InputError(f"layer {layer.id} has no data loaded")
        srid = request.candidates.srid
        area = _area_ewkt(conn, request.area_geojson, srid)
        progress(5, "Staging demand and candidate sites")
        _stage(conn, request, who, area)
        weights = np.asarray(conn.execute(text(ARRAYS)).scalar(), dtype=float)
        counts = conn.execute(text(COUNT_SITES)).one()
        n_candidates, n_fixed = int(counts[0]), int(counts[1])
        n_demand, n_sites = len(weights), n_candidates + n_fixed
        if n_demand == 0:
            raise InputError("no demand: the demand layer has no features (after its filter)")
        if n_demand > MAX_DEMAND_POINTS:
            raise InputError(
                f"{n_demand} demand points is more than {MAX_DEMAND_POINTS}: use a filter, "
                "an area or a wider demand_spacing"
            )
        if n_sites > MAX_SITES:
            raise InputError(f"{n_sites} sites is more than {MAX_SITES}: filter the candidates")
        if request.p is not None and request.p > n_candidates:
            raise InputError(
                f"p ({request.p}) is larger than the {n_candidates} candidate sites left "
                "after the filters"
            )
        lap("stage")
        progress(20, "Building straight-line coverage")
        reach = request.distance_m
        demand_idx, site_idx = network.copy_pairs(conn, STRAIGHT.format(reach=float(reach)))
        covers = {"straight": Coverage(n_demand, n_sites, demand_idx, site_idx)}
        lap("coverage_straight")
        if request.network is not None:  # reported beside straight line even when not solved on
            progress(35, "Building route coverage over the walking network")
            network.build(conn, request.network, n_demand, reach)
            lap("network_build")
            demand_idx, site_idx = network.route_pairs(conn, n_demand, reach)
            covers["route"] = Coverage(n_demand, n_sites, demand_idx, site_idx)
            lap("coverage_route")
        progress(60, "Solving")
        fixed = np.arange(n_sites) >= n_candidates
        cover = covers[request.distance_type]
        solution: Solution = solve(
            cover, weights, ~fixed, fixed,
            p=request.p,
            target=request.target_pct / 100 if request.target_pct is not None else None,
            time_limit=time_limit, gap=request.max_gap_pct / 100,
        )  # fmt: skip
        lap("solve")
        progress(85, "Writing results")
        result = _result(conn, request, covers, weights, fixed, solution, n_candidates)
        lap("results")
    result["timings_s"] = timings
    progress(100, "Done")
    return result


def _result(
    conn: Connection,
    request: SitingRequest,
    covers: dict[str, Coverage],
    weights: np.ndarray,
    fixed: np.ndarray,
    solution: Solution,
    n_candidates: int,
) -> dict[str, Any]:
    headline = request.distance_type
    cover = covers[headline]
    total = float(weights.sum())
    chosen = solution.chosen
    fixed_js = np.flatnonzero(fixed)
    rows = conn.execute(
        text(SITE_ROWS),
        {"js": [int(j) for j in np.r_[chosen, fixed_js]], "reach": request.distance_m},
    ).all()
    by_j = {row[0]: row for row in rows}
    routes = {}
    if "route" in covers:
        routes = network.served_lines(
            conn, len(weights), [int(j) for j in np.r_[chosen, fixed_js]], request.distance_m
        )
    cumulative = float(weights[cover.covered(fixed)].sum())
    sites, features = [], []
    for rank, (j, gain) in enumerate(zip(chosen, solution.gains, strict=True), start=1):
        _, fid, _, label, lon, lat, circle = by_j[int(j)]
        cumulative += gain
        site = {
            "rank": rank,
            "feature_id": fid,
            "label": label,
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "gain_weight": round(float(gain), 3),
            "gain_pct": round(100 * gain / total, 3) if total else 0.0,
            "cumulative_pct": round(100 * cumulative / total, 2) if total else 0.0,
        }
        sites.append(site)
        features.append(_feature(_point(lon, lat), role="chosen", **site))
    for j in fixed_js:
        _, fid, _, label, lon, lat, circle = by_j[int(j)]
        features.append(_feature(_point(lon, lat), role="fixed", feature_id=fid, label=label))
    for j in np.r_[chosen, fixed_js]:
        _, fid, is_fixed, label, _, _, circle = by_j[int(j)]
        kind = "fixed" if is_fixed else "chosen"
        features.append(
            _feature(json.loads(circle), role="service_area", distance_type="straight",
                     site=kind, feature_id=fid, label=label)
        )  # fmt: skip
        if int(j) in routes:
            features.append(
                _feature(json.loads(routes[int(j)]), role="service_area", distance_type="route",
                         site=kind, feature_id=fid, label=label)
            )  # fmt: skip
    after = fixed.copy()
    after[chosen] = True
    uncovered = np.flatnonzero(~cover.covered(after) & (weights > 0))
    unreachable = ~cover.reachable() & (weights > 0)
    for fid, weight, lon, lat in conn.execute(
        text(UNCOVERED), {"is": [int(i) for i in uncovered], "limit": MAX_UNCOVERED_FEATURES}
    ):
        features.append(
            _feature(_point(lon, lat), role="uncovered", feature_id=fid, weight=round(weight, 3))
        )
    route_label = (
        f"walking distance over the {request.network.title.lower()} (pgRouting)"
        if request.network
        else None
    )
    return {
        "distance": {
            "metres": request.distance_m,
            "walking_time_s": round(request.distance_m / network.WALK_SPEED_M_S),
            "type": headline,
            "label": (
                f"Route: {route_label}"
                if headline == "route"
                else "Straight line (as the crow flies): overstates what can be reached on foot"
                + ("" if request.network else "; no walking network is loaded")
            ),
            "network_layer": request.network.id if request.network else None,
        },
        "demand": {
            "layer": request.demand.id,
            "weight_field": request.weight_field,
            "points": len(weights),
            "from_polygons": "Polygon" in request.demand.geometry,
            "spacing_m": request.spacing_m if "Polygon" in request.demand.geometry else None,
            "total_weight": round(total, 3),
        },
        "candidates": {
            "layer": request.candidates.id,
            "count": n_candidates,
            "within": [a.layer.id for a in request.within],
            "outside": [a.layer.id for a in request.outside],
        },
        "fixed": {
            "layer": request.fixed.id if request.fixed else None,
            "count": int(fixed.sum()),
        },
        "problem": "maximal covering" if request.p is not None else "set cover to a target",
        "p": request.p,
        "target_coverage": request.target_pct,
        "target_reached": solution.target_reached,
        "coverage": {
            name: _coverage_figures(c, weights, fixed, chosen) for name, c in covers.items()
        },
        "unreachable": {
            "weight": round(float(weights[unreachable].sum()), 3),
            "pct": round(100 * float(weights[unreachable].sum()) / total, 2) if total else 0.0,
            "points": int(unreachable.sum()),
        },
        "uncovered": {
            "weight": round(float(weights[uncovered].sum()), 3),
            "points": len(uncovered),
            "listed": min(len(uncovered), MAX_UNCOVERED_FEATURES),
        },
        "sites": sites,
        "solver": _solver(solution, request, total),
        "geojson": {"type": "FeatureCollection", "features": features},
    }
