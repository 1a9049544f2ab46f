"""ledger: balance moves of hot accounts applied at commit (PostgreSQL)

Revision ID: 5b7e2c91d4a3
Revises: 5c1e7a9b3d24
Create Date: 2026-12-06

A sale moves the balances of a few accounts every sale shares (the channel's sales, the gateway's
receivable, cost of goods, inventory). Moved by an UPDATE inside the sale's transaction, each such
row stays locked until that transaction commits, however long its server takes to get there, and
every other sale waits. Here the sale writes its moves into `ledger_balance_moves` instead, and a
deferred constraint trigger applies them during the commit itself: the rows are locked only for
the commit, in ascending account id (no deadlock between two sales). SQLite, whose writers hold
the database's lock anyway, gets the table and no trigger: kaquan moves balances directly there.
No foreign key to the accounts: its check would share-lock every hot account row in every sale,
and accounts are never deleted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2c91d4a3"
down_revision: str | None = "5c1e7a9b3d24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPLY = """
CREATE FUNCTION ledger_apply_balance_moves() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved RECORD;
BEGIN
    -- Only this transaction's moves are visible: every committed transaction removed its own.
    FOR moved IN
        WITH taken AS (DELETE FROM ledger_balance_moves RETURNING account_id, delta_minor)
        SELECT account_id, sum(delta_minor) AS delta_minor FROM taken GROUP BY account_id ORDER BY account_id
    LOOP
        UPDATE ledger_accounts SET balance_minor = balance_minor + moved.delta_minor WHERE id = moved.account_id;
    END LOOP;
    RETURN NULL;
END
$$
"""
_TRIGGER = """
CREATE CONSTRAINT TRIGGER ledger_balance_moves_at_commit AFTER INSERT ON ledger_balance_moves
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_apply_balance_moves()
"""


def upgrade() -> None:
    op.create_table(
        "ledger_balance_moves",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delta_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_balance_moves")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPLY)
        op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_balance_moves_at_commit ON ledger_balance_moves")
        op.execute("DROP FUNCTION ledger_apply_balance_moves()")
    op.drop_table("ledger_balance_moves")
