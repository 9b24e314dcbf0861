"""Every SQL statement of the vector tiles (``mapserver/tiles.py``).

Identifiers come from the validated catalogue (lower-case, never quoted by users); values
go as parameters. SRIDs are integers written into the statement: PostGIS looks a text CRS
up on every call, which made pygeoapi's MVT provider take ~20 s a tile here.

A tile statement takes these parameters:

- ``z``, ``x``, ``y`` (WebMercatorQuad, for ``ST_TileEnvelope``) or ``txmin``…``tymax``,
  the tile's bounds in its tile matrix set's CRS;
- ``fxmin``…``fymax``: the tile grown by the buffer, in the layer's CRS, so that the GiST
  index on ``geom`` (stored in the layer's CRS) finds the candidates;
- ``tolerance`` and ``min_size`` (lines and polygons), in the layer's units: simplification
  and the smallest feature kept, both about one pixel at the tile's zoom;
- ``cell`` (thinned point layers): one point is kept per grid cell of that size;
- ``layer``: the layer id, to read its live version in the tile's own snapshot;
- ``a``, ``b``, ``d``, ``e``, ``xoff``, ``yoff`` (when ``affine``): the affine map from the
  layer's CRS to the tile's that ``tiles.py`` fitted for this tile and checked to be
  within a fraction of a pixel of the exact transformation (``ST_Transform`` costs about
  1 µs a vertex: most of a dense tile's time).
"""

from layers.model import Layer, LayerField
from layers.tables import LAYER_SCHEMA

EXTENT = 4096  # MVT coordinates per tile side
BUFFER = 64  # MVT units drawn beyond each side, so strokes and markers join across tiles


# For the tile's own transaction: a parallel worker is a new backend that pays PROJ's
# set-up (35-90 ms) again, and JIT compiling costs more than a tile takes.
TILE_SETTINGS = (
    "SELECT set_config('max_parallel_workers_per_gather', '0', true),"
    " set_config('jit', 'off', true)"
)

LIVE_VERSION = "SELECT version FROM app.layer_versions WHERE layer = :layer AND status = 'live'"

# Columns whose types ST_AsMVT has no MVT value for are sent as ISO text.
AS_TEXT = {"date", "datetime"}


def _column(field: LayerField) -> str:
    if field.type in AS_TEXT:
        return f't."{field.name}"::text AS "{field.name}"'
    return f't."{field.name}"'


def _envelope(tms_srid: int, web_mercator: bool) -> str:
    if web_mercator:
        return "ST_TileEnvelope(:z, :x, :y)"
    return f"ST_MakeEnvelope(:txmin, :tymin, :txmax, :tymax, {tms_srid})"


def _in_tile_crs(expression: str, layer: Layer, tms_srid: int, affine: bool) -> str:
    if layer.srid == tms_srid:
        return expression
    if affine:
        return f"ST_Affine({expression}, :a, :b, :d, :e, :xoff, :yoff)"
    return f"ST_Transform({expression}, {tms_srid})"


def tile(
    layer: Layer,
    fields: list[LayerField],
    *,
    tms_srid: int,
    web_mercator: bool,
    thin: bool,
    affine: bool,
    where: str | None = None,
) -> str:
    """One statement returning the layer's live version and the tile as ``bytea`` (empty
    when no feature is in it), both from the same snapshot, so a tile is never cached
    under a version it was not read at.

    The MVT layer is named after the layer id; the feature id is the layer's id field and
    the attributes are exactly ``fields``. ``where`` is a further condition on the table's
    alias ``t`` (a translated CQL2 filter, its values as named parameters).
    """
    table = f'{LAYER_SCHEMA}."{layer.table_name}"'
    wanted = [f't."{layer.id_field}"', *(f't."{f.name}"' for f in fields), "t.geom"]
    columns = ", ".join([f't."{layer.id_field}"', *(_column(f) for f in fields)])
    candidates = f"t.geom && ST_MakeEnvelope(:fxmin, :fymin, :fxmax, :fymax, {layer.srid})"
    points = layer.geometry.endswith("Point")
    if points:
        geometry = "t.geom"
        conditions = candidates
    else:
        # Simplified in the layer's CRS before the transform, so fewer vertices are moved.
        geometry = "ST_Simplify(t.geom, :tolerance, true)"
        conditions = (
            f"{candidates} AND greatest(ST_XMax(t.geom) - ST_XMin(t.geom),"
            " ST_YMax(t.geom) - ST_YMin(t.geom)) >= :min_size"
        )
    if where:
        conditions = f"{conditions} AND ({where})"
    distinct = order = ""
    if thin:
        cell = "floor(ST_XMin(t.geom) / :cell), floor(ST_YMin(t.geom) / :cell)"  # multipoints too
        distinct = f"DISTINCT ON ({cell}) "
        order = f' ORDER BY {cell}, t."{layer.id_field}"'
    mvt_geometry = (
        f"ST_AsMVTGeom({_in_tile_crs(geometry, layer, tms_srid, affine)}, bounds.box::box2d,"
        f" {EXTENT}, {BUFFER}, true)"
    )
    # Thinning happens before the transform and the encoding, so they run on the kept rows.
    # ST_AsMVT skips the rows whose geometry ST_AsMVTGeom clipped away (NULL); a WHERE on
    # it would be pushed into the scan and compute every geometry twice.
    return f"""{TILE_SETTINGS};
WITH bounds AS (SELECT {_envelope(tms_srid, web_mercator)} AS box),
candidates AS (
    SELECT {distinct}{", ".join(wanted)} FROM {table} t WHERE {conditions}{order}
),
features AS (
    SELECT {columns}, {mvt_geometry} AS geom FROM candidates t, bounds
)
SELECT ({LIVE_VERSION}) AS version,
    ST_AsMVT(features.*, '{layer.id}', {EXTENT}, 'geom', '{layer.id_field}') AS tile
FROM features
"""
