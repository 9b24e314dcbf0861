"""`mapserver load` defers pandas (see loaders.deferred): a file whose values need parsing
one by one still gets every bad row rejected with its reason."""

import csv
import os
import subprocess
import sys

from loaders.pipeline import load_layer
from loaders.samples import source_path
from mapserver.settings import PROJECT_DIR


def test_the_command_parses_bad_values_without_pandas_loaded_up_front(
    runtime, database_url, tmp_path
):
    path = tmp_path / "lights.csv"
    header = "central_asset_id,site_code,feature_id,location_description,lamp_type,wattage,"
    rows = [f"SL{n},S1,{n},Mersey Way,LED,{'lots' if n == 3 else 18},2001" for n in range(40)]
    rows[7] = "SL7,S1,7,Mersey Way,LED,18,not a year"
    path.write_text(header + "install_year,easting,northing\n" + "".join(
        f"{row},{389000 + n},{390000 + n}\n" for n, row in enumerate(rows)
    ))  # fmt: skip
    env = {**os.environ, "DATABASE_URL": database_url, "MAPSERVER_STATE_DIR": str(tmp_path)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mapserver.cli", "load", "streetlights", str(path),
             "--quiet", "--max-reject-ratio", "0.1"],
            env=env, cwd=PROJECT_DIR, capture_output=True, text=True,
        )  # fmt: skip
    finally:  # the real layer back, for the tests that draw its tiles; twice, so that
        # the previous version (what a rollback brings back) is the real one too
        layer = runtime.catalogue.layer("streetlights")
        source = source_path(layer.source.path)
        for _ in range(2):
            load_layer(runtime.engine, layer, source, reports_dir=tmp_path, run_by="test",
                       catalogue=runtime.catalogue)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (report,) = (tmp_path / "loads").glob("streetlights-v*-rejects.csv")
    with report.open() as handle:
        rejects = [(r["row"], r["field"], r["value"]) for r in csv.DictReader(handle)]
    assert rejects == [("4", "wattage", "lots"), ("8", "install_year", "not a year")]
