"""The systemd units pass `systemd-analyze verify` and run commands the CLI has."""

import re
import shutil
import subprocess

import pytest

from mapserver.cli import app
from mapserver.settings import PROJECT_DIR

UNITS = PROJECT_DIR / "deploy" / "systemd"


def test_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    names = []
    for unit in UNITS.iterdir():
        # Installed in /opt/council-maps; here, this checkout (whose .venv/bin/mapserver exists).
        text = unit.read_text().replace("/opt/council-maps", str(PROJECT_DIR))
        name = unit.name.replace("@.", "@8001.")
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_units_run_existing_commands():
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    for unit in UNITS.glob("*.service"):
        started = re.search(r"^ExecStart=\S+/mapserver (\S+)", unit.read_text(), re.MULTILINE)
        assert started and started.group(1) in commands, unit.name
    assert {u.name for u in UNITS.iterdir()} >= {
        "mapserver@.service", "mapserver-worker.service",
        "mapserver-refresh.service", "mapserver-refresh.timer",
    }  # fmt: skip
