"""What the client tests share: the restricted parts of the Stockport catalogue and the
bbox query of tests/mapserver/test_ogc.py with its exact SQL."""

RESTRICTED_LAYERS = ("hospitals", "fire_stations", "road_casualties")  # emergency, staff
RESTRICTED_FIELD = ("land_ownership", "proprietor_name")  # a public layer's staff-only field

BBOX = (-2.20, 53.38, -2.10, 53.42)  # CRS84: lon/lat
BBOX_SQL = (
    "SELECT {what} FROM layers.{table}"
    " WHERE ST_Intersects(ST_Transform(geom, 4326), ST_MakeEnvelope(:a, :b, :c, :d, 4326))"
)


def bbox_params(bbox: tuple[float, float, float, float] = BBOX) -> dict[str, float]:
    return dict(zip("abcd", bbox, strict=True))
