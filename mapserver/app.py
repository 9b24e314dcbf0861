"""The app factory: pages, health, static front-end packages and pygeoapi at ``/ogc``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from analysis import pages as analysis_pages
from analysis import processes, siting_page
from layers.pygeoapi_config import render_config
from mapserver import (
    export,
    features,
    health,
    layer_info,
    login,
    metrics,
    ogc_processes,
    pages,
    search,
    status,
    tiles,
)
from mapserver.access import Authentication, KeyStore
from mapserver.csrf import CsrfGuard
from mapserver.database import migration_heads
from mapserver.errors import ServiceError
from mapserver.observe import RequestObserver
from mapserver.ogc import mount_pygeoapi
from mapserver.ogc_metadata import CollectionProvenance
from mapserver.ratelimit import RateLimit, counter_store
from mapserver.replicas import ReadYourWrites
from mapserver.request_id import comment_sql
from mapserver.runtime import Runtime
from mapserver.security import SecurityHeaders
from mapserver.server_errors import ServerErrors
from mapserver.tile_cache import TileCache
from reports import api as reports_api
from reports import open311 as reports_open311
from reports import pages as reports_pages
from reports import service as reports_service
from reports import triage as reports_triage

NODE_MODULES = pages.FRONTEND_DIR / "node_modules"
# URL prefix -> folder inside an npm package: served as they are, never from a CDN.
VENDOR = {
    "/vendor/leaflet": NODE_MODULES / "leaflet" / "dist",
    "/vendor/govuk": NODE_MODULES / "govuk-frontend" / "dist" / "govuk",
    "/vendor/leaflet.vectorgrid": NODE_MODULES / "leaflet.vectorgrid" / "dist",
    "/vendor/leaflet.markercluster": NODE_MODULES / "leaflet.markercluster" / "dist",
    "/vendor/html-to-image": NODE_MODULES / "html-to-image" / "dist",
    "/vendor/jspdf": NODE_MODULES / "jspdf" / "dist",
    "/vendor/swagger-ui": NODE_MODULES / "swagger-ui-dist",
}


async def not_found(request: Request, exc: Exception) -> JSONResponse:
    """Unknown paths: the OGC exception shape under /ogc, a short JSON body elsewhere."""
    if request.url.path.startswith("/ogc"):
        return JSONResponse({"code": "NotFound", "description": "Not found"}, status_code=404)
    detail = getattr(exc, "detail", "Not found")
    return JSONResponse({"detail": detail}, status_code=404)


def create_app(runtime: Runtime) -> FastAPI:
    missing = [str(path) for path in VENDOR.values() if not path.is_dir()]
    if missing:
        raise ServiceError(
            f"Front-end packages are missing ({', '.join(missing)}).",
            hint="Run `make run` (it runs npm ci in frontend/), or `cd frontend && npm ci`.",
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.databases.start()
        yield
        runtime.databases.close()
        runtime.engine.dispose()

    config = runtime.settings.pygeoapi_config
    if not config.is_file() or config.read_text(encoding="utf-8") != render_config(
        runtime.catalogue
    ):
        raise ServiceError(
            f"{config} does not match the layer catalogue in {runtime.catalogue.directory}.",
            hint="Regenerate it: mapserver config build (for a council other than the default, "
            "set MAPSERVER_PYGEOAPI_CONFIG to a file of its own first).",
        )
    council = runtime.catalogue.council
    app = FastAPI(
        title=f"{council.short_name} maps",
        description=f"Web mapping service of {council.name}.",
        docs_url=None,  # served below with Swagger UI from npm, not FastAPI's CDN
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = runtime.settings

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "",
            title=f"{app.title} – API",
            swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.state.engine = runtime.engine
    app.state.databases = runtime.databases
    app.state.catalogue = runtime.catalogue
    app.state.tile_cache = TileCache(runtime.settings.tile_cache_mb << 20)
    app.state.migration_heads = migration_heads()
    # The OGC API first: FastAPI tries routes in order, and these answer most requests
    # (none of the other routers' paths is under /ogc). All before the pygeoapi mount,
    # which would otherwise take every /ogc/… path.
    app.include_router(features.router)
    app.include_router(tiles.router)
    app.include_router(ogc_processes.router)
    app.include_router(pages.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(status.router)
    app.include_router(layer_info.router)
    app.include_router(login.router)
    app.include_router(search.router)
    app.include_router(export.router)
    app.include_router(siting_page.router)
    app.state.reports = reports_service.build(runtime.settings, runtime.engine, runtime.catalogue)
    app.include_router(reports_api.router)
    app.include_router(reports_pages.router)
    app.include_router(reports_open311.router)
    app.include_router(reports_triage.router)
    app.include_router(analysis_pages.router)
    app.mount("/static", StaticFiles(directory=pages.FRONTEND_DIR / "static"), name="static")
    for prefix, directory in VENDOR.items():
        app.mount(prefix, StaticFiles(directory=directory), name=prefix.strip("/"))
    processes.bind(runtime.databases, runtime.catalogue, runtime.settings)
    mount_pygeoapi(app, runtime.settings, runtime.catalogue)
    app.add_exception_handler(404, not_found)
    app.add_middleware(
        CollectionProvenance,
        engine=runtime.engine,
        catalogue=runtime.catalogue,
        settings=runtime.settings,
    )
    settings = runtime.settings
    secure = settings.base_url.startswith("https://")
    app.add_middleware(ReadYourWrites, databases=runtime.databases, secure=secure)
    app.add_middleware(
        RateLimit,
        store=counter_store(runtime.engine, settings),
        per_ip=settings.rate_limit_ip,
        per_key=settings.rate_limit_key,
    )
    app.add_middleware(CsrfGuard, settings=settings)  # needs the session Authentication finds
    app.state.keys = KeyStore(runtime.engine)
    app.add_middleware(Authentication, keys=app.state.keys)
    app.add_middleware(SecurityHeaders, settings=settings)
    app.add_middleware(ServerErrors)  # a clean 500 for whatever raises inside
    app.add_middleware(RequestObserver)  # outermost: runs first, sees every answer
    comment_sql()
    return app
