"""Settings are documented in the README and match what Docker Compose sets."""

import re

import yaml

from mapserver.settings import PROJECT_DIR, Settings


def env_names() -> set[str]:
    """Each setting's documented variable: its first alias (DATABASE_URL…), else prefixed."""
    names = set()
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None)
        names.add(aliases[0] if aliases else f"MAPSERVER_{name.upper()}")
    return names


def test_every_setting_is_in_the_readme_table():
    readme = (PROJECT_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert documented == env_names()


def test_compose_sets_only_known_settings():
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    for service in ("app", "worker"):
        assert set(compose["services"][service]["environment"]) <= env_names()


def test_replica_urls_are_comma_separated(monkeypatch):
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "postgresql://a@r1/x, postgresql://a@r2/x")
    assert Settings().database_replica_urls == ["postgresql://a@r1/x", "postgresql://a@r2/x"]
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "")
    assert Settings().database_replica_urls == []


def test_dockerfile_uses_the_makefile_bootstrap():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    makefile = (PROJECT_DIR / "Makefile").read_text()
    for step in ("scripts/bootstrap.sh venv", "scripts/bootstrap.sh npm"):
        assert step in dockerfile and step in makefile
    assert "USER mapserver" in dockerfile


def test_database_url_without_prefix(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://a:b@db:5432/x")
    assert Settings().database_url == "postgresql://a:b@db:5432/x"
