"""HTML pages. The map page carries its configuration (council, layers, styles) as JSON
built from the catalogue; the browser then reads features from ``/ogc``."""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from layers.catalogue import Catalogue
from mapserver.access import principal
from mapserver.ogc import MOUNT

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
templates = Jinja2Templates(directory=FRONTEND_DIR / "templates")
router = APIRouter()


def map_config(catalogue: Catalogue) -> dict[str, Any]:
    council = catalogue.council
    return {
        "council": {
            "name": council.name,
            "shortName": council.short_name,
            "boundaryLayer": council.boundary_layer,
            "view": council.initial_view.model_dump(),
            "bbox": list(council.bbox),
            "attribution": council.attribution,
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
                "large": layer.large,  # drawn from the vector tiles
                "tiles": f"{MOUNT}/collections/{layer.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}",
                "attribution": layer.attribution,
                "style": layer.style.model_dump(),
                "fields": [{"name": f.name, "label": f.label} for f in layer.public_fields],
            }
            for layer in catalogue.public_layers
        ],
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def map_page(request: Request) -> HTMLResponse:
    catalogue: Catalogue = request.app.state.catalogue
    return templates.TemplateResponse(
        request, "map.html", {**page_context(request), "config": map_config(catalogue)}
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
    }
