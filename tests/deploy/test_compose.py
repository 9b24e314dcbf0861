"""docker-compose.yml (no docker engine here: what can be checked without one)."""

import yaml

from mapserver.settings import PROJECT_DIR

COMPOSE = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_production_shape():
    assert set(SERVICES) == {"db", "db-replica", "app", "worker", "nginx"}
    assert (PROJECT_DIR / SERVICES["db"]["build"] / "Dockerfile").read_text().count(
        "FROM postgis/postgis:"
    ) == 1
    assert "pgrouting" in (PROJECT_DIR / "docker" / "postgis" / "Dockerfile").read_text()
    assert SERVICES["app"]["build"] == SERVICES["worker"]["build"] == "."
    assert SERVICES["app"]["image"] == SERVICES["worker"]["image"]
    assert SERVICES["nginx"]["image"].startswith("nginx:")
    assert SERVICES["app"]["command"][:2] == ["mapserver", "run"]
    assert SERVICES["worker"]["command"] == ["mapserver", "worker"]
    assert "ports" not in SERVICES["app"]  # reached through nginx only


def test_the_replica_is_a_basebackup_of_db_with_the_same_image():
    replica = SERVICES["db-replica"]
    assert replica["profiles"] == ["replica"] and replica["image"] == SERVICES["db"]["image"]
    assert replica["entrypoint"] == ["replica.sh"]
    assert replica["environment"]["PRIMARY_HOST"] == "db"
    dockerfile = (PROJECT_DIR / "docker" / "postgis" / "Dockerfile").read_text()
    # The script itself makes the cluster test's replica (tests/cluster/harness.py).
    assert "COPY replica.sh /usr/local/bin/replica.sh" in dockerfile
    assert "/docker-entrypoint-initdb.d/" in dockerfile


def test_every_service_has_a_health_check():
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name
    assert "/healthz" in " ".join(SERVICES["app"]["healthcheck"]["test"])
    assert "worker.alive" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "/nginx-health" in " ".join(SERVICES["nginx"]["healthcheck"]["test"])
    assert SERVICES["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert SERVICES["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"


def test_app_and_worker_share_the_database_and_photos():
    app, worker = SERVICES["app"], SERVICES["worker"]
    assert app["environment"] == worker["environment"]
    assert app["environment"]["DATABASE_URL"].endswith("@db:5432/mapserver")
    assert "photos:/app/var/photos" in app["volumes"] and app["volumes"] == worker["volumes"]


def test_nginx_mounts_the_repository_config():
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in SERVICES["nginx"]["volumes"]}
    assert mounts["/etc/nginx/mapserver"] == "./deploy/nginx"
    template = mounts["/etc/nginx/templates/default.conf.template"]
    assert (PROJECT_DIR / template).read_text().count("include /etc/nginx/mapserver/") == 2
    site = SERVICES["nginx"]["environment"]["MAPSERVER_NGINX_SITE"]
    assert site == "${NGINX_SITE:-http}"
    for name in ("http", "https"):
        assert (PROJECT_DIR / "deploy" / "nginx" / f"site-{name}.conf").is_file()


def test_the_image_runs_as_a_user_with_pinned_packages():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "USER mapserver" in final and "HEALTHCHECK" in final
    assert "/healthz" in final
    bootstrap = (PROJECT_DIR / "scripts" / "bootstrap.sh").read_text()
    assert "-c requirements.lock" in bootstrap and "npm ci" in bootstrap
