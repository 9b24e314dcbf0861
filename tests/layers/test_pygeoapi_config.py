"""config/pygeoapi.yml is generated from the catalogue and must be current."""

from layers.catalogue import load_catalogue
from layers.pygeoapi_config import render_config
from mapserver.settings import PROJECT_DIR, Settings


def test_committed_config_is_current():
    settings = Settings(database_url=None)
    committed = (PROJECT_DIR / "config" / "pygeoapi.yml").read_text(encoding="utf-8")
    assert committed == render_config(load_catalogue(settings.catalogue_path)), (
        "config/pygeoapi.yml is stale: run `mapserver config build` (make config) and commit it"
    )


def test_config_holds_no_secrets_or_addresses():
    text = (PROJECT_DIR / "config" / "pygeoapi.yml").read_text(encoding="utf-8")
    assert "${MAPSERVER_DB_PASSWORD}" in text
    assert "127.0.0.1:" not in text and "localhost" not in text


def test_only_public_layers_are_published():
    catalogue = load_catalogue(Settings(database_url=None).catalogue_path)
    text = render_config(catalogue)
    for layer in catalogue.layers.values():
        assert (f"\n  {layer.id}:\n" in text) == (layer.access == "public")
