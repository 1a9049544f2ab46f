"""orders: partial indexes over unpaid orders, for the per-client hold caps and SKU pressure

Revision ID: a1d3e7f0c102
Revises: a1d3e7f0c008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c102"
down_revision: str | None = "a1d3e7f0c104"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNPAID = sa.text("status = 'pending_payment'")
_INDEXES = {
    "ix_orders_unpaid_ip": "buyer_ip",
    "ix_orders_unpaid_source": "source",
    "ix_orders_unpaid_contact": "contact",
    "ix_orders_unpaid_sku": "sku_id",
}


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for name, column in _INDEXES.items():
            batch_op.create_index(name, [column], unique=False, postgresql_where=_UNPAID, sqlite_where=_UNPAID)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for name in reversed(_INDEXES):
            batch_op.drop_index(name, postgresql_where=_UNPAID, sqlite_where=_UNPAID)
