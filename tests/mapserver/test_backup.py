"""``mapserver backup`` and ``mapserver restore`` round-trip through the real commands:
pg_dump/pg_restore, the photo store and job results, checked by the manifest."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from loaders.pipeline import default_run_by, load_layer
from loaders.samples import source_location
from mapserver import runtime as runtime_
from mapserver.access import KeyStore, create_key
from mapserver.backup import restore_backup, verify_backup
from mapserver.database import make_engine
from mapserver.errors import ServiceError
from mapserver.settings import Settings

from ..conftest import fresh_database

VERSIONS = "SELECT layer, version, status, sha256, rows_loaded FROM app.layer_versions ORDER BY id"
PHOTO = bytes(range(256)) * 40  # stands in for a JPEG


def mapserver(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mapserver.cli", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def environment(url: str, state: Path) -> dict[str, str]:
    return {"DATABASE_URL": url, "MAPSERVER_STATE_DIR": str(state), "MAPSERVER_LOG_FORMAT": "text"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A service with data: a layer loaded twice, an API key, a photo, a job result."""
    state = tmp_path_factory.mktemp("source-state")
    with fresh_database("mapserver_backup_src") as url:
        rt = runtime_.start(Settings(database_url=url, state_dir=state))
        layer = rt.catalogue.layer("libraries")
        for _ in range(2):
            load_layer(
                rt.engine, layer, source_location(layer), reports_dir=state / "loads",
                run_by=default_run_by("test"), catalogue=rt.catalogue,
            )  # fmt: skip
        key_id, key = create_key(rt.engine, "backup test", "emergency")
        (state / "photos" / "2026" / "11").mkdir(parents=True)
        (state / "photos" / "2026" / "11" / "report-1.jpg").write_bytes(PHOTO)
        (state / "jobs").mkdir(exist_ok=True)
        (state / "jobs" / "job-1.json").write_text('{"result": 1}')
        with rt.engine.connect() as conn:
            versions = conn.execute(text(VERSIONS)).all()
            libraries = conn.execute(text("SELECT count(*) FROM layers.libraries")).scalar_one()
        yield {"url": url, "state": state, "key": key, "key_id": key_id,
               "versions": versions, "libraries": libraries}  # fmt: skip
        rt.close()


@pytest.fixture(scope="module")
def backup(source, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("backups")
    done = mapserver(
        "backup", "--output", str(output), env=environment(source["url"], source["state"])
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def test_backup_has_a_manifest_with_checksums(backup):
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["versions"]["postgresql"] and manifest["versions"]["schema"]
    assert manifest["versions"]["pg_dump"].startswith("pg_dump (PostgreSQL) ")
    paths = {entry["path"] for entry in manifest["files"]}
    assert {"database.dump", "photos/2026/11/report-1.jpg", "jobs/job-1.json"} <= paths
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"])
    assert not list(backup.parent.glob(".*partial"))


def test_restore_into_a_fresh_database_finds_everything(source, backup, tmp_path):
    state, photos = tmp_path / "restored-state", tmp_path / "photo-store"
    with fresh_database("mapserver_backup_dst") as url:
        env = environment(url, state) | {"MAPSERVER_PHOTOS_DIR": str(photos)}
        done = mapserver("restore", str(backup), "--database", url, env=env)
        assert done.returncode == 0, done.stderr
        engine = make_engine(url, Settings(database_url=url))
        try:
            with engine.connect() as conn:
                assert conn.execute(text(VERSIONS)).all() == source["versions"]
                assert [v.version for v in source["versions"] if v.layer == "libraries"] == [1, 2]
                count = conn.execute(text("SELECT count(*) FROM layers.libraries")).scalar_one()
                assert count == source["libraries"]
                previous = "SELECT count(*) FROM layers.libraries__previous"
                assert conn.execute(text(previous)).scalar_one() == source["libraries"]
            assert KeyStore(engine).lookup(source["key"]).key_id == source["key_id"]
        finally:
            engine.dispose()
    assert (photos / "2026" / "11" / "report-1.jpg").read_bytes() == PHOTO
    assert (state / "jobs" / "job-1.json").read_text() == '{"result": 1}'


def test_a_damaged_backup_is_refused_and_changes_nothing(backup, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    photo = damaged / "photos" / "2026" / "11" / "report-1.jpg"
    photo.write_bytes(b"X" + photo.read_bytes()[1:])
    state = tmp_path / "state"
    with fresh_database("mapserver_backup_bad") as url:
        done = mapserver("restore", str(damaged), "--database", url, env=environment(url, state))
        assert done.returncode == 1
        assert "photos/2026/11/report-1.jpg does not match its checksum" in done.stderr
        assert "nothing was restored" in done.stderr
        engine = make_engine(url, Settings(database_url=url))
        try:
            with engine.connect() as conn:
                assert (
                    conn.execute(text("SELECT to_regclass('app.layer_versions')")).scalar() is None
                )
        finally:
            engine.dispose()
    assert not (state / "photos").exists()


def test_restore_refuses_to_overwrite_data(source, backup):
    settings = Settings(database_url=source["url"], state_dir=source["state"])
    with pytest.raises(ServiceError, match="Refusing to restore over existing data") as refused:
        restore_backup(settings, backup, source["url"])
    assert "--replace" in refused.value.hint


def test_a_backup_with_an_unlisted_file_is_refused(backup, tmp_path):
    extra = tmp_path / "extra"
    shutil.copytree(backup, extra)
    (extra / "photos" / "planted.jpg").write_bytes(PHOTO)
    with pytest.raises(ServiceError, match="files its manifest does not list"):
        verify_backup(extra)
