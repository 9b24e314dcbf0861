"""Settings are documented in the README and match what Docker Compose sets."""

import re

import yaml

from mapserver.settings import PROJECT_DIR, Settings


def env_names() -> set[str]:
    return {
        "DATABASE_URL" if name == "database_url" else f"MAPSERVER_{name.upper()}"
        for name in Settings.model_fields
    }


def test_every_setting_is_in_the_readme_table():
    readme = (PROJECT_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert documented == env_names()


def test_compose_sets_only_known_settings():
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    assert set(compose["services"]["app"]["environment"]) <= env_names()


def test_dockerfile_uses_the_makefile_bootstrap():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    makefile = (PROJECT_DIR / "Makefile").read_text()
    for step in ("scripts/bootstrap.sh venv", "scripts/bootstrap.sh npm"):
        assert step in dockerfile and step in makefile
    assert "USER mapserver" in dockerfile


def test_database_url_without_prefix(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://a:b@db:5432/x")
    assert Settings().database_url == "postgresql://a:b@db:5432/x"
