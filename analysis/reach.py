"""Incident reach (civil contingency): what of the chosen layers lies within a distance of a
point, line or polygon (a fire, a burst main, a flood extent), by straight line or along a
walking or driving network, with the residents of area layers estimated by area share.

Network reach routes with pgRouting's ``pgr_drivingDistance`` over the catalogue's line
layer flagged for the mode (``network: [walking]``). Its lines must meet at their ends
(noded at junctions, as OS Open Roads and OpenStreetMap ways are); ends within half a
metre are joined. Routing starts at the junctions on or inside the incident, or the
nearest one; a feature counts as reached within ``ACCESS_M`` of a reached street.
"""

import json
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import functions as gf
from sqlalchemy.engine import Connection, Engine

from analysis.near import InputError
from analysis.sections import Progress, features_within, is_area, no_progress, section
from analysis.sites import Site, parse_distance, parse_layers, resolve_site, site_geojson
from layers.catalogue import Catalogue
from layers.model import Layer
from mapserver.access import Principal
from mapserver.features_sql import table_of

MAX_REACH_M = 20_000
MAX_NETWORK_M = 10_000
ACCESS_M = 50.0
SNAP_GRID_M = 0.5
MODES = ("straight", "walking", "driving")

EDGES = """
CREATE TEMP TABLE reach_edges ON COMMIT DROP AS
WITH parts AS (
    SELECT (ST_Dump(geom)).geom AS geom FROM layers."{table}"
    WHERE ST_DWithin(geom, ST_Transform(ST_GeomFromEWKT(:site), {srid}), :radius)
), ends AS (
    SELECT geom, ST_AsEWKB(ST_SnapToGrid(ST_StartPoint(geom), {grid})) AS a,
           ST_AsEWKB(ST_SnapToGrid(ST_EndPoint(geom), {grid})) AS b
    FROM parts WHERE ST_Length(geom) > 0
), nodes AS (
    SELECT k, dense_rank() OVER (ORDER BY k) AS id
    FROM (SELECT a AS k FROM ends UNION SELECT b FROM ends) AS u
)
SELECT row_number() OVER () AS id, na.id AS source, nb.id AS target,
       ST_Length(e.geom) AS cost, ST_Length(e.geom) AS reverse_cost, e.geom
FROM ends e JOIN nodes na ON na.k = e.a JOIN nodes nb ON nb.k = e.b
"""
# Junctions on or inside the incident, else the nearest one.
STARTS = """
WITH site AS (SELECT ST_Transform(ST_GeomFromEWKT(:site), {srid}) AS g),
ends AS (
    SELECT source AS node, ST_StartPoint(geom) AS p FROM reach_edges
    UNION SELECT target, ST_EndPoint(geom) FROM reach_edges
)
SELECT array_agg(DISTINCT node) FROM (
    (SELECT node FROM ends, site WHERE ST_DWithin(p, g, {grid}))
    UNION ALL
    (SELECT node FROM ends, site WHERE ST_DWithin(p, g, :access) ORDER BY ST_Distance(p, g)
     LIMIT 1)
) AS s
"""
# The reached part of each edge: whole when one end's cost plus its length is within the
# distance, else the stretch from each reached end that the remaining distance covers.
REACHED = """
WITH dd AS (
    SELECT node, min(agg_cost) AS cost FROM pgr_drivingDistance(
        'SELECT id, source, target, cost, reverse_cost FROM reach_edges', :starts, :distance,
        directed => false)
    GROUP BY node
), parts AS (
    SELECT CASE
        WHEN least(s.cost, t.cost) + e.cost <= :distance THEN e.geom
        WHEN s.cost IS NOT NULL AND t.cost IS NOT NULL THEN ST_Collect(
            ST_LineSubstring(e.geom, 0, least(1, (:distance - s.cost) / e.cost)),
            ST_LineSubstring(e.geom, greatest(0, 1 - (:distance - t.cost) / e.cost), 1))
        WHEN s.cost IS NOT NULL THEN ST_LineSubstring(e.geom, 0, (:distance - s.cost) / e.cost)
        ELSE ST_LineSubstring(e.geom, 1 - (:distance - t.cost) / e.cost, 1)
    END AS geom, least(s.cost, t.cost) + e.cost <= :distance AS whole
    FROM reach_edges e LEFT JOIN dd s ON s.node = e.source LEFT JOIN dd t ON t.node = e.target
    WHERE s.cost IS NOT NULL OR t.cost IS NOT NULL
)
SELECT ST_AsEWKT(ST_Union(geom)), coalesce(sum(ST_Length(geom)), 0), count(*) FILTER (WHERE whole)
FROM parts
"""


def network_layer(catalogue: Catalogue, who: Principal, mode: str) -> Layer:
    for layer in catalogue.layers.values():
        if mode in layer.network and who.can_read(layer):
            return layer
    raise InputError(f"no {mode} network is loaded: use mode 'straight'")


def _inputs(catalogue: Catalogue, who: Principal, data: dict[str, Any]) -> tuple:
    layers = parse_layers(data.get("layers"), catalogue, who)
    mode = data.get("mode", "straight")
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}")
    limit = MAX_REACH_M if mode == "straight" else MAX_NETWORK_M
    distance = parse_distance(data.get("distance"), "distance", 0, limit)
    network = network_layer(catalogue, who, mode) if mode != "straight" else None
    return layers, mode, distance, network


def check(engine: Engine, catalogue: Catalogue, who: Principal, data: dict[str, Any]) -> None:
    _inputs(catalogue, who, data)
    with engine.connect() as conn:
        resolve_site(conn, catalogue, who, data, polygon=False)


def reached_network(conn: Connection, network: Layer, site: Site, distance: float) -> dict:
    """The stretches of the network within ``distance`` along it from the site (EWKT)."""
    grid = {"table": network.table_name, "srid": network.srid, "grid": SNAP_GRID_M}
    params = {"site": site.ewkt, "radius": distance + ACCESS_M, "access": ACCESS_M}
    conn.execute(sa.text(EDGES.format(**grid)), params)
    starts = conn.execute(sa.text(STARTS.format(**grid)), params).scalar()
    if not starts:
        raise InputError(f"the location is more than {ACCESS_M:g} m from the {network.title}")
    ewkt, metres, whole = conn.execute(
        sa.text(REACHED), {"starts": starts, "distance": distance}
    ).one()
    return {"ewkt": ewkt, "length_m": round(metres, 1), "whole_edges": whole}


def population(conn: Connection, layer: Layer, zone: sa.ColumnElement) -> dict[Any, float]:
    """Residents of each of the layer's areas inside ``zone``, by the share of its area."""
    assert layer.population
    table = table_of(layer)
    zone = gf.ST_Transform(zone, layer.srid)
    if layer.population.field:
        residents: sa.ColumnElement = table.c[layer.population.field]
    else:
        areas = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        residents = sa.literal(layer.population.total / max(areas, 1))
    share = gf.ST_Area(gf.ST_Intersection(table.c.geom, zone)) / sa.func.nullif(
        gf.ST_Area(table.c.geom), 0
    )
    rows = conn.execute(
        sa.select(table.c[layer.id_field], residents * share).where(
            gf.ST_Intersects(table.c.geom, zone)
        )
    ).all()
    return {fid: float(value or 0) for fid, value in rows}


def incident_reach(
    engine: Engine,
    catalogue: Catalogue,
    who: Principal,
    data: dict[str, Any],
    progress: Progress = no_progress,
) -> dict[str, Any]:
    layers, mode, distance, network = _inputs(catalogue, who, data)
    with engine.begin() as conn:  # one transaction: the network's temporary tables
        site = resolve_site(conn, catalogue, who, data, polygon=False)
        described = site_geojson(conn, site)
        parameters: dict[str, Any] = {"distance_m": distance, "mode": mode}
        if network is None:
            zone, within = site.geometry(), distance
            area = gf.ST_Buffer(site.geometry(), distance, "quad_segs=32")
            parameters["method"] = "straight-line distance"
        else:
            progress(10, f"Routing over the {network.title.lower()}")
            reached = reached_network(conn, network, site, distance)
            zone, within = gf.ST_GeomFromEWKT(reached["ewkt"]), ACCESS_M
            area = gf.ST_Buffer(zone, ACCESS_M, "quad_segs=8")
            parameters.update(
                method=f"{mode} distance along the {network.title.lower()}, then up to "
                f"{ACCESS_M:g} m from the street",
                network=network.id,
                network_reached_m=reached["length_m"],
            )
        reach_area, outline = conn.execute(
            sa.select(
                gf.ST_Area(area),
                gf.ST_AsGeoJSON(gf.ST_Transform(gf.ST_SimplifyPreserveTopology(area, 1), 4326), 7),
            )
        ).one()
        parameters["area_m2"] = round(reach_area or 0.0, 1)
        sections = []
        for done, layer in enumerate(layers):
            progress(20 + 75 * done // len(layers), f"Finding {layer.title.lower()}")
            features, total = features_within(conn, layer, who, zone, within)
            found = section(layer, who, features, total)
            if is_area(layer) and layer.population:
                residents = population(conn, layer, area)
                for feature in features:
                    feature["properties"]["population_estimate"] = round(
                        residents.get(feature["id"], 0.0), 1
                    )
                found["population"] = {
                    "estimate": round(sum(residents.values())),
                    "source": layer.population.source,
                }
            sections.append(found)
    return {
        "analysis": "incident-reach",
        "title": "Incident reach",
        "site": described,
        "parameters": parameters,
        "zone": json.loads(outline) if outline else None,
        "sections": sections,
    }
