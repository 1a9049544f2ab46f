"""Alembic environment: runs on the connection `kaquan.kit.migrate` hands over."""

from alembic import context

from kaquan.all_models import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
