"""The staff page for defibrillator siting: a form, the result on a map, downloads.

The page runs the ``defibrillator-siting`` process through the OGC API with the staff
session, so the page and GIS clients get the same answers and the same checks.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from analysis.siting import POINT_TYPES
from analysis.siting_outputs import FORMATS
from layers.catalogue import Catalogue
from mapserver.access import Principal, principal
from mapserver.ogc import MOUNT
from mapserver.pages import page_context, templates

router = APIRouter(include_in_schema=False)
PATH = "/staff/siting"
# Shortcuts the form offers when the catalogue has these layers: (input, layer, filter, label).
CONSTRAINTS = (
    ("candidates_within", "council_owned_land", None, "Only on council-owned land"),
    ("candidates_outside", "flood_zones", "zone = '3'", "Not in flood zone 3"),
)


def siting_config(catalogue: Catalogue, who: Principal) -> dict[str, Any]:
    """What the form offers: the layers this principal reads, with their number fields."""
    layers = [layer for layer in catalogue.layers.values() if who.can_read(layer)]
    return {
        "execute": f"{MOUNT}/processes/defibrillator-siting/execution",
        "boundary": f"{MOUNT}/collections/{catalogue.council.boundary_layer}/items?f=json",
        "formats": [f for f in FORMATS if f != "json"],
        "layers": [
            {
                "id": layer.id,
                "title": layer.title,
                "points": layer.geometry in POINT_TYPES,
                "demand": "LineString" not in layer.geometry,
                "numbers": [
                    {"name": f.name, "label": f.label}
                    for f in who.fields(layer)
                    if f.type in ("integer", "number")
                ],
            }
            for layer in layers
        ],
        "constraints": [
            {"input": name, "layer": layer_id, "filter": cql, "label": label}
            for name, layer_id, cql, label in CONSTRAINTS
            if layer_id in catalogue.layers and who.can_read(catalogue.layers[layer_id])
        ],
    }


@router.get(PATH, response_class=HTMLResponse)
def siting_page(request: Request) -> Response:
    who = principal(request)
    if who.role is None:  # not signed in
        return RedirectResponse(f"/login?next={PATH}", status_code=303)
    if not who.has("staff"):
        return HTMLResponse("Not found", status_code=404)
    catalogue: Catalogue = request.app.state.catalogue
    return templates.TemplateResponse(
        request,
        "siting.html",
        {**page_context(request), "config": siting_config(catalogue, who)},
        headers={"Cache-Control": "private, no-store"},
    )
