"""Bringing the service's dependencies up and down: catalogue, database (private cluster
when no URL is set), migrations and layer tables. Shared by the CLI and the tests."""

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from layers.catalogue import Catalogue, load_catalogue
from layers.tables import ensure_layer_tables
from loaders.pipeline import backfill_gazetteer
from mapserver.cluster import PrivateCluster
from mapserver.database import check_connection, make_engine, migrate, private_cluster
from mapserver.replicas import Databases, connect_replicas
from mapserver.settings import Settings


@dataclass
class Runtime:
    settings: Settings  # with database_url resolved
    engine: Engine  # the primary
    catalogue: Catalogue
    started_cluster: PrivateCluster | None = None  # stopped by close() when we started it
    databases: Databases = field(init=False)  # the primary and its read replicas

    def __post_init__(self) -> None:
        self.databases = connect_replicas(self.engine, self.settings)

    def close(self) -> None:
        self.databases.close()
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
        engine = make_engine(settings.database_url, settings)
        check_connection(engine)
        migrate(engine)
        ensure_layer_tables(engine, list(catalogue.layers.values()))
        backfill_gazetteer(engine, catalogue)
    except BaseException:
        if started is not None:
            started.stop()
        raise
    return Runtime(settings=settings, engine=engine, catalogue=catalogue, started_cluster=started)
