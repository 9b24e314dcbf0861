"""Defibrillator siting: known answers, spopt's optimum, route against straight line,
fixed sites kept, and the process over HTTP (bad inputs, access, formats, OWSLib)."""

import json
import time

import geopandas as gpd
import numpy as np
import pulp
import pytest
import shapely
from owslib import ogcapi
from owslib.ogcapi.processes import Processes
from spopt.locate import MCLP
from sqlalchemy import text

from analysis.near import InputError
from analysis.siting import run_siting
from mapserver.access import Principal, create_key

from .siting_helpers import line_layer, lines, load, point_layer, points, with_layers

EXECUTE = "/ogc/processes/defibrillator-siting/execution"
STAFF = Principal("staff")
# A hand-made instance, in metres from an origin: clusters of demand, one candidate next
# to each, one existing site, and demand far from everything.
# The last point is 85 m from c1 as the crow flies but about 890 m by the paths.
DEMAND_XY = np.array([(0, 0), (15, 5), (-10, 10), (500, 0), (1000, 0), (3000, 3000), (-20, 80)])
DEMAND_W = np.array([4.0, 3.0, 3.0, 5.0, 8.0, 100.0, 1.0])  # A = 10, B = 5, C = 8, far = 100
CANDIDATE_XY = np.array([(10, 0), (505, 0), (1000, 30), (250, 0)])
FIXED_XY = np.array([(1000, -20)])


@pytest.fixture(scope="module")
def small(runtime, tmp_path_factory):
    """The hand-made instance as three layers, with a walking path along its x axis and
    a side path that leaves it at x = 400 and comes back at y = 80."""
    tmp = tmp_path_factory.mktemp("siting-small")
    layers = {
        "demand": point_layer("siting_t_demand"),
        "candidates": point_layer("siting_t_candidates"),
        "fixed": point_layer("siting_t_fixed"),
        "paths": line_layer("siting_t_paths"),
    }
    engine = runtime.engine
    load(engine, tmp, layers["demand"], points(DEMAND_XY, name=["d"] * 7, weight=DEMAND_W))
    load(engine, tmp, layers["candidates"],
         points(CANDIDATE_XY, name=["c1", "c2", "c3", "c4"], weight=[0] * 4))  # fmt: skip
    load(engine, tmp, layers["fixed"], points(FIXED_XY, name=["f1"], weight=[0]))
    load(engine, tmp, layers["paths"], lines([
        ((-50, 0), (400, 0)), ((400, 0), (1100, 0)),
        ((400, 0), (400, 80)), ((400, 80), (0, 80)), ((0, 80), (-50, 80)),
    ]))  # fmt: skip
    return with_layers(runtime.catalogue, *layers.values())


def inputs(**extra) -> dict:
    return {
        "demand_layer": "siting_t_demand", "weight_field": "weight",
        "candidate_layer": "siting_t_candidates", "fixed_layer": "siting_t_fixed",
        "distance": 100, **extra,
    }  # fmt: skip


def labels(result: dict) -> list[str]:
    return [site["label"] for site in result["sites"]]


def test_known_answer(engine, small):
    one = run_siting(engine, small, STAFF, inputs(p=1, distance_type="straight"))
    assert labels(one) == ["c1"]
    figures = one["coverage"]["straight"]
    assert figures["before"] == {"weight": 8.0, "pct": round(800 / 124, 2)}
    assert figures["after"]["weight"] == 19.0
    assert one["unreachable"] == {"weight": 100.0, "pct": round(10000 / 124, 2), "points": 1}
    two = run_siting(engine, small, STAFF, inputs(p=2, distance_type="straight"))
    assert labels(two) == ["c1", "c2"]  # ranked by marginal gain
    assert [s["gain_weight"] for s in two["sites"]] == [11.0, 5.0]
    assert two["sites"][-1]["cumulative_pct"] == round(2400 / 124, 2)
    # p = 3: c3 and c4 add nothing (c3's demand is the existing site's), so only two.
    assert labels(run_siting(engine, small, STAFF, inputs(p=3, distance_type="straight"))) == [
        "c1", "c2",
    ]  # fmt: skip
    roles = {f["properties"]["role"] for f in two["geojson"]["features"]}
    assert roles == {"chosen", "fixed", "service_area", "uncovered"}


@pytest.mark.parametrize(
    ("target", "sites", "reached"),
    [(5, [], True), (10, ["c1"], True), (15, ["c1"], True), (17, ["c1", "c2"], True),
     (50, ["c1", "c2"], False)],
)  # fmt: skip
def test_target_coverage_is_the_fewest_sites(engine, small, target, sites, reached):
    result = run_siting(
        engine, small, STAFF, inputs(target_coverage=target, distance_type="straight")
    )
    assert labels(result) == sites
    assert result["target_reached"] is reached


def test_route_distance_counts_the_walk(engine, small):
    result = run_siting(engine, small, STAFF, inputs(p=1))
    assert result["distance"]["type"] == "route"
    assert result["distance"]["network_layer"] == "siting_t_paths"
    route, straight = result["coverage"]["route"], result["coverage"]["straight"]
    assert (route["after"]["weight"], straight["after"]["weight"]) == (18.0, 19.0)
    assert labels(result) == ["c1"]
    kinds = {
        f["properties"]["distance_type"]
        for f in result["geojson"]["features"]
        if f["properties"]["role"] == "service_area"
    }
    assert kinds == {"route", "straight"}


def test_fixed_sites_are_always_kept(engine, small):
    result = run_siting(engine, small, STAFF, inputs(p=0, distance_type="straight"))
    assert result["sites"] == []
    assert result["coverage"]["straight"]["after"] == result["coverage"]["straight"]["before"]
    assert result["fixed"]["count"] == 1
    fixed = [f for f in result["geojson"]["features"] if f["properties"]["role"] == "fixed"]
    assert [f["properties"]["label"] for f in fixed] == ["f1"]


@pytest.fixture(scope="module")
def random_instance(runtime, tmp_path_factory):
    """300 demand points, 40 candidates and 4 existing sites over 1.5 km, on a street grid
    every 100 m: for comparing with spopt and route against straight line."""
    rng = np.random.default_rng(7)
    tmp = tmp_path_factory.mktemp("siting-random")
    demand, candidates, fixed = (point_layer(f"siting_r_{n}") for n in ("demand", "cand", "fixed"))
    grid = line_layer("siting_r_paths")
    engine = runtime.engine
    load(engine, tmp, demand, points(rng.uniform(0, 1500, (300, 2)), name=["d"] * 300,
                                     weight=rng.integers(1, 20, 300).astype(float)))  # fmt: skip
    names = [f"c{k}" for k in range(40)]
    load(
        engine, tmp, candidates, points(rng.uniform(0, 1500, (40, 2)), name=names, weight=[0] * 40)
    )
    load(engine, tmp, fixed, points(rng.uniform(0, 1500, (4, 2)), name=["f"] * 4, weight=[0] * 4))
    ticks = range(0, 1501, 100)
    segments = [((x, y), (x + 100, y)) for x in ticks[:-1] for y in ticks] + [
        ((x, y), (x, y + 100)) for x in ticks for y in ticks[:-1]
    ]
    load(engine, tmp, grid, lines(segments))
    return with_layers(runtime.catalogue, demand, candidates, fixed, grid)


def layer_points(engine, table: str) -> gpd.GeoDataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT ST_X(geom), ST_Y(geom), weight FROM layers.{table} ORDER BY fid")
        ).all()
    return gpd.GeoDataFrame(
        {"weight": [r[2] for r in rows]},
        geometry=shapely.points([(r[0], r[1]) for r in rows]),
        crs=27700,
    )


@pytest.mark.parametrize(("p", "distance"), [(3, 150), (6, 250)])
def test_equal_optimum_to_spopt(engine, random_instance, p, distance):
    result = run_siting(
        engine, random_instance, STAFF,
        {"demand_layer": "siting_r_demand", "weight_field": "weight",
         "candidate_layer": "siting_r_cand", "fixed_layer": "siting_r_fixed",
         "distance": distance, "distance_type": "straight", "p": p, "max_gap": 0},
    )  # fmt: skip
    assert result["solver"]["optimal"]
    assert result["solver"]["status"] == "optimal"
    demand = layer_points(engine, "siting_r_demand")
    sites = pd_concat(layer_points(engine, "siting_r_cand"), layer_points(engine, "siting_r_fixed"))
    model = MCLP.from_geodataframe(
        demand, sites, "geometry", "geometry", "weight", service_radius=distance,
        p_facilities=p + 4, predefined_facility_col="fixed",
    ).solve(pulp.PULP_CBC_CMD(msg=False))  # fmt: skip
    assert result["coverage"]["straight"]["after"]["weight"] == pytest.approx(
        pulp.value(model.problem.objective)
    )


def pd_concat(candidates: gpd.GeoDataFrame, fixed: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    both = gpd.GeoDataFrame(
        {"fixed": [0] * len(candidates) + [1] * len(fixed)},
        geometry=np.r_[candidates.geometry.values, fixed.geometry.values],
        crs=27700,
    )
    return both


@pytest.mark.parametrize("distance", [100, 300])
def test_route_coverage_never_above_straight_line(engine, random_instance, distance):
    common = {"demand_layer": "siting_r_demand", "weight_field": "weight",
              "candidate_layer": "siting_r_cand", "fixed_layer": "siting_r_fixed",
              "distance": distance, "p": 5}  # fmt: skip
    on_route = run_siting(engine, random_instance, STAFF, {**common, "distance_type": "route"})
    on_line = run_siting(engine, random_instance, STAFF, {**common, "distance_type": "straight"})
    for result in (on_route, on_line):
        route, straight = result["coverage"]["route"], result["coverage"]["straight"]
        for stage in ("before", "after", "reachable"):
            assert route[stage]["weight"] <= straight[stage]["weight"]
    # Each solved on its own measure is optimal there, so neither beats the other's choice.
    assert (
        on_route["coverage"]["route"]["after"]["weight"]
        >= on_line["coverage"]["route"]["after"]["weight"]
    )
    assert on_route["coverage"]["route"]["after"]["weight"] > 0


def test_polygons_become_weighted_points(engine, runtime, scalar):
    """LSOAs in a small area: a 100 m grid, each LSOA's weight (one) shared by its points."""
    area = {"type": "Polygon", "coordinates": [[[-2.165, 53.404], [-2.150, 53.404],
            [-2.150, 53.412], [-2.165, 53.412], [-2.165, 53.404]]]}  # fmt: skip
    result = run_siting(
        engine, runtime.catalogue, STAFF,
        {"demand_layer": "lsoas", "candidate_layer": "pharmacies",
         "fixed_layer": "defibrillators", "p": 2, "area": area, "distance_type": "straight"},
    )  # fmt: skip
    assert result["demand"]["from_polygons"] and result["demand"]["points"] > 50
    lsoas = scalar(
        "SELECT count(*) FROM layers.lsoas WHERE ST_Intersects(geom, ST_Transform("
        "ST_MakeEnvelope(-2.165, 53.404, -2.150, 53.412, 4326), 27700))"
    )
    assert 0 < result["demand"]["total_weight"] <= lsoas


# --- over HTTP -----------------------------------------------------------------------------

AREA = {"type": "Polygon", "coordinates": [[[-2.17, 53.40], [-2.145, 53.40], [-2.145, 53.415],
        [-2.17, 53.415], [-2.17, 53.40]]]}  # fmt: skip
STOCKPORT = {"demand_layer": "lsoas", "candidate_layer": "pharmacies",
             "fixed_layer": "defibrillators", "area": AREA, "p": 3}  # fmt: skip


@pytest.fixture(scope="module")
def staff_key(engine):
    return create_key(engine, "siting tests", "staff")[1]


def test_process_is_for_staff(client, engine):
    assert client.post(EXECUTE, json={"inputs": STOCKPORT}).status_code == 403
    emergency = create_key(engine, "siting emergency", "emergency")[1]
    response = client.post(EXECUTE, json={"inputs": STOCKPORT}, headers={"X-API-Key": emergency})
    assert response.status_code == 403 and "staff" in response.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"demand_layer": "nope"}, "unknown demand layer 'nope'"),
        ({"candidate_layer": "lsoas"}, "must be a point layer"),
        ({"p": 100_000}, "p must be a whole number"),
        ({"p": 4000}, "larger than the"),
        ({"distance": 0}, "distance must be a number from 1 to 2000"),
        ({"distance": 5000}, "distance must be a number from 1 to 2000"),
        ({"distance": "far"}, "distance must be a number"),
        ({"p": None}, "give either p"),
        ({"target_coverage": 50}, "give either p"),
        ({"weight_field": "lsoa_name"}, "not a number field"),
        ({"candidate_filter": "access = "}, "candidate_filter"),
        ({"candidate_filter": "secret = 1"}, "candidate_filter"),
        ({"candidates_outside": [{"layer": "pharmacies"}]}, "not a polygon layer"),
        ({"area": {"type": "Polygon", "coordinates": [[[-2.17, 53.40], [-2.145, 53.415],
          [-2.145, 53.40], [-2.17, 53.415], [-2.17, 53.40]]]}}, "not a valid polygon"),
        ({"area": {"type": "Point", "coordinates": [0, 0]}}, "area must be a GeoJSON polygon"),
        ({"distance_type": "teleport"}, "distance_type"),
        ({"area": None, "demand_spacing": 10}, "use a wider demand_spacing"),
        ({"format": "docx"}, "format must be one of"),
        ({"max_gap": 80}, "max_gap must be a number from 0 to 50"),
    ],
)  # fmt: skip
def test_bad_inputs_are_400(client, staff_key, change, message):
    body = {k: v for k, v in {**STOCKPORT, **change}.items() if v is not None}
    response = client.post(EXECUTE, json={"inputs": body}, headers={"X-API-Key": staff_key})
    assert response.status_code == 400, response.text
    assert message in response.text


def test_constraints_and_formats(client, staff_key, scalar, artifacts):
    body = {**STOCKPORT, "candidates_outside": [{"layer": "flood_zones", "filter": "zone = '3'"}],
            "fixed_filter": "access LIKE '24/7%'"}  # fmt: skip
    headers = {"X-API-Key": staff_key}
    result = client.post(EXECUTE, json={"inputs": body}, headers=headers)
    assert result.status_code == 200, result.text
    found = result.json()
    allowed = scalar(
        "SELECT count(*) FROM layers.pharmacies c WHERE ST_Intersects(c.geom, ST_Transform("
        "ST_MakeEnvelope(-2.17, 53.40, -2.145, 53.415, 4326), 27700)) AND NOT EXISTS (SELECT 1"
        " FROM layers.flood_zones f WHERE f.zone = '3' AND ST_Intersects(f.geom, c.geom))"
    )
    assert found["candidates"]["count"] == allowed
    # Existing sites outside the study area still cover demand inside it: not clipped.
    assert found["fixed"]["count"] == scalar(
        "SELECT count(*) FROM layers.defibrillators WHERE access LIKE '24/7%'"
    )
    assert "Route" in found["distance"]["label"]  # the synthetic paths are a sample layer
    for fmt, kind, marker in (
        ("geojson", "application/geo+json", b'"FeatureCollection"'),
        ("csv", "text/csv", b"rank,feature_id,label,lon,lat"),
        ("html", "text/html", b"L.circleMarker"),
        ("pdf", "application/pdf", b"%PDF-"),
    ):
        response = client.post(EXECUTE, json={"inputs": {**body, "format": fmt}}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(kind)
        assert marker in response.content
        (artifacts / f"siting.{fmt}").write_bytes(response.content)
        if fmt == "html":
            assert b"://cdn" not in response.content and b"<script src=" not in response.content
            assert b"Proven " in response.content  # optimal, or the gap proven


def test_owslib_executes_the_process(base_url, staff_key, monkeypatch):
    monkeypatch.setattr(ogcapi, "REQUEST_HEADERS", dict(ogcapi.REQUEST_HEADERS))
    api = Processes(f"{base_url}/ogc", headers={"X-API-Key": staff_key})
    assert "defibrillator-siting" in {p["id"] for p in api.processes()}
    result = api.execute("defibrillator-siting", inputs=STOCKPORT)
    result = result.get("outputs", [result])[0] if "outputs" in result else result
    assert len(result["sites"]) <= 3 and result["solver"]["optimal"]
    assert (
        result["coverage"]["route"]["after"]["pct"]
        <= result["coverage"]["straight"]["after"]["pct"]
    )


def test_input_errors_are_clear(engine, runtime):
    with pytest.raises(InputError, match="walking_time"):
        run_siting(engine, runtime.catalogue, STAFF, {**STOCKPORT, "walking_time": 10**6})


# pgRouting itself splitting every edge at every demand point and site: slower, and the
# reference the quicker query of analysis.network must agree with.
ALL_POINTS_REACH = """
SELECT d.pid - 1 AS i, -dd.start_vid - {n} - 1 AS j
FROM pgr_withPointsDD(
    'SELECT id, source, target, cost, reverse_cost FROM siting_edges',
    'SELECT pid, edge_id, fraction FROM siting_points',
    (SELECT array_agg(-pid) FROM siting_points WHERE is_site), {reach},
    directed => false, details => true
) dd
JOIN siting_points s ON s.pid = -dd.start_vid
JOIN siting_points d ON d.pid = -dd.node AND NOT d.is_site
WHERE s.offset_m + dd.agg_cost + d.offset_m <= {reach}
"""


@pytest.mark.parametrize("reach", [120.0, 350.0])
def test_route_pairs_match_pgrouting_splitting_every_edge(engine, random_instance, reach):
    from analysis import network, siting

    request = siting.parse_request(
        random_instance, STAFF,
        {"demand_layer": "siting_r_demand", "candidate_layer": "siting_r_cand",
         "fixed_layer": "siting_r_fixed", "p": 1, "distance": reach},
        set(random_instance.layers),
    )  # fmt: skip
    with engine.begin() as conn:
        siting._stage(conn, request, STAFF, None)
        n = conn.execute(text("SELECT count(*) FROM siting_demand")).scalar_one()
        network.build(conn, request.network, n, reach)
        quick = set(zip(*network.route_pairs(conn, n, reach), strict=True))
        full = set(
            zip(*network.copy_pairs(conn, ALL_POINTS_REACH.format(n=n, reach=reach)), strict=True)
        )
    assert quick == full and len(full) > 50


def test_async_job(client, staff_key):
    headers = {"X-API-Key": staff_key}
    response = client.post(
        EXECUTE,
        json={"inputs": {**STOCKPORT, "distance_type": "straight"}},
        headers={**headers, "Prefer": "respond-async"},
    )
    assert response.status_code == 201, response.text
    job = response.headers["Location"]
    deadline = time.monotonic() + 60
    while (status := client.get(job, params={"f": "json"}, headers=headers).json()["status"]) in (
        "accepted", "running",
    ) and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.3)
    assert status == "successful"
    results = client.get(f"{job}/results", params={"f": "json"}, headers=headers).json()
    assert "sites" in json.dumps(results)
