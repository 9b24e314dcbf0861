"""``/api/export/{layer}``: the features a query selects (the items parameters: filter,
bbox, datetime, sortby, properties…) as a GeoJSON, CSV or GeoPackage download, for the
attribute table's download buttons and for anyone who wants a file rather than an API."""

import csv
import io
import tempfile
from datetime import date
from pathlib import Path

import geopandas as gpd
import shapely
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from geoalchemy2 import functions as gf
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import QueryParams

from mapserver.cql import FilterError
from mapserver.features import failure, readable
from mapserver.features_query import OGCError, bad, items_query
from mapserver.features_sql import conditions, table_of
from mapserver.replicas import read_engine

router = APIRouter(tags=["export"])
MAX_EXPORT = 100_000
MEDIA = {
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "gpkg": "application/geopackage+sqlite3",
}


def _frame(rows: list, names: list[str], srid: int) -> gpd.GeoDataFrame:
    geometry = shapely.from_wkb([bytes(r[-1]) for r in rows]) if rows else []
    records = [dict(zip(names, r[:-1], strict=True)) for r in rows]
    return gpd.GeoDataFrame(records, columns=names, geometry=geometry, crs=f"EPSG:{srid}")


@router.get("/api/export/{layer_id}", summary="Download features as GeoJSON, CSV or GeoPackage")
def export(request: Request, layer_id: str) -> Response:
    params = request.query_params
    fmt = params.get("format", "geojson")
    try:
        if fmt not in MEDIA:
            raise bad(f"format must be one of {', '.join(MEDIA)}")
        layer, who = readable(request, layer_id)
        visible = who.fields(layer)
        rest = QueryParams([(k, v) for k, v in params.multi_items() if k != "format"])
        query = items_query(rest, "", layer, visible)
        names = query.properties if query.properties is not None else [f.name for f in visible]
        table = table_of(layer)
        # GeoJSON and CSV in longitude/latitude (what spreadsheets and web tools expect);
        # GeoPackage in the council's storage CRS, for GIS.
        srid = layer.srid if fmt == "gpkg" else 4326
        geom = table.c.geom if srid == layer.srid else gf.ST_Transform(table.c.geom, srid)
        statement = (
            sa.select(table.c[layer.id_field], *(table.c[n] for n in names), gf.ST_AsBinary(geom))
            .where(*conditions(table, layer, query, visible))
            .order_by(*(table.c[n].desc() if d else table.c[n] for n, d in query.sortby))
            .order_by(table.c[layer.id_field])
            .limit(MAX_EXPORT)
        )
        with read_engine(request).connect() as conn:
            rows = conn.execute(statement).all()
    except (OGCError, FilterError, DBAPIError) as exc:
        return failure(exc)
    frame = _frame(rows, [layer.id_field, *names], srid)
    filename = f"{layer.id}-{date.today().isoformat()}.{fmt}"
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store",
    }
    return Response(_encode(frame, fmt), media_type=MEDIA[fmt], headers=headers)


def safe_cell(value: object) -> object:
    """Text a spreadsheet would run as a formula is prefixed with ' (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _encode(frame: gpd.GeoDataFrame, fmt: str) -> bytes:
    if fmt == "geojson":
        return frame.to_json(drop_id=True).encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        columns = [c for c in frame.columns if c != "geometry"]
        writer.writerow([*columns, "wkt"])
        for record, geometry in zip(
            frame[columns].itertuples(index=False), frame.geometry, strict=True
        ):
            writer.writerow([*(safe_cell(v) for v in record), geometry.wkt])
        return out.getvalue().encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.gpkg"
        frame.to_file(path, driver="GPKG", layer="export")
        return path.read_bytes()
