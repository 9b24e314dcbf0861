"""Alembic environment: always run on a connection handed over by mapserver.database.migrate."""

from alembic import context
from sqlalchemy import text

APP_SCHEMA = "app"

connection = context.config.attributes["connection"]
connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {APP_SCHEMA}"))
context.configure(
    connection=connection,
    version_table_schema=APP_SCHEMA,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
