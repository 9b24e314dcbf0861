"""The ``mapserver`` command. Problems the operator can fix end in one message and exit
code 1 (a rejected load too, with nothing changed); usage errors exit 2.

Each command imports what only it needs (the web stack, pygeoapi's configuration, HTTP):
`mapserver load` starts in half a second, a third of what a small load takes.
"""

import gc
import os

# The imports below make a few hundred thousand objects and no garbage: collecting while
# they run took 30 ms of the 0.3 s `mapserver load` spends starting. Collection resumes
# after them, with what they made frozen (never scanned again).
gc.disable()
# A load keeps every core busy with threads of its own; OpenBLAS's workers, idle but
# spinning beside them, cost 0.1 s of CPU a load. Nothing here does heavy linear algebra
# (set OPENBLAS_NUM_THREADS to override).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# No pydantic plugin is used here; looking for one reads every installed package's entry
# points, 7 ms of every start (set PYDANTIC_DISABLE_PLUGINS= to look again).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import errno
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from layers.catalogue import load_catalogue
from loaders import sql
from loaders.deferred import pandas_deferred
from loaders.pipeline import (
    LoadResult,
    default_run_by,
    live_versions,
    load_layer,
    rollback_layer,
)
from loaders.samples import load_missing_samples, source_path
from mapserver import runtime as runtime_
from mapserver.cluster import PrivateCluster
from mapserver.database import private_cluster, try_lock
from mapserver.errors import ServiceError
from mapserver.settings import Settings, get_settings

gc.freeze()
gc.enable()

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Council maps: load layers, serve the map, the OGC API and the health check.",
)
config_app = typer.Typer(no_args_is_help=True, help="The generated pygeoapi configuration.")
db_app = typer.Typer(no_args_is_help=True, help="The private PostgreSQL cluster.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for machines (stored hashed).")
users_app = typer.Typer(no_args_is_help=True, help="Staff accounts for people.")
jobs_app = typer.Typer(no_args_is_help=True, help="Analysis jobs (OGC API Processes).")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(jobs_app, name="jobs")


_finished = threading.Event()  # the command's work is done: main() may end the process at once


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _report(result: LoadResult) -> None:
    line = (
        f"{result.layer}: version {result.version}, {result.rows_loaded:,} of "
        f"{result.rows_read:,} rows loaded in {result.seconds:.1f} s"
    )
    if result.rows_repaired:
        line += f", {result.rows_repaired:,} geometries repaired"
    if result.rows_outside:
        line += f", {result.rows_outside:,} outside the boundary"
    if result.rows_rejected:
        line += f", {result.rows_rejected:,} rejected (see {result.rejects_file})"
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
    from mapserver.logs import configure_logging

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = get_settings().model_copy(update=overrides)
    configure_logging(settings)
    check_port_free(settings.host, settings.port)
    runtime = runtime_.start(settings)
    try:
        # With several app processes starting at once, one loads the samples.
        with try_lock(runtime.engine, "samples") as mine:
            if mine and samples and settings.load_samples:
                load_missing_samples(
                    runtime.engine, runtime.catalogue, settings.state_dir / "loads", _report
                )
        service = create_app(runtime)
        # uvicorn re-raises SIGTERM once it has shut down; make that an exit that runs the
        # `finally` below (stopping the private cluster) instead of killing the process.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        _say(f"Serving {runtime.catalogue.council.short_name} at {settings.base_url}/")
        # Our JSON logs: uvicorn's loggers go to the root handler; the request log line
        # comes from mapserver.observe (with route, role and request id), not uvicorn's.
        uvicorn.run(
            service, host=settings.host, port=settings.port, log_config=None, access_log=False,
            proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
        )  # fmt: skip
    finally:
        runtime.close()


class _ProgressBar:
    """Rows read, rate and ETA on stderr; silent with --quiet."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.progress = None
        if quiet:  # nor is rich imported: a tenth of a second
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("rows"), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=None, rate="")
        self.started = time.monotonic()

    def __enter__(self) -> "_ProgressBar":
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def __call__(self, done: int, total: int | None) -> None:
        if not self.progress:
            return
        rate = done / max(time.monotonic() - self.started, 1e-6)
        self.progress.update(self.task, completed=done, total=total, rate=f"{rate:,.0f}/s")


@app.command()
def load(
    layer_id: Annotated[str, typer.Argument(metavar="LAYER", help="Layer id in the catalogue.")],
    source: Annotated[str, typer.Argument(help="Path or http(s) URL (GeoJSON, GPKG, SHP, CSV…).")],
    source_crs: Annotated[
        str | None, typer.Option(help="CRS of a source that does not say (e.g. EPSG:27700).")
    ] = None,
    max_reject_ratio: Annotated[
        float | None, typer.Option(min=0, max=1, help="Refuse above this share of rejects.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar (cron).")] = False,
) -> None:
    """Load SOURCE as the new version of LAYER, atomically: all of it or nothing.

    Exit codes: 0 loaded, 1 refused (nothing changed), 2 usage."""
    runtime = runtime_.start(get_settings())
    try:
        layer = runtime.catalogue.layer(layer_id)
        with pandas_deferred(), _ProgressBar(f"Loading {layer.id}", quiet) as bar:
            result = load_layer(
                runtime.direct, layer, source_path(source),
                reports_dir=runtime.settings.state_dir / "loads", catalogue=runtime.catalogue,
                run_by=default_run_by("mapserver load"), source_crs=source_crs,
                max_reject_ratio=max_reject_ratio, progress=bar,
                max_download_bytes=runtime.settings.download_max_mb << 20,
                download_timeout=runtime.settings.download_timeout_s,
            )  # fmt: skip
        if not quiet:
            _report(result)
    finally:
        runtime.close()
    _finished.set()


@app.command()
def layers() -> None:
    """List the catalogue's layers with their live version, rows and last load."""
    runtime = runtime_.start(get_settings())
    try:
        with runtime.engine.connect() as conn:
            live = live_versions(conn)
        for layer in runtime.catalogue.layers.values():
            row = live.get(layer.id)
            state = (
                f"v{row.version}, {row.rows_loaded:,} rows, loaded {row.finished_at:%Y-%m-%d %H:%M}"
                if row
                else "not loaded"
            )
            typer.echo(f"{layer.id:<28} {layer.access:<9} {state}")
    finally:
        runtime.close()


@app.command()
def history(
    layer_id: Annotated[str, typer.Argument(metavar="LAYER", help="Layer id in the catalogue.")],
) -> None:
    """Every load of LAYER, newest first, with its source and counts."""
    runtime = runtime_.start(get_settings())
    try:
        runtime.catalogue.layer(layer_id)
        with runtime.engine.connect() as conn:
            rows = conn.exec_driver_sql(sql.HISTORY, {"layer": layer_id}).all()
        for row in rows:
            when = f"{row.started_at:%Y-%m-%d %H:%M:%S}"
            counts = f"{row.rows_loaded:,}/{row.rows_read:,} rows, {row.rows_rejected:,} rejected"
            typer.echo(f"v{row.version:<4} {row.status:<8} {when}  {counts}  {row.source_uri}")
            if row.message:
                typer.echo(f"      {row.message.splitlines()[0]}")
    finally:
        runtime.close()


@app.command()
def rollback(
    layer_id: Annotated[str, typer.Argument(metavar="LAYER", help="Layer id in the catalogue.")],
) -> None:
    """Make LAYER's previous version live again (instant: tables are renamed)."""
    runtime = runtime_.start(get_settings())
    try:
        layer = runtime.catalogue.layer(layer_id)
        version = rollback_layer(runtime.engine, layer, runtime.catalogue)
        _say(f"{layer_id}: version {version} is live again")
    finally:
        runtime.close()


@app.command()
def refresh(
    layer_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[LAYER]...", help="Check these now.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only failures.")] = False,
) -> None:
    """Reload layers whose source changed (those with a refresh schedule that is due, or
    those named). Exit 1 when any check failed."""
    from loaders.refresh import refresh as refresh_layers

    runtime = runtime_.start(get_settings())
    try:
        # The worker's refresh task takes the same lock: never two refreshes at once.
        with try_lock(runtime.engine, "task:layer-refresh") as mine:
            if not mine:
                _say("Another refresh is running (the worker?); nothing done.")
                return
            outcomes = refresh_layers(
                runtime.engine, runtime.catalogue, layer_ids,
                reports_dir=runtime.settings.state_dir / "loads",
            )  # fmt: skip
    finally:
        runtime.close()
    for outcome in outcomes:
        if not quiet or outcome.state == "failed":
            _say(f"{outcome.layer}: {outcome.state} {outcome.detail}".rstrip())
    if any(o.state == "failed" for o in outcomes):
        raise typer.Exit(1)


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Run the due tasks once, then exit.")
    ] = False,
    task: Annotated[
        list[str] | None, typer.Option(help="Only this task (repeatable); with --once: now.")
    ] = None,
) -> None:
    """Run the periodic tasks (layer refresh, and those other packages register) until
    SIGTERM. Safe to run on several hosts at once."""
    import logging

    from mapserver.worker import TASKS, run_due, run_forever, stop_on_signals

    known = {t.name: t for t in TASKS}
    unknown = [name for name in task or [] if name not in known]
    if unknown:
        raise typer.BadParameter(f"choose from {', '.join(known)}", param_hint="--task")
    tasks = [known[name] for name in task] if task else list(TASKS)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runtime = runtime_.start(get_settings())
    try:
        if once:
            if task:  # named: due now
                tasks = [replace(t, every_s=0) for t in tasks]
            done = run_due(runtime.engine, runtime.settings, tasks)
            for name, items in done.items():
                _say(f"{name}: {'failed' if items is None else f'{items} handled'}")
            if any(items is None for items in done.values()):
                raise typer.Exit(1)
        else:
            run_forever(runtime.engine, runtime.settings, tasks, stop_on_signals())
    finally:
        runtime.close()


@app.command()
def synth(
    council: Annotated[
        str | None, typer.Option(help="Council profile (default: settings).")
    ] = None,
    scale: Annotated[float, typer.Option(min=0.001, max=100, help="Multiply counts.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 20261126,
    out: Annotated[
        Path | None, typer.Option(help="Write here instead of the catalogue paths.")
    ] = None,
    load: Annotated[bool, typer.Option(help="Load the files through the loader.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate the synthetic layers (marked so) and load them through the normal loader."""
    from loaders.synth import generate

    settings = get_settings()
    if council:
        settings = settings.model_copy(update={"council": council, "catalogue_dir": None})
    runtime = runtime_.start(settings)
    try:
        files = generate(runtime.catalogue, out, scale=scale, seed=seed)
        for layer_id, path in files.items():
            _say(f"{layer_id}: wrote {path}")
            if not load:
                continue
            layer = runtime.catalogue.layer(layer_id)
            with _ProgressBar(f"Loading {layer_id}", quiet) as bar:
                result = load_layer(
                    runtime.engine, layer, path, reports_dir=settings.state_dir / "loads",
                    catalogue=runtime.catalogue, run_by=default_run_by("mapserver synth"),
                    progress=bar,
                )  # fmt: skip
            _report(result)
    finally:
        runtime.close()


@config_app.command("build")
def config_build(
    check: Annotated[bool, typer.Option(help="Only check the file is current.")] = False,
) -> None:
    """Write config/pygeoapi.yml from the layer catalogue."""
    settings = get_settings()
    from layers.pygeoapi_config import render_config

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


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="emergency, staff or admin.")],
    name: Annotated[str, typer.Option(help='Who holds it, e.g. "GMFRS".')],
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from mapserver import access

    if role not in access.ROLES:
        raise typer.BadParameter(f"choose one of {', '.join(access.ROLES)}", param_hint="--role")
    runtime = runtime_.start(get_settings())
    try:
        key_id, key = access.create_key(runtime.engine, name, role)
    finally:
        runtime.close()
    _say(f"Key {key_id} for {name} ({role}). Store it now; it cannot be shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefix only, never the key)."""
    from mapserver import access

    runtime = runtime_.start(get_settings())
    try:
        for row in access.list_keys(runtime.engine):
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            typer.echo(
                f"{row.id:<5} {row.prefix:<9} {row.role:<10} {state:<19} used {used:<17} {row.name}"
            )
    finally:
        runtime.close()


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Revoke a key (it stops working within seconds)."""
    from mapserver import access

    runtime = runtime_.start(get_settings())
    try:
        if not access.revoke_key(runtime.engine, key_id):
            raise ServiceError(f"No active key {key_id}.")
    finally:
        runtime.close()
    _say(f"Key {key_id} revoked.")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Their work email address (the login).")],
    name: Annotated[str, typer.Option(help="Their name.")],
    role: Annotated[str, typer.Option(help="staff, emergency or admin.")] = "staff",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a staff account (the password is stored as a scrypt hash)."""
    from mapserver.sessions import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    runtime = runtime_.start(get_settings())
    try:
        user_id = create_user(runtime.engine, email, name, role, password)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    finally:
        runtime.close()
    _say(f"User {user_id} ({email}, {role}) created.")


@jobs_app.command("clean")
def jobs_clean() -> None:
    """Delete jobs older than MAPSERVER_JOBS_RETENTION_DAYS, with their results."""
    from analysis.jobs import run_once

    settings = get_settings()
    runtime = runtime_.start(settings)
    try:
        deleted = run_once(runtime.engine, runtime.settings)
    finally:
        runtime.close()
    _say(f"{deleted} job(s) older than {settings.jobs_retention_days} days deleted.")


@app.command()
def backup(
    output: Annotated[
        Path | None,
        typer.Option(help="Folder to write the backup in. Default: <state_dir>/backups."),
    ] = None,
) -> None:
    """Back up the database (pg_dump), the photo store, job results and load reports, with
    a manifest of checksums. Prints the backup's folder."""
    from mapserver import backup as backups

    settings = get_settings()
    with backups.database_url(settings) as url:
        target = backups.create_backup(settings, output or settings.state_dir / "backups", url)
    typer.echo(target)


@app.command()
def restore(
    backup_dir: Annotated[Path, typer.Argument(metavar="BACKUP", help="A backup folder.")],
    database: Annotated[
        str | None, typer.Option(help="Restore into this database URL (default: settings).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Replace a database and folders that already hold data.")
    ] = False,
) -> None:
    """Check BACKUP's checksums, then restore it: database, photos, job results, load
    reports. Refuses a damaged backup, and a target that holds data unless --replace."""
    from mapserver import backup as backups

    settings = get_settings()
    with backups.database_url(settings, database) as url:
        manifest = backups.restore_backup(settings, backup_dir, url, replace=replace)
    _say(f"Restored the backup of {manifest['created']} ({len(manifest['files'])} files).")


def main() -> None:
    try:
        app()  # standalone: usage errors print typer's help and exit 2
    except ServiceError as exc:
        _say(f"error: {exc}")
        sys.exit(1)
    except SystemExit as exc:
        if exc.code in (0, None) and _finished.is_set():
            # A finished load ends here without tearing down GDAL, PROJ, Arrow and its
            # thread pools (0.1-0.2 s): all it wrote is committed, and stdio is flushed.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


if __name__ == "__main__":
    main()
