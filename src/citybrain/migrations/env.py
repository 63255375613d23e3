"""Alembic environment: runs on the connection handed over by ``core.migrate`` or on the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from citybrain.core.registry import metadata

config = context.config


def run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
