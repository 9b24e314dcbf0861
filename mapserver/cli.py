"""The ``mapserver`` command. Problems the operator can fix end in one message and exit
code 1 (a rejected load too, with nothing changed); usage errors exit 2."""

import errno
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import text

from layers.catalogue import load_catalogue
from layers.pygeoapi_config import render_config
from loaders.pipeline import DEFAULT_MAX_REJECT_RATIO, LoadResult, default_run_by, load_layer
from loaders.samples import load_missing_samples
from mapserver import runtime as runtime_
from mapserver.cluster import PrivateCluster
from mapserver.database import private_cluster
from mapserver.errors import ServiceError
from mapserver.settings import Settings, get_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=__doc__
)
config_app = typer.Typer(no_args_is_help=True, help="The generated pygeoapi configuration.")
db_app = typer.Typer(no_args_is_help=True, help="The private PostgreSQL cluster.")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _report(result: LoadResult) -> None:
    line = (
        f"{result.layer}: version {result.version}, {result.rows_loaded} of "
        f"{result.rows_read} rows loaded"
    )
    if result.rows_repaired:
        line += f", {result.rows_repaired} geometries repaired"
    if result.rows_rejected:
        line += f", {result.rows_rejected} rejected (see {result.rejects_file})"
    _say(line)


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServiceError(
                    f"Port {port} on {host} is already in use.",
                    hint=f"Stop what is using it, or choose another: make run PORT={port + 1}"
                    f" (or MAPSERVER_PORT={port + 1}).",
                ) from None
            raise ServiceError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    samples: Annotated[bool, typer.Option(help="Load sample layers if missing.")] = True,
) -> None:
    """Prepare the database and serve the map, the OGC API and the health check."""
    import uvicorn

    from mapserver.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = get_settings().model_copy(update=overrides)
    check_port_free(settings.host, settings.port)
    runtime = runtime_.start(settings)
    try:
        if samples and settings.load_samples:
            load_missing_samples(
                runtime.engine, runtime.catalogue, settings.state_dir / "loads", _report
            )
        service = create_app(runtime)
        # uvicorn re-raises SIGTERM once it has shut down; make that an exit that runs the
        # `finally` below (stopping the private cluster) instead of killing the process.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        _say(f"Serving {runtime.catalogue.council.short_name} at {settings.base_url}/")
        uvicorn.run(service, host=settings.host, port=settings.port, log_level="info")
    finally:
        runtime.close()


@app.command()
def load(
    layer_id: Annotated[str, typer.Argument(metavar="LAYER", help="Layer id in the catalogue.")],
    source: Annotated[Path, typer.Argument(help="File to load (GeoJSON, GeoPackage, CSV...).")],
    max_reject_ratio: Annotated[
        float, typer.Option(min=0, max=1, help="Refuse the load above this share of rejects.")
    ] = DEFAULT_MAX_REJECT_RATIO,
) -> None:
    """Load SOURCE as the new version of LAYER (atomically: all or nothing)."""
    runtime = runtime_.start(get_settings())
    try:
        layer = runtime.catalogue.layer(layer_id)
        _report(
            load_layer(
                runtime.engine,
                layer,
                source,
                reports_dir=runtime.settings.state_dir / "loads",
                run_by=default_run_by("mapserver load"),
                max_reject_ratio=max_reject_ratio,
            )
        )
    finally:
        runtime.close()


@app.command()
def layers() -> None:
    """List the catalogue's layers with their live version and row count."""
    runtime = runtime_.start(get_settings())
    try:
        with runtime.engine.connect() as conn:
            live = {
                row.layer: row
                for row in conn.execute(
                    text(
                        "SELECT layer, version, rows_loaded, finished_at FROM app.layer_versions"
                        " WHERE status = 'live'"
                    )
                )
            }
        for layer in runtime.catalogue.layers.values():
            row = live.get(layer.id)
            state = (
                f"v{row.version}, {row.rows_loaded} rows, {row.finished_at:%Y-%m-%d %H:%M}"
                if row
                else "not loaded"
            )
            typer.echo(f"{layer.id:<28} {layer.access:<9} {state}")
    finally:
        runtime.close()


@config_app.command("build")
def config_build(
    check: Annotated[bool, typer.Option(help="Only check the file is current.")] = False,
) -> None:
    """Write config/pygeoapi.yml from the layer catalogue."""
    settings = get_settings()
    rendered = render_config(load_catalogue(settings.catalogue_path))
    target = settings.pygeoapi_config
    current = target.read_text(encoding="utf-8") if target.exists() else None
    if check:
        if current != rendered:
            raise ServiceError(
                f"{target} is out of date with the catalogue.", hint="Run: mapserver config build"
            )
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(rendered, encoding="utf-8")
    _say(f"Wrote {target}")


def _cluster(settings: Settings) -> PrivateCluster:
    if settings.database_url:
        raise ServiceError("DATABASE_URL is set: the private cluster is not in use.")
    return private_cluster(settings)


@db_app.command("start")
def db_start() -> None:
    """Start the private cluster (creating it first if needed)."""
    settings = get_settings()
    cluster = _cluster(settings)
    cluster.start()
    cluster.create_database(settings.pg_database)
    _say(f"Private PostgreSQL running on 127.0.0.1:{settings.pg_port} ({cluster.data_dir})")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the private cluster."""
    _cluster(get_settings()).stop()


@db_app.command("url")
def db_url() -> None:
    """Print the private cluster's database URL (it holds the generated password)."""
    settings = get_settings()
    typer.echo(_cluster(settings).url(settings.pg_database))


def main() -> None:
    try:
        app()  # standalone: usage errors print typer's help and exit 2
    except ServiceError as exc:
        _say(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
