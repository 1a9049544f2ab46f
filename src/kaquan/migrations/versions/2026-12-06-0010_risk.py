"""risk: recorded decisions, velocity counters, rules, allow/block lists, spent challenge nonces

Revision ID: 3f9a1c7e5b20
Revises: 3b9d1c7e5a20
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f9a1c7e5b20"
down_revision: str | None = "3b9d1c7e5a20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "risk_decisions",
        sa.Column("id", big_id, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('approve', 'challenge', 'review', 'decline')", name=op.f("ck_risk_decisions_outcome_known")
        ),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name=op.f("ck_risk_decisions_score_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
    )
    op.create_index("ix_risk_decisions_at", "risk_decisions", ["at"])
    op.create_index("ix_risk_decisions_subject_at", "risk_decisions", ["subject", "at"])
    op.create_table(
        "risk_counters",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("bucket", big_id, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "bucket", name=op.f("pk_risk_counters")),
    )
    op.create_table(
        "risk_rules",
        sa.Column("id", big_id, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("expression", sa.String(length=500), nullable=False),
        sa.Column("actions", sa.String(length=200), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN -100 AND 100", name=op.f("ck_risk_rules_score_range")),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('challenge', 'review', 'decline')",
            name=op.f("ck_risk_rules_outcome_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_risk_rules_name")),
    )
    op.create_table(
        "risk_list_entries",
        sa.Column("id", big_id, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("value", sa.String(length=120), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('ip', 'prefix', 'device', 'contact', 'account')", name=op.f("ck_risk_list_entries_kind_known")
        ),
        sa.CheckConstraint("verdict IN ('allow', 'block')", name=op.f("ck_risk_list_entries_verdict_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_list_entries")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_risk_list_entries_kind_value")),
    )
    op.create_table(
        "risk_used_nonces",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_risk_used_nonces")),
    )
    op.create_index("ix_risk_used_nonces_expires_at", "risk_used_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_risk_used_nonces_expires_at", table_name="risk_used_nonces")
    op.drop_table("risk_used_nonces")
    op.drop_table("risk_list_entries")
    op.drop_table("risk_rules")
    op.drop_table("risk_counters")
    op.drop_index("ix_risk_decisions_subject_at", table_name="risk_decisions")
    op.drop_index("ix_risk_decisions_at", table_name="risk_decisions")
    op.drop_table("risk_decisions")
