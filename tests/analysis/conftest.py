"""What the analyses' tests share: API keys per role, sites made from the loaded layers
(so that they overlap what they should), and the same site as SQL for the expected figures."""

import json

import pytest
from sqlalchemy import text

from mapserver.access import create_key

# A site as the process reads it: GeoJSON in CRS84, into British National Grid.
SITE_SQL = "ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:site), 4326), 27700)"


@pytest.fixture(scope="session")
def keys(engine) -> dict[str, dict[str, str]]:
    """X-API-Key headers, one per role."""
    return {
        role: {"X-API-Key": create_key(engine, f"analysis test {role}", role)[1]}
        for role in ("emergency", "staff")
    }


def geojson_of(engine, query: str, **params: object) -> dict:
    """A geometry made by SQL (in BNG), as GeoJSON in CRS84."""
    with engine.connect() as conn:
        found = conn.execute(
            text(f"SELECT ST_AsGeoJSON(ST_Transform(({query}), 4326), 9)"), params
        ).scalar_one()
    return json.loads(found)


@pytest.fixture(scope="session")
def flood_site(engine) -> dict:
    """A 300 m square across the edge of a zone 3 flood area: partly in zones 3 and 2."""
    return geojson_of(
        engine,
        "SELECT ST_Envelope(ST_Buffer(ST_ClosestPoint(ST_Boundary(geom),"
        " ST_Centroid(geom)), 150)) FROM layers.flood_zones WHERE zone = '3'"
        " ORDER BY fid LIMIT 1",
    )


@pytest.fixture(scope="session")
def town_centre() -> dict:
    return {"type": "Point", "coordinates": [-2.1575, 53.4084]}
