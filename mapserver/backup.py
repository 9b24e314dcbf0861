"""``mapserver backup`` and ``mapserver restore``: the database as a ``pg_dump`` archive
(custom format) with the files kept beside it — the photo store, job results, load
reports — and a manifest of versions and sha256 checksums.

A backup is a folder, written under a temporary name and renamed when complete, so a
half-written one never looks finished. A restore checks every checksum before it touches
anything, refuses a non-empty target unless told to replace it, restores the database in
one transaction and then brings the schema up to this code's migrations.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from mapserver.database import (
    MIGRATIONS_DIR,
    make_engine,
    migrate,
    private_cluster,
    schema_revisions,
)
from mapserver.errors import ServiceError
from mapserver.logs import event
from mapserver.settings import Settings

FORMAT = "council-maps-backup/1"
MANIFEST = "manifest.json"
DUMP = "database.dump"
CHUNK = 1 << 20
PG_HINT = "Install Debian's client of that version: apt-get install postgresql-client-{major}"


@dataclass(frozen=True)
class FileTrees:
    """The folders a backup carries besides the database: name in the backup -> here."""

    photos: Path
    jobs: Path
    loads: Path

    @classmethod
    def of(cls, settings: Settings) -> "FileTrees":
        state = settings.state_dir
        return cls(settings.photos_path, state / "jobs", state / "loads")

    def items(self) -> list[tuple[str, Path]]:
        return [("photos", self.photos), ("jobs", self.jobs), ("loads", self.loads)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def database_url(settings: Settings, url: str | None = None) -> Iterator[str]:
    """The database to back up or restore into: ``url``, DATABASE_URL, or the private
    cluster (started for the command and stopped after it when it was not running)."""
    if url or settings.database_url:
        yield url or settings.database_url  # type: ignore[misc]
        return
    cluster = private_cluster(settings)
    started = cluster.start()
    try:
        cluster.create_database(settings.pg_database)
        yield cluster.url(settings.pg_database)
    finally:
        if started:
            cluster.stop()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries it (so it is
    never on a command line that ``ps`` shows)."""
    parsed = make_url(url).set(drivername="postgresql")
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(password=None).render_as_string(hide_password=False), env


@dataclass(frozen=True)
class Server:
    major: int
    version: str
    revisions: set[str]  # the schema's migrations; empty for an empty database


def _server(url: str, settings: Settings) -> Server:
    engine = make_engine(url, settings)
    try:
        with engine.connect() as conn:
            number = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            version = str(conn.execute(text("SHOW server_version")).scalar_one())
        return Server(number // 10000, version.split()[0], schema_revisions(engine))
    finally:
        engine.dispose()


def client_program(name: str, major: int, settings: Settings) -> Path:
    """Debian's pg_dump/pg_restore of the server's major version (an older client cannot
    dump a newer server; a newer one writes archives older pg_restores cannot read)."""
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/{name}")]
    if settings.pg_bin_dir:
        candidates.insert(0, settings.pg_bin_dir / name)
    if found := shutil.which(name):
        candidates.append(Path(found))
    for program in candidates:
        if program.is_file() and re.search(rf"\) {major}\b", client_version(program)):
            return program
    raise ServiceError(
        f"{name} for PostgreSQL {major} was not found.", hint=PG_HINT.format(major=major)
    )


def client_version(program: Path) -> str:
    """``pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)``."""
    done = subprocess.run([str(program), "--version"], capture_output=True, text=True)
    return done.stdout.strip()


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ServiceError(f"{what} failed: {' / '.join(lines[-3:]) or done.returncode}")


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)


def _files(root: Path) -> list[dict[str, object]]:
    return [
        {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size,
         "sha256": sha256_of(path)}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    ]  # fmt: skip


def create_backup(settings: Settings, output: Path, url: str) -> Path:
    """Write a backup folder under ``output`` and return it."""
    server = _server(url, settings)
    pg_dump = client_program("pg_dump", server.major, settings)
    created = datetime.now(UTC)
    name = f"mapserver-{settings.council}-{created:%Y%m%dT%H%M%SZ}"
    target, partial = output / name, output / f".{name}.partial"
    if target.exists():
        raise ServiceError(f"{target} already exists.")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        uri, env = _libpq(url)
        _run(
            [str(pg_dump), "--format=custom", "--compress=6", f"--file={partial / DUMP}", uri],
            env, "pg_dump",
        )  # fmt: skip
        for name_in_backup, source in FileTrees.of(settings).items():
            _copy_tree(source, partial / name_in_backup)
        manifest = {
            "format": FORMAT,
            "created": created.isoformat(),
            "council": settings.council,
            "versions": {
                "mapserver": _own_version(),
                "postgresql": server.version,
                "pg_dump": client_version(pg_dump),
                "schema": sorted(server.revisions),
            },
            "files": _files(partial),
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    event("backup written", backup=str(target), files=len(manifest["files"]))
    return target


def _own_version() -> str:
    try:
        return metadata.version("council-mapserver")
    except metadata.PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown"


def verify_backup(backup: Path) -> dict:
    """The manifest, once every file it lists is there with its size and checksum, and
    nothing else is; otherwise a ServiceError that says which file is wrong."""
    manifest_path = backup / MANIFEST
    if not manifest_path.is_file():
        raise ServiceError(f"{backup} is not a backup: it has no {MANIFEST}.")
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = {entry["path"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"{manifest_path} is damaged ({exc}); nothing was restored.") from None
    if manifest.get("format") != FORMAT:
        raise ServiceError(f"{backup} is not a backup this version reads ({FORMAT}).")
    damaged = "The backup is damaged; nothing was restored."
    for relative, entry in listed.items():
        path = backup / relative
        if not path.resolve().is_relative_to(backup.resolve()):
            raise ServiceError(f"{MANIFEST} names {relative!r}, outside the backup. {damaged}")
        if not path.is_file():
            raise ServiceError(f"{relative} is missing from {backup}. {damaged}")
        if path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
            raise ServiceError(f"{relative} does not match its checksum in {MANIFEST}. {damaged}")
    present = {
        path.relative_to(backup).as_posix()
        for path in backup.rglob("*")
        if path.is_file() and path.name != MANIFEST
    }
    if extra := sorted(present - set(listed)):
        raise ServiceError(f"{backup} holds files its manifest does not list: {extra[:5]}.")
    if DUMP not in listed:
        raise ServiceError(f"{backup} has no database dump. {damaged}")
    return manifest


def _not_empty(directory: Path) -> bool:
    return directory.is_dir() and any(directory.iterdir())


def restore_backup(settings: Settings, backup: Path, url: str, replace: bool = False) -> dict:
    """Restore ``backup`` into the database at ``url`` and this machine's file folders."""
    manifest = verify_backup(backup)
    unknown = set(manifest["versions"]["schema"]) - _known_revisions()
    if unknown:
        raise ServiceError(
            f"The backup's schema ({', '.join(sorted(unknown))}) is newer than this version "
            "of the service knows.", hint="Upgrade the service first, then restore.",
        )  # fmt: skip
    server = _server(url, settings)
    in_use = bool(server.revisions)
    trees = FileTrees.of(settings)
    busy = [str(path) for _, path in trees.items() if _not_empty(path)]
    if not replace and (in_use or busy):
        what = ["the database"] if in_use else []
        raise ServiceError(
            f"Refusing to restore over existing data ({', '.join(what + busy)}).",
            hint="Restore into an empty database and folders, or pass --replace.",
        )
    pg_restore = client_program("pg_restore", server.major, settings)
    uri, env = _libpq(url)
    command = [str(pg_restore), "--exit-on-error", "--single-transaction", "--no-owner",
               "--no-privileges", f"--dbname={uri}"]  # fmt: skip
    if replace:
        command += ["--clean", "--if-exists"]
    _run([*command, str(backup / DUMP)], env, "pg_restore")
    for name_in_backup, target in trees.items():
        _replace_tree(backup / name_in_backup, target)
    engine = make_engine(url, settings)
    try:
        migrate(engine, lambda: engine)  # a backup from an older version: bring it up to this code
    finally:
        engine.dispose()
    event("backup restored", backup=str(backup), created=manifest["created"])
    return manifest


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}


def _replace_tree(source: Path, target: Path) -> None:
    """Put the backup's copy of a folder in place (renamed in, so never half there)."""
    if not source.is_dir():
        return
    staging = target.with_name(f".{target.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
