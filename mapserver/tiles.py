"""OGC API – Tiles: vector tiles of every layer from PostGIS ``ST_AsMVT``."""

from fastapi import APIRouter

router = APIRouter()
