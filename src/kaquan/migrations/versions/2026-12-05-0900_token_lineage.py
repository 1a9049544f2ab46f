"""identity: API tokens remember the token that created them; sign-in no longer locks accounts

Tokens created by a token before this revision are linked to their parent from
the audit trail (`identity.token.created`, actor `<user> (token <prefix>)`),
then held to the rules new tokens follow: a child expires no later than its
parent and is revoked when its parent is. `identity_users.locked_until` goes:
sign-in failures are throttled per address (`identity.service.login`), never
by locking the account against its owner.

Revision ID: a1d3e7f0c104
Revises: a1d3e7f0c008
Create Date: 2026-12-05
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3e7f0c104"
down_revision: str | None = "a1d3e7f0c008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BY_TOKEN = re.compile(r".* \(token (kqt_[0-9a-f]{8})\)")

_tokens = sa.table(
    "identity_api_tokens",
    sa.column("id", BIG_ID),
    sa.column("user_id", sa.Integer()),
    sa.column("prefix", sa.String()),
    sa.column("parent_id", BIG_ID),
    sa.column("expires_at", sa.DateTime(timezone=True)),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)
_audit = sa.table(
    "audit_entries", sa.column("actor", sa.String()), sa.column("action", sa.String()), sa.column("target", sa.String())
)


def _link_existing_children() -> None:
    conn = op.get_bind()
    created_by: dict[int, str] = {}
    entries = conn.execute(
        sa.select(_audit.c.actor, _audit.c.target).where(_audit.c.action == "identity.token.created")
    )
    for actor, target in entries:
        found = _BY_TOKEN.fullmatch(actor or "")
        if found and target.startswith("api_token:") and target[len("api_token:") :].isdigit():
            created_by[int(target[len("api_token:") :])] = found.group(1)
    rows = conn.execute(
        sa.select(
            _tokens.c.id, _tokens.c.user_id, _tokens.c.prefix, _tokens.c.expires_at, _tokens.c.revoked_at
        ).order_by(_tokens.c.id)
    ).all()
    held = {row.id: (row.expires_at, row.revoked_at) for row in rows}
    latest: dict[tuple[int, str], int] = {}
    # In id order a parent is settled before its children, so expiry and revocation flow down whole chains.
    for row in rows:
        prefix = created_by.get(row.id)
        parent_id = latest.get((row.user_id, prefix)) if prefix else None
        if parent_id is not None:
            parent_expires, parent_revoked = held[parent_id]
            expires = min(row.expires_at, parent_expires)
            revoked = row.revoked_at if row.revoked_at is not None else parent_revoked
            held[row.id] = (expires, revoked)
            conn.execute(
                sa.update(_tokens)
                .where(_tokens.c.id == row.id)
                .values(parent_id=parent_id, expires_at=expires, revoked_at=revoked)
            )
        latest[(row.user_id, row.prefix)] = row.id


def upgrade() -> None:
    with op.batch_alter_table("identity_api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", BIG_ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_identity_api_tokens_parent_id"), ["parent_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_identity_api_tokens_parent_id_identity_api_tokens"),
            "identity_api_tokens",
            ["parent_id"],
            ["id"],
        )
    _link_existing_children()
    # Not batch mode: on SQLite that copies the table, which the rows referencing users forbid.
    op.drop_column("identity_users", "locked_until")


def downgrade() -> None:
    op.add_column("identity_users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("identity_api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_identity_api_tokens_parent_id_identity_api_tokens"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_identity_api_tokens_parent_id"))
        batch_op.drop_column("parent_id")
