"""pygeoapi mounted at ``/ogc``.

pygeoapi reads its configuration when ``pygeoapi.starlette_app`` is first imported, so the
environment is set before that import and one process serves one configuration. The
committed ``config/pygeoapi.yml`` holds ``${MAPSERVER_...}`` placeholders that are filled
here from the settings; its OpenAPI document is generated at start-up (it reads the
database) into the state folder.
"""

import os
import sys
from pathlib import Path

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from layers.catalogue import Catalogue
from mapserver.ogc_params import KnownParameters
from mapserver.settings import Settings

MOUNT = "/ogc"


def pygeoapi_environment(settings: Settings) -> dict[str, str]:
    if not settings.database_url:
        raise RuntimeError("the database URL must be resolved before mounting pygeoapi")
    url = make_url(settings.database_url)
    return {
        "MAPSERVER_DB_HOST": url.host or "localhost",
        "MAPSERVER_DB_PORT": str(url.port or 5432),
        "MAPSERVER_DB_NAME": url.database or "",
        "MAPSERVER_DB_USER": url.username or "",
        "MAPSERVER_DB_PASSWORD": url.password or "",
        "MAPSERVER_DB_POOL_SIZE": str(settings.pool_size),
        "MAPSERVER_DB_MAX_OVERFLOW": str(settings.max_overflow),
        "MAPSERVER_DB_POOL_RECYCLE": str(settings.pool_recycle),
        "MAPSERVER_OGC_URL": settings.base_url + MOUNT,
        "MAPSERVER_JOBS_DIR": str(settings.state_dir / "jobs"),
    }


def _write_openapi(config: Path, target: Path, catalogue: Catalogue) -> None:
    """pygeoapi's OpenAPI document, without the restricted fields it reads from the tables
    (it lists every column in the ``properties`` parameter's enum)."""
    from pygeoapi.openapi import generate_openapi_document

    document = yaml.safe_load(generate_openapi_document(config, "yaml"))
    for layer in catalogue.layers.values():
        hidden = {f.name for f in layer.fields if f.access == "restricted"}
        for path, operations in document.get("paths", {}).items():
            if hidden and path.startswith(f"/collections/{layer.id}/"):
                _drop_from_enums(operations, hidden)
    target.parent.mkdir(parents=True, exist_ok=True)
    # App processes sharing a state folder start together: none may read a half-written file.
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(yaml.safe_dump(document, sort_keys=False))
    partial.replace(target)


def _drop_from_enums(node: object, hidden: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum" and isinstance(value, list):
                value[:] = [v for v in value if v not in hidden]
            else:
                _drop_from_enums(value, hidden)
    elif isinstance(node, list):
        for item in node:
            _drop_from_enums(item, hidden)


class LandingWithoutSlash:
    """Serve ``/ogc`` itself (the landing page pygeoapi's links name) instead of the
    redirect to ``/ogc/`` that a Starlette mount answers, which some clients do not follow."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == MOUNT:
            scope = {**scope, "path": MOUNT + "/", "raw_path": (MOUNT + "/").encode()}
        await self.app(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    """Paths under /ogc that no route takes answer like the rest of the OGC API."""
    return JSONResponse({"code": "NotFound", "description": "Not found"}, status_code=404)


def mount_pygeoapi(app: FastAPI, settings: Settings, catalogue: Catalogue) -> None:
    config = settings.pygeoapi_config.resolve()
    loaded = sys.modules.get("pygeoapi.starlette_app")
    if loaded is not None and os.environ.get("PYGEOAPI_CONFIG") != str(config):
        raise RuntimeError("pygeoapi is already loaded with another configuration")
    os.environ.update(pygeoapi_environment(settings))
    (settings.state_dir / "jobs").mkdir(parents=True, exist_ok=True)
    os.environ["PYGEOAPI_CONFIG"] = str(config)
    openapi = settings.state_dir / "pygeoapi-openapi.yml"
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi)
    if loaded is None:
        _write_openapi(config, openapi, catalogue)
    from pygeoapi import starlette_app

    from mapserver import ogc_provider

    ogc_provider.install()
    starlette_app.APP.add_exception_handler(404, _not_found)
    app.state.pygeoapi = starlette_app.APP  # for our routes, which check their parameters
    app.mount(MOUNT, KnownParameters(starlette_app.APP))
    app.add_middleware(LandingWithoutSlash)
