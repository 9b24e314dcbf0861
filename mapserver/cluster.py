"""A private PostgreSQL cluster for running without ``DATABASE_URL``.

It lives under ``state_dir/pgdata``, listens on 127.0.0.1 at its own port with a
generated password, and is made with the system's ``initdb``/``pg_ctl``.
PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
``postgres`` system user and every server command runs as that user.
"""

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from contextlib import closing
from functools import cached_property
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

from mapserver.errors import ServiceError

INSTALL_HINT = (
    "Install PostgreSQL with PostGIS and pgRouting (sudo apt-get install postgresql "
    "postgresql-15-postgis-3 postgresql-15-pgrouting), or set DATABASE_URL to an existing "
    "PostGIS database."
)
SUPERUSER = "mapserver"


def find_bin_dir(configured: Path | None = None) -> Path:
    """The directory holding initdb and pg_ctl: configured, else the newest installed."""
    candidates: list[Path] = []
    if configured:
        candidates.append(Path(configured))
    else:
        candidates += sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        if initdb := shutil.which("initdb"):
            candidates.append(Path(initdb).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    where = f" in {configured}" if configured else ""
    raise ServiceError(
        f"PostgreSQL server programs (initdb, pg_ctl) were not found{where}.", hint=INSTALL_HINT
    )


class PrivateCluster:
    """One PostgreSQL cluster owned by this project checkout."""

    def __init__(
        self, state_dir: Path, port: int, bin_dir: Path | None = None, fast: bool = False
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self.fast = fast
        self._bin_dir = bin_dir
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.password_file = self.state_dir / "pg-password"

    @cached_property
    def bin_dir(self) -> Path:
        return find_bin_dir(self._bin_dir)

    @property
    def data_dir(self) -> Path:
        """``state_dir/pgdata``, unless the postgres user cannot reach it (a private home)."""
        preferred = self.state_dir / "pgdata"
        if self.run_as is None or self._reachable_by_server(self.state_dir):
            return preferred
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return Path("/var/lib/postgresql/mapserver") / digest / "pgdata"

    def _reachable_by_server(self, directory: Path) -> bool:
        directory.mkdir(parents=True, exist_ok=True)
        probe = self._as_server(["test", "-x", str(directory)], check=False)
        return probe.returncode == 0

    def _as_server(
        self, args: list[str], check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        if self.run_as:
            args = ["runuser", "-u", self.run_as, "--", *args]
        return subprocess.run(
            args, capture_output=True, text=True, check=check, timeout=timeout, cwd="/"
        )

    def password(self) -> str:
        if not self.password_file.exists():
            raise ServiceError(
                f"The private cluster's password file {self.password_file} is missing.",
                hint=f"Remove {self.data_dir} to make a new cluster (its data will be lost).",
            )
        return self.password_file.read_text().strip()

    def url(self, database: str) -> str:
        password = quote(self.password(), safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        status = self._as_server(
            [str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False
        )
        return status.returncode == 0

    def initialise(self) -> None:
        data_dir = self.data_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        password = "pw" + secrets.token_urlsafe(24)
        # initdb reads the password from a file the server user can read; remove it after.
        pwfile = data_dir.parent / f".initdb-pw-{secrets.token_hex(4)}"
        pwfile.write_text(password)
        pwfile.chmod(0o600)
        try:
            if self.run_as:
                owner = pwd.getpwnam(self.run_as)
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
                os.chown(data_dir.parent, owner.pw_uid, owner.pw_gid)
            result = self._as_server(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServiceError(
                f"initdb could not create the private cluster in {data_dir}:\n{result.stderr}",
                hint=INSTALL_HINT,
            )
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)

    def start(self) -> bool:
        """Start the cluster (making it first if needed). True when this call started it."""
        bin_dir = self.bin_dir  # fail first, and cleanly, when PostgreSQL is not installed
        if not self.is_initialised():
            self.initialise()
        if self.is_running():
            return False
        log = self.data_dir / "server.log"
        options = [
            f"-p {self.port}",
            f"-k {self.data_dir}",
            "-c listen_addresses=127.0.0.1",
            "-c shared_buffers=256MB",
            "-c max_connections=200",
            # A single node: bulk loads that create and fill a table in one transaction
            # (ours) skip the write-ahead log. Replicas need a server of their own.
            "-c wal_level=minimal",
            "-c max_wal_senders=0",
        ]
        if self.fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        result = self._as_server(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-o",
                " ".join(options),
            ],
            check=False,
        )
        if result.returncode != 0:
            tail = self._log_tail(log)
            raise ServiceError(
                f"The private PostgreSQL cluster did not start on port {self.port}.\n{tail}",
                hint="If another server holds that port, choose another with MAPSERVER_PG_PORT.",
            )
        self._wait_ready()
        return True

    def _log_tail(self, log: Path, lines: int = 8) -> str:
        result = self._as_server(["tail", f"-n{lines}", str(log)], check=False)
        return result.stdout.strip()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.url("postgres"), connect_timeout=3).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.is_running():
            self._as_server(
                [str(self.bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)]
            )

    def _admin(self) -> "psycopg2.extensions.connection":
        conn = psycopg2.connect(self.url("postgres"), connect_timeout=5)
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> None:
        with closing(self._admin()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        with closing(self._admin()) as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
