"""A production-shaped service on this machine, for the cluster test and bench/: a real
PostgreSQL primary with a streaming replica (initdb + pg_basebackup -R), app processes
(``mapserver run``, one port each) and Debian's nginx with the repository's config.

Everything listens on 127.0.0.1 only. As root the servers run as the ``postgres`` user,
in a folder that user can reach.
"""

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import httpx
import psycopg2

from mapserver.cluster import find_bin_dir
from mapserver.settings import PROJECT_DIR

NGINX_DIR = PROJECT_DIR / "deploy" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RUN_AS = "postgres" if os.geteuid() == 0 else None
USER = "mapserver"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process, its live children and the children it has
    reaped, from /proc: the cost of a server however many processes it forks."""
    tick = os.sysconf("SC_CLK_TCK")

    def fields(p: int) -> list[str]:
        raw = Path(f"/proc/{p}/stat").read_text()
        return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "

    try:
        own = fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    total = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            try:
                stat = fields(int(child.name))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
            if int(stat[1]) == pid:  # ppid
                total += int(stat[11]) + int(stat[12])
    return total / tick


def server_folder() -> Path:
    """A new folder the PostgreSQL server user owns (the postgres home as root)."""
    if RUN_AS is None:
        return Path(tempfile.mkdtemp(prefix="mapserver-cluster-"))
    owner = pwd.getpwnam(RUN_AS)
    folder = Path(tempfile.mkdtemp(prefix="mapserver-cluster-", dir=owner.pw_dir))
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    return folder


class PgServer:
    """One PostgreSQL server with replica WAL (the private cluster runs wal_level=minimal)."""

    def __init__(
        self, folder: Path, name: str, port: int, password: str, log_all: bool = False
    ) -> None:
        self.data = folder / name
        self.port = port
        self.password = password
        self.log_all = log_all  # every statement in server.log: proof of who ran what
        self.bin = find_bin_dir()

    def _run(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        command = [*(["runuser", "-u", RUN_AS, "--"] if RUN_AS else []), *args]
        return subprocess.run(
            command, check=True, capture_output=True, text=True, cwd="/", env=env, timeout=120
        )

    def initdb(self) -> None:
        pwfile = self.data.parent / "pw"
        pwfile.write_text(self.password)
        if RUN_AS:
            owner = pwd.getpwnam(RUN_AS)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip
        pwfile.unlink()

    def basebackup_from(self, primary: "PgServer") -> None:
        """A streaming replica of ``primary``, made by the script compose's db-replica runs
        (pg_basebackup -R: standby.signal and primary_conninfo)."""
        env = {
            **os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "PGDATA": str(self.data),
            "PRIMARY_HOST": "127.0.0.1", "PRIMARY_PORT": str(primary.port),
            "PRIMARY_USER": USER, "PGPASSWORD": primary.password,
        }  # fmt: skip
        self._run("sh", str(PROJECT_DIR / "docker" / "postgis" / "replica.sh"), "true", env=env)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c wal_level=replica"
            " -c max_wal_senders=5 -c hot_standby=on -c max_connections=200 -c fsync=off"
            " -c full_page_writes=off -c shared_buffers=128MB"
        )
        if self.log_all:
            options += " -c log_statement=all"
        self._run(
            str(self.bin / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.data / "server.log"), "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(
                str(self.bin / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(self.data)
            )

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def logged(self, text: str) -> bool:
        return text in (self.data / "server.log").read_text(errors="replace")

    def url(self, database: str = "mapserver") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str, database: str = "mapserver") -> list[tuple]:
        with closing(psycopg2.connect(self.url(database), connect_timeout=5)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []


class AppProcess:
    """One ``mapserver run`` on its own port (the unit nginx balances)."""

    def __init__(self, port: int, env: dict[str, str], state_dir: Path, samples: bool) -> None:
        self.port = port
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log = state_dir / "app.log"
        args = [sys.executable, "-m", "mapserver.cli", "run", "--port", str(port)]
        if not samples:
            args.append("--no-samples")
        env = {**env, "MAPSERVER_STATE_DIR": str(state_dir), "PYTHONPATH": str(PROJECT_DIR)}
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_DIR
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited:\n{self.log.read_text()[-3000:]}")
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app on {self.port}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def render_nginx(root: Path, listen: int, upstreams: list[str], site: str = "http") -> Path:
    """The repository's nginx config with this machine's paths and ports; returns the main
    config file for ``nginx -c``. ``site`` is http or https (then on ``listen + 1``, with
    a certificate in root/certs)."""
    conf = root / "mapserver"
    conf.mkdir(parents=True, exist_ok=True)
    for source in NGINX_DIR.glob("*.conf"):
        text = source.read_text()
        text = text.replace("/etc/nginx/mapserver/", f"{conf}/")
        text = text.replace("/etc/nginx/certs/", f"{root}/certs/")
        text = text.replace("/var/cache/nginx/", f"{root}/cache/")
        text = text.replace("listen [::]:80;\n", "").replace("listen [::]:443 ssl http2;\n", "")
        text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};")
        text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{listen + 1} ssl")
        (conf / source.name).write_text(text)
    servers = "".join(f"server {u} max_fails=1 fail_timeout=5s;\n" for u in upstreams)
    (conf / "upstream-servers.conf").write_text(servers)
    main = root / "nginx.conf"
    main.write_text(
        f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    include {conf}/http.conf;
    include {conf}/site-{site}.conf;
}}
"""
    )
    (root / "tmp").mkdir(exist_ok=True)
    (root / "cache").mkdir(exist_ok=True)
    return main


def nginx_test(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NGINX, "-t", "-c", str(config), "-p", str(config.parent)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


class Nginx:
    def __init__(self, root: Path, upstreams: list[str]) -> None:
        self.port = free_port()
        self.root = root
        self.config = render_nginx(root, self.port, upstreams)
        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.config), "-p", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(
            lambda: httpx.get(f"{self.url}/nginx-health", timeout=2).status_code == 200,
            20, "nginx did not start",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Service:
    """Primary + (optional) replica + N app processes + nginx, torn down by close()."""

    def __init__(
        self,
        workers: int = 2,
        replica: bool = True,
        extra_env: dict[str, str] | None = None,
        log_all: bool = False,
        read_from_replica: bool = True,
    ) -> None:
        self.folder = server_folder()
        self.state = Path(tempfile.mkdtemp(prefix="mapserver-service-"))
        self.apps: list[AppProcess] = []
        self.nginx: Nginx | None = None
        password = secrets.token_hex(16)
        self.primary = PgServer(self.folder, "primary", free_port(), password, log_all)
        self.replica = (
            PgServer(self.folder, "replica", free_port(), password, log_all) if replica else None
        )
        try:
            self._start(workers, extra_env or {}, replica and read_from_replica)
        except BaseException:
            self.close()
            raise

    def _start(self, workers: int, extra_env: dict[str, str], use_replica: bool) -> None:
        self.primary.initdb()
        self.primary.start()
        self.primary.query("CREATE DATABASE mapserver", database="postgres")
        if self.replica:
            self.replica.basebackup_from(self.primary)
            self.replica.start()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.primary.url(),
            "MAPSERVER_RATE_LIMIT_IP": "1000000",
            **extra_env,
        }
        self.start_apps(workers, use_replica)

    def start_apps(self, workers: int, use_replica: bool) -> None:
        """(Re)start the app processes and nginx: ``workers`` of them, reading from the
        replica or not. The first start migrates and loads the sample layers."""
        self.stop_apps()
        env = dict(self.env)
        if use_replica:
            assert self.replica, "this service has no replica"
            env["DATABASE_REPLICA_URLS"] = self.replica.url()
        ports = [free_port() for _ in range(workers)]
        first = AppProcess(ports[0], env, self.state / "app1", samples=True)
        self.apps.append(first)
        first.wait_ready()
        for n, port in enumerate(ports[1:], start=2):
            self.apps.append(AppProcess(port, env, self.state / f"app{n}", samples=False))
        for app in self.apps:
            app.wait_ready()
        self.nginx = Nginx(
            self.state / f"nginx-{secrets.token_hex(3)}", [f"127.0.0.1:{p}" for p in ports]
        )

    def stop_apps(self) -> None:
        if self.nginx:
            self.nginx.stop()
            self.nginx = None
        for app in self.apps:
            app.stop()
        self.apps = []

    @property
    def url(self) -> str:
        assert self.nginx
        return self.nginx.url

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each part: app processes, databases, nginx."""
        used = {"app": sum(cpu_seconds(app.process.pid) for app in self.apps)}
        used["primary"] = cpu_seconds(self.primary.pid)
        if self.replica:
            used["replica"] = cpu_seconds(self.replica.pid)
        if self.nginx:
            used["nginx"] = cpu_seconds(self.nginx.process.pid)
        return used

    def close(self) -> None:
        self.stop_apps()
        for server in (self.replica, self.primary):
            if server:
                try:
                    server.stop()
                except subprocess.CalledProcessError:
                    pass
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
