"""CQL2 filters (text or JSON) to SQLAlchemy expressions over a layer's table.

Parsing and validation are the ``cql2`` package's (the reference Rust implementation);
pygeofilter's CQL2 grammar here refuses ``NOT (a OR b)``, intervals and ``S_DWITHIN``.
The translation to SQL is ours because it must know the layer: only the fields the
principal may see can be named, values travel as bound parameters, and geometry literals
are transformed from the filter CRS to the layer's storage CRS (distances in metres).
"""

import json
from collections.abc import Callable
from typing import Any

import cql2
import sqlalchemy as sa
from geoalchemy2 import functions as gf

GEOMETRY_NAMES = {"geom", "geometry"}
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}
SPATIAL = {
    "s_intersects": gf.ST_Intersects,
    "s_within": gf.ST_Within,
    "s_contains": gf.ST_Contains,
    "s_disjoint": gf.ST_Disjoint,
    "s_touches": gf.ST_Touches,
    "s_crosses": gf.ST_Crosses,
    "s_overlaps": gf.ST_Overlaps,
    "s_equals": gf.ST_Equals,
}
GEOJSON_TYPES = {
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
    "GeometryCollection",
}  # fmt: skip


class FilterError(ValueError):
    """A filter that cannot be parsed or names what it may not: a 400 for the client."""


class Translator:
    """One filter's translation: the visible columns, the geometry, and SRIDs."""

    def __init__(
        self,
        columns: dict[str, sa.ColumnElement],
        geometry: sa.ColumnElement,
        storage_srid: int,
        filter_srid: int,
    ) -> None:
        self.columns = columns
        self.geometry = geometry
        self.storage_srid = storage_srid
        self.filter_srid = filter_srid

    # -- values ------------------------------------------------------------------------
    def value(self, node: Any) -> Any:  # noqa: ANN401 (expression or literal)
        if isinstance(node, dict):
            if "property" in node:
                return self.property(node["property"])
            if "op" in node:
                return self.operation(node)
            if node.get("type") in GEOJSON_TYPES:
                return self.geometry_literal(node)
            if "bbox" in node:
                return self.bbox_literal(node["bbox"])
            if "date" in node:
                return sa.cast(sa.literal(node["date"]), sa.Date)
            if "timestamp" in node:
                return sa.cast(sa.literal(node["timestamp"]), sa.DateTime(timezone=True))
            if "interval" in node:
                raise FilterError("an interval can only be used in a temporal operator")
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if isinstance(node, bool | int | float | str) or node is None:
            return sa.literal(node)
        raise FilterError(f"unsupported value {json.dumps(node)[:80]}")

    def property(self, name: str) -> sa.ColumnElement:
        if name in GEOMETRY_NAMES:
            return self.geometry
        if name not in self.columns:
            raise FilterError(f"unknown property {name!r} (see the collection's queryables)")
        return self.columns[name]

    def geometry_literal(self, node: dict) -> sa.ColumnElement:
        geometry = gf.ST_SetSRID(gf.ST_GeomFromGeoJSON(json.dumps(node)), self.filter_srid)
        if self.filter_srid == self.storage_srid:
            return geometry
        return gf.ST_Transform(geometry, self.storage_srid)

    def bbox_literal(self, box: list[float]) -> sa.ColumnElement:
        if len(box) not in (4, 6):
            raise FilterError("a BBOX needs 4 or 6 numbers")
        minx, miny, maxx, maxy = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        envelope = gf.ST_MakeEnvelope(minx, miny, maxx, maxy, self.filter_srid)
        if self.filter_srid == self.storage_srid:
            return envelope
        return gf.ST_Transform(gf.ST_Segmentize(envelope, 0.001), self.storage_srid)

    def instant(self, node: Any) -> Any:  # noqa: ANN401
        if isinstance(node, dict) and node.get("interval"):
            raise FilterError("expected a date or timestamp, not an interval")
        return self.value(node)

    def interval(self, node: Any) -> tuple[Any, Any]:
        if not (isinstance(node, dict) and isinstance(node.get("interval"), list)):
            raise FilterError("expected an INTERVAL")
        start, end = node["interval"]
        bound = lambda v: None if v in ("..", None) else self.value(v)  # noqa: E731
        return bound(start), bound(end)

    # -- operators ---------------------------------------------------------------------
    def operation(self, node: dict) -> Any:  # noqa: ANN401, C901 (one dispatch table)
        op = str(node["op"]).lower()
        args = node.get("args", [])
        if op in ("and", "or"):
            parts = [self.condition(a) for a in args]
            return sa.and_(*parts) if op == "and" else sa.or_(*parts)
        if op == "not":
            return sa.not_(self.condition(args[0]))
        if op in COMPARISONS:
            return COMPARISONS[op](self.value(args[0]), self.value(args[1]))
        if op in ARITHMETIC:
            return ARITHMETIC[op](self.value(args[0]), self.value(args[1]))
        if op == "like":
            return self.value(args[0]).like(self.value(args[1]), escape="\\")
        if op == "between":
            return self.value(args[0]).between(self.value(args[1]), self.value(args[2]))
        if op == "in":
            options = args[1] if isinstance(args[1], list) else [args[1]]
            return self.value(args[0]).in_([self.value(o) for o in options])
        if op == "isnull":
            return self.value(args[0]).is_(None)
        if op in ("casei", "accenti"):
            return sa.func.lower(self.value(args[0]))
        if op in SPATIAL:
            return SPATIAL[op](self.value(args[0]), self.value(args[1]))
        if op == "s_dwithin":
            distance = args[2]
            if not isinstance(distance, int | float) or distance < 0:
                raise FilterError("S_DWITHIN needs a distance in metres")
            return gf.ST_DWithin(self.value(args[0]), self.value(args[1]), distance)
        if op.startswith("t_"):
            return self.temporal(op, args)
        raise FilterError(f"the operator {node['op']!r} is not supported")

    def temporal(self, op: str, args: list) -> Any:  # noqa: ANN401
        lhs = self.value(args[0])
        if op in ("t_after", "t_before", "t_equals") and not _is_interval(args[1]):
            rhs = self.instant(args[1])
            return {"t_after": lhs > rhs, "t_before": lhs < rhs, "t_equals": lhs == rhs}[op]
        start, end = self.interval(args[1])
        if op == "t_during":
            return sa.and_(*_bounds(lhs, start, end, strict=True))
        if op == "t_intersects":
            return sa.and_(*_bounds(lhs, start, end, strict=False))
        if op == "t_after" and end is not None:
            return lhs > end
        if op == "t_before" and start is not None:
            return lhs < start
        raise FilterError(f"the temporal operator {op.upper()} is not supported here")

    def condition(self, node: Any) -> Any:  # noqa: ANN401
        if isinstance(node, bool):
            return sa.true() if node else sa.false()
        if not (isinstance(node, dict) and "op" in node):
            raise FilterError("expected a condition")
        return self.operation(node)


def _is_interval(node: Any) -> bool:  # noqa: ANN401
    return isinstance(node, dict) and "interval" in node


def _bounds(lhs: Any, start: Any, end: Any, strict: bool) -> list:  # noqa: ANN401
    conditions = []
    if start is not None:
        conditions.append(lhs > start if strict else lhs >= start)
    if end is not None:
        conditions.append(lhs < end if strict else lhs <= end)
    return conditions or [sa.true()]


def parse(text: str, language: str = "cql2-text") -> dict:
    """The filter as CQL2 JSON, or a FilterError saying what is wrong with it."""
    try:
        expression = cql2.parse_json(text) if language == "cql2-json" else cql2.parse_text(text)
        # No expression.validate(): its JSON Schema check costs ~15 ms a request, and the
        # translation below refuses whatever it does not understand anyway.
        tree = expression.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid filter"
        raise FilterError(f"the filter is not valid {language}: {message}") from None
    if "\\u0000" in json.dumps(tree):
        raise FilterError("the filter cannot contain NUL characters")
    return tree


def to_sql(tree: dict, translator: Translator) -> sa.ColumnElement:
    try:
        return translator.condition(tree)
    except (KeyError, IndexError, TypeError) as exc:
        raise FilterError(f"the filter is malformed ({type(exc).__name__})") from None
