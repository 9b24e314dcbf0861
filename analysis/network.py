"""Walking distances over a path network with pgRouting.

The network is a line layer noded at junctions (``network: [walking]`` in the catalogue: OS
Open Roads' road links, OS MasterMap Highways' road and path links, or the synthetic
paths). Its topology is built per analysis in temporary tables, in the same transaction,
so it always matches the layer's live version: vertices are the lines' end points (to
1 cm), edges cost their length in metres both ways (walking has no one-way streets).

Points (demand and sites) join the network at the nearest edge within the coverage
distance; the walk from a site to a demand point is the site's snap distance, the walk
along the network (``pgr_withPointsDD``, which splits edges at the points) and the
demand point's snap distance. Only the sites are inserted into the graph; a demand
point is reached through an end of its edge (or along it, from a site on the same edge).
"""

import io

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from layers.model import Layer

WALK_SPEED_M_S = 1.33  # brisk walk, as in the siting literature (about 80 m a minute)
SNAP_GRID_M = 0.01
# pgr_withPointsDD names its start column start_vid (3.4 and 3.6+), older releases
# start_pid; pgr_drivingDistance's is from_v in 3.4 and start_vid from 3.6.
START_COLUMNS = ("start_vid", "start_pid", "from_v")

BUILD = """
CREATE TEMP TABLE siting_edges ON COMMIT DROP AS
WITH parts AS (
    SELECT (ST_Dump(geom)).geom AS geom FROM layers.{table}
), lines AS (
    SELECT row_number() OVER () AS id, geom, ST_Length(geom) AS length,
           ST_SnapToGrid(ST_StartPoint(geom), {grid}) AS a,
           ST_SnapToGrid(ST_EndPoint(geom), {grid}) AS b
    FROM parts WHERE ST_Length(geom) > 0
), ends AS (
    SELECT ST_X(a) AS x, ST_Y(a) AS y FROM lines UNION SELECT ST_X(b), ST_Y(b) FROM lines
), vertices AS (
    SELECT row_number() OVER () AS vid, x, y FROM ends
)
SELECT l.id, va.vid AS source, vb.vid AS target, l.length AS cost,
       l.length AS reverse_cost, l.geom
FROM lines l
JOIN vertices va ON va.x = ST_X(l.a) AND va.y = ST_Y(l.a)
JOIN vertices vb ON vb.x = ST_X(l.b) AND vb.y = ST_Y(l.b);
CREATE INDEX ON siting_edges USING gist (geom);
ANALYZE siting_edges;
"""

# Every demand point (pid = i + 1) and site (pid = n_demand + j + 1) on its nearest edge.
SNAP = """
CREATE TEMP TABLE siting_points ON COMMIT DROP AS
SELECT p.pid, e.id AS edge_id, ST_LineLocatePoint(e.geom, p.geom) AS fraction,
       ST_Distance(e.geom, p.geom) AS offset_m, p.is_site
FROM (
    SELECT i + 1 AS pid, geom, false AS is_site FROM siting_demand
    UNION ALL
    SELECT :n_demand + j + 1, geom, true FROM siting_sites
) p
CROSS JOIN LATERAL (
    SELECT id, geom FROM siting_edges e
    WHERE ST_DWithin(e.geom, p.geom, :reach) ORDER BY e.geom <-> p.geom LIMIT 1
) e;
CREATE INDEX ON siting_points (pid);
CREATE INDEX ON siting_points (edge_id);
ANALYZE siting_points;
"""

# Only the sites join the graph as points (pgRouting splits an edge at each point, so
# 20,000 demand points would make the graph and every search several times bigger); a
# demand point is reached through either end of its edge, or along the edge from a site
# on the same edge.
REACH = """
WITH dd AS (
    SELECT -dd.{start} AS site, dd.node, dd.agg_cost
    FROM pgr_withPointsDD(
        'SELECT id, source, target, cost, reverse_cost FROM siting_edges',
        'SELECT pid, edge_id, fraction FROM siting_points WHERE is_site',
        (SELECT coalesce(array_agg(-pid), '{{}}') FROM siting_points WHERE is_site),
        {reach}, directed => false
    ) dd
    WHERE dd.node > 0
), demand AS (
    SELECT p.pid, p.edge_id, p.fraction, p.offset_m, e.source, e.target, e.cost
    FROM siting_points p JOIN siting_edges e ON e.id = p.edge_id
    WHERE NOT p.is_site
), walks AS (
    SELECT d.pid, dd.site, dd.agg_cost + d.fraction * d.cost + d.offset_m AS walk
    FROM dd JOIN demand d ON d.source = dd.node
    UNION ALL
    SELECT d.pid, dd.site, dd.agg_cost + (1 - d.fraction) * d.cost + d.offset_m
    FROM dd JOIN demand d ON d.target = dd.node
    UNION ALL
    SELECT d.pid, s.pid, abs(s.fraction - d.fraction) * d.cost + d.offset_m
    FROM siting_points s JOIN demand d ON d.edge_id = s.edge_id
    WHERE s.is_site
)
SELECT w.pid - 1 AS i, w.site - :n_demand - 1 AS j
FROM walks w JOIN siting_points s ON s.pid = w.site
GROUP BY w.pid, w.site, s.offset_m
HAVING min(w.walk) + s.offset_m <= {reach}
"""

# Service areas: the network edges a site reaches whole, as lines.
SERVED_EDGES = """
SELECT j, ST_AsGeoJSON(ST_Transform(ST_Multi(ST_Union(geom)), 4326), 6)
FROM (
    SELECT -dd.{start} - :n_demand - 1 AS j, e.geom
    FROM pgr_withPointsDD(
        'SELECT id, source, target, cost, reverse_cost FROM siting_edges',
        'SELECT pid, edge_id, fraction FROM siting_points WHERE is_site',
        (SELECT coalesce(array_agg(-pid), '{{}}') FROM siting_points
         WHERE pid = ANY(:pids)),
        {reach}, directed => false
    ) dd
    JOIN siting_points s ON s.pid = -dd.{start}
    JOIN siting_edges e ON e.id = dd.edge
    WHERE dd.edge > 0 AND s.offset_m + dd.agg_cost <= {reach}
) reached GROUP BY j
"""


def network_layer(layers: list[Layer], loaded: set[str]) -> Layer | None:
    """The walking network the analyses use: the first loaded ``network: [walking]`` layer."""
    walking = (layer for layer in layers if "walking" in layer.network and layer.id in loaded)
    return next(walking, None)


def _start_column(conn: Connection) -> str:
    names = conn.execute(
        text(
            "SELECT proargnames FROM pg_proc WHERE proname = 'pgr_withpointsdd'"
            " AND pg_get_function_arguments(oid) LIKE '%anyarray%'"
        )
    ).scalar()
    found = [name for name in START_COLUMNS if name in (names or [])]
    if not found:
        raise RuntimeError("pgRouting's pgr_withPointsDD has no start column this code knows")
    return found[0]


def copy_pairs(conn: Connection, query: str) -> tuple[np.ndarray, np.ndarray]:
    """Two integer columns of a query, through COPY: far quicker than rows for millions."""
    buffer = io.StringIO()
    cursor = conn.connection.driver_connection.cursor()
    cursor.copy_expert(f"COPY ({query}) TO STDOUT", buffer)
    values = np.array(buffer.getvalue().split(), dtype=np.int64).reshape(-1, 2)
    return values[:, 0], values[:, 1]


def build(conn: Connection, network: Layer, n_demand: int, reach: float) -> None:
    """The network's topology and the demand points and sites on it, as temporary tables,
    from the ``siting_demand`` and ``siting_sites`` temporary tables."""
    conn.exec_driver_sql(BUILD.format(table=network.table_name, grid=SNAP_GRID_M))
    conn.execute(text(SNAP), {"n_demand": n_demand, "reach": reach})


def route_pairs(conn: Connection, n_demand: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """(demand, site) pairs within ``reach`` metres' walk (after ``build``)."""
    start = _start_column(conn)
    query = REACH.format(start=start, reach=float(reach)).replace(":n_demand", str(int(n_demand)))
    return copy_pairs(conn, query)


def served_lines(conn: Connection, n_demand: int, sites: list[int], reach: float) -> dict:
    """Site index -> GeoJSON (CRS84) of the network edges it reaches whole."""
    if not sites:
        return {}
    start = _start_column(conn)
    rows = conn.execute(
        text(SERVED_EDGES.format(start=start, reach=float(reach))),
        {"n_demand": n_demand, "pids": [n_demand + j + 1 for j in sites]},
    ).all()
    return {int(j): geometry for j, geometry in rows}
