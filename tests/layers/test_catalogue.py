"""The catalogue refuses mistakes with the file and the field named."""

import shutil

import pytest

from layers.catalogue import load_catalogue
from mapserver.errors import ServiceError
from mapserver.settings import PROJECT_DIR

STOCKPORT = PROJECT_DIR / "layers" / "stockport"


@pytest.fixture
def catalogue_dir(tmp_path):
    target = tmp_path / "council"
    shutil.copytree(STOCKPORT, target)
    return target


def test_stockport_catalogue_loads():
    catalogue = load_catalogue(STOCKPORT)
    assert catalogue.council.code == "E08000007"
    assert catalogue.council.boundary_layer in catalogue.layers
    assert all(layer.crs == "EPSG:27700" for layer in catalogue.layers.values())


def test_bad_field_type_names_file_and_field(catalogue_dir):
    path = catalogue_dir / "libraries.yml"
    path.write_text(
        path.read_text().replace(
            "- {name: name, label: Name", "- {name: name, type: text, label: Name"
        )
    )
    with pytest.raises(ServiceError, match=r"libraries\.yml: fields\.0\.type"):
        load_catalogue(catalogue_dir)


def test_hostile_identifier_is_refused(catalogue_dir):
    path = catalogue_dir / "libraries.yml"
    path.write_text(path.read_text() + 'table: "libraries; DROP TABLE x"\n')
    with pytest.raises(ServiceError, match="table"):
        load_catalogue(catalogue_dir)


def test_missing_profile(tmp_path):
    with pytest.raises(ServiceError, match="No council profile"):
        load_catalogue(tmp_path)


def test_boundary_layer_must_exist(catalogue_dir):
    (catalogue_dir / "boundary.yml").unlink()
    with pytest.raises(ServiceError, match="boundary_layer"):
        load_catalogue(catalogue_dir)


def test_synthetic_inputs_must_exist(catalogue_dir):
    path = catalogue_dir / "council.yml"
    path.write_text(
        path.read_text().replace("watercourse_layer: watercourses", "watercourse_layer: rivers")
    )
    with pytest.raises(ServiceError, match="synthetic inputs rivers"):
        load_catalogue(catalogue_dir)
