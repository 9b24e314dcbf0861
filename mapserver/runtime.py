"""Bringing the service's dependencies up and down: catalogue, database (private cluster
when no URL is set), migrations and layer tables. Shared by the CLI and the tests.

The start-up talks to the database through psycopg2 (``Runtime.direct``); the pooled
SQLAlchemy engine is made when first asked for, so a command that only loads (`mapserver
load`) never imports SQLAlchemy."""

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from layers.catalogue import Catalogue, load_catalogue
from layers.tables import ensure_layer_tables
from loaders.pipeline import backfill_gazetteer
from mapserver.cluster import PrivateCluster
from mapserver.database import Direct, check_connection, make_engine, migrate, private_cluster
from mapserver.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mapserver.replicas import Databases


@dataclass
class Runtime:
    settings: Settings  # with database_url resolved
    catalogue: Catalogue
    started_cluster: PrivateCluster | None = None  # stopped by close() when we started it
    direct: Direct = field(init=False)  # unpooled psycopg2 connections to the primary

    def __post_init__(self) -> None:
        assert self.settings.database_url
        self.direct = Direct(self.settings.database_url)

    @cached_property
    def engine(self) -> "Engine":
        """The primary, pooled."""
        assert self.settings.database_url
        return make_engine(self.settings.database_url, self.settings)

    @cached_property
    def databases(self) -> "Databases":
        """The primary and its read replicas: connected when the web app first asks (a
        command such as `mapserver load` spares the import of the web stack it needs)."""
        from mapserver.replicas import connect_replicas

        return connect_replicas(self.engine, self.settings)

    def close(self) -> None:
        self.direct.close()
        if "databases" in self.__dict__:
            self.databases.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
        if self.started_cluster is not None:
            self.started_cluster.stop()


def start(settings: Settings) -> Runtime:
    catalogue = load_catalogue(settings.catalogue_path)
    started = None
    if not settings.database_url:
        cluster = private_cluster(settings)
        if cluster.start():
            started = cluster
        cluster.create_database(settings.pg_database)
        settings = settings.model_copy(update={"database_url": cluster.url(settings.pg_database)})
    assert settings.database_url
    try:
        runtime = Runtime(settings=settings, catalogue=catalogue, started_cluster=started)
        check_connection(runtime.direct)  # then each step takes and gives back its connection
        migrate(runtime.direct, lambda: runtime.engine)
        ensure_layer_tables(runtime.direct, list(catalogue.layers.values()))
        backfill_gazetteer(runtime.direct, catalogue)
    except BaseException:
        if started is not None:
            started.stop()
        raise
    return runtime
