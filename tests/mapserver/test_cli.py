"""Operator mistakes end in one clear message and a non-zero exit, never a traceback."""

import os
import socket
import subprocess
import sys

from mapserver.settings import PROJECT_DIR

from ..conftest import free_port

MAPSERVER = [sys.executable, "-m", "mapserver.cli"]


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAPSERVER_")}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        args,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_DIR,
    )


def assert_clear_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_port_already_in_use(database_url, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            [*MAPSERVER, "run", "--port", str(port)],
            {"DATABASE_URL": database_url, "MAPSERVER_STATE_DIR": str(tmp_path)},
        )
    assert_clear_error(result, f"Port {port} on 127.0.0.1 is already in use", "PORT=")


def test_database_url_that_does_not_answer(tmp_path):
    dead = free_port()
    result = run(
        [*MAPSERVER, "run", "--port", str(free_port())],
        {
            "DATABASE_URL": f"postgresql://nobody:secret@127.0.0.1:{dead}/nothing",
            "MAPSERVER_STATE_DIR": str(tmp_path),
        },
    )
    assert_clear_error(result, "Cannot connect to the database", "DATABASE_URL")
    assert "secret" not in result.stderr


def test_database_url_that_is_not_postgresql(tmp_path):
    result = run(
        [*MAPSERVER, "run", "--port", str(free_port())],
        {"DATABASE_URL": "mysql://u:p@localhost/db", "MAPSERVER_STATE_DIR": str(tmp_path)},
    )
    assert_clear_error(result, "must point at PostgreSQL")


def test_missing_postgresql(tmp_path):
    result = run(
        [*MAPSERVER, "run", "--port", str(free_port())],
        {
            "MAPSERVER_PG_BIN_DIR": str(tmp_path / "no-postgres"),
            "MAPSERVER_STATE_DIR": str(tmp_path),
        },
    )
    assert_clear_error(
        result,
        "PostgreSQL server programs (initdb, pg_ctl) were not found",
        "apt-get install postgresql",
    )


def test_missing_python(tmp_path):
    # A PATH with no Python >= 3.12 and an empty pyenv root.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "ls", "sort", "dirname", "cat"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    result = subprocess.run(
        ["bash", str(PROJECT_DIR / "scripts" / "bootstrap.sh"), "python"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "Python 3.12 or newer was not found" in result.stderr
    assert "pyenv install 3.12" in result.stderr


def test_unknown_layer_for_load(database_url, tmp_path):
    result = run(
        [*MAPSERVER, "load", "no_such_layer", str(tmp_path / "x.geojson")],
        {"DATABASE_URL": database_url, "MAPSERVER_STATE_DIR": str(tmp_path)},
    )
    assert_clear_error(result, "No layer 'no_such_layer' in the catalogue")


def test_usage_error_exits_2():
    result = run([*MAPSERVER, "run", "--port", "not-a-number"], {})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_load_history_rollback_and_exit_codes(database_url, runtime, scalar, tmp_path):
    env = {"DATABASE_URL": database_url, "MAPSERVER_STATE_DIR": str(tmp_path)}
    source = PROJECT_DIR / "data" / "stockport" / "stockport_pharmacies.geojson"
    live = "SELECT version FROM app.layer_versions WHERE layer = 'pharmacies' AND status = 'live'"
    before = scalar(live)

    loaded = run([*MAPSERVER, "load", "pharmacies", str(source)], env)
    assert loaded.returncode == 0, loaded.stderr
    assert f"pharmacies: version {before + 1}, 64 of 64 rows loaded" in loaded.stderr

    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    refused = run([*MAPSERVER, "load", "pharmacies", str(broken), "--quiet"], env)
    assert_clear_error(refused, "Cannot read broken.geojson")
    assert scalar(live) == before + 1

    assert run([*MAPSERVER, "load", "pharmacies"], env).returncode == 2

    history = run([*MAPSERVER, "history", "pharmacies"], env)
    assert history.returncode == 0
    lines = history.stdout.splitlines()
    assert lines[0].startswith(f"v{before + 1} ") and " live " in lines[0]
    assert any(line.startswith(f"v{before} ") and " previous " in line for line in lines)

    rolled = run([*MAPSERVER, "rollback", "pharmacies"], env)
    assert rolled.returncode == 0, rolled.stderr
    assert scalar(live) == before
    assert scalar("SELECT count(*) FROM layers.pharmacies") == 64
