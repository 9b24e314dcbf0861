"""HTML pages. The map page carries its configuration (council, layers, styles) as JSON
built from the catalogue; the browser then reads features from ``/ogc``."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from layers.catalogue import Catalogue
from loaders.pipeline import live_versions
from mapserver.access import Principal, principal
from mapserver.ogc import MOUNT
from mapserver.settings import Settings

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
templates = Jinja2Templates(directory=FRONTEND_DIR / "templates")
router = APIRouter()


def map_config(catalogue: Catalogue, who: Principal, updated: dict[str, Any]) -> dict[str, Any]:
    """The page's configuration: the layers this principal may read, with the fields they
    may see, and when each was last loaded."""
    council = catalogue.council
    readable = {layer.id for layer in catalogue.layers.values() if who.can_read(layer)}
    return {
        "council": {
            "name": council.name,
            "shortName": council.short_name,
            "boundaryLayer": council.boundary_layer,
            "view": council.initial_view.model_dump(),
            "bbox": list(council.bbox),
            "attribution": council.attribution,
            "basemapLayers": [i for i in council.basemap_layers if i in readable],
        },
        "ogcUrl": MOUNT,
        "layers": [
            {
                "id": layer.id,
                "title": layer.title,
                "theme": layer.theme,
                "geometry": layer.geometry,
                "visible": layer.visible,
                "synthetic": layer.synthetic,
                "access": layer.access,
                "large": layer.large,  # drawn from the vector tiles
                "tiles": f"{MOUNT}/collections/{layer.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}",
                "attribution": layer.attribution,
                "updated": updated[layer.id].date().isoformat() if layer.id in updated else None,
                "style": layer.style.model_dump(),
                "fields": [{"name": f.name, "label": f.label} for f in who.fields(layer)],
            }
            for layer in catalogue.layers.values()
            if who.can_read(layer)
        ],
    }


def basemap_config(settings: Settings) -> dict[str, Any] | None:
    """The configured XYZ base map, or None: the browser then draws one from our own layers."""
    if not settings.basemap_url:
        return None
    return {
        "url": settings.basemap_url,
        "attribution": settings.basemap_attribution,
        "maxZoom": settings.basemap_max_zoom,
    }


def map_page_config(request: Request) -> dict[str, Any]:
    """Everything the map core (frontend/static/js/map.js ``createMap``) needs, for the
    caller: any page with a map puts it in ``<script type="application/json"
    id="map-config">{{ config | tojson }}</script>``."""
    with request.app.state.engine.connect() as conn:
        updated = {layer: row.finished_at for layer, row in live_versions(conn).items()}
    config = map_config(request.app.state.catalogue, principal(request), updated)
    config["basemap"] = basemap_config(request.app.state.settings)
    reports = getattr(request.app.state, "reports", None)  # popups link to fault reporting
    config["reportAssets"] = reports.asset_links() if reports else {}
    return config


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def map_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "map.html",
        {**page_context(request), "config": map_page_config(request)},
        headers={"Cache-Control": "private, no-store"},
    )


@router.get("/connect", response_class=HTMLResponse, include_in_schema=False)
def connect_page(request: Request) -> HTMLResponse:
    """How to reach the layers from QGIS, GDAL and curl, with copy-ready URLs."""
    who = principal(request)
    layers = [layer for layer in request.app.state.catalogue.layers.values() if who.can_read(layer)]
    return templates.TemplateResponse(
        request,
        "connect.html",
        {
            **page_context(request),
            "layers": layers,
            "ogc_url": request.app.state.settings.base_url + MOUNT,
        },
    )


def page_context(request: Request) -> dict[str, Any]:
    """What every page's header needs: the council, and who is signed in."""
    who = principal(request)
    return {
        "council": request.app.state.catalogue.council,
        "user": who if who.user_id is not None else None,
        "csrf_token": request.scope.get("csrf_token"),
        "takes_reports": getattr(request.app.state, "reports", None) is not None,
    }
