"""Ledger tables: accounts, transfers, postings.

A transfer is one balanced money movement; its postings are its legs, one per
account touched, signed debit-positive. Transfers and postings are append-only:
a correction is a new transfer. Each account keeps its balance in its normal
sign (debit-normal: the sum of its postings; credit-normal: minus that sum), and
the database itself refuses a balance below the account's floor.
"""

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("normal IN ('debit', 'credit')", name="normal_known"),
        CheckConstraint("floor_minor IS NULL OR balance_minor >= floor_minor", name="balance_above_floor"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(96), unique=True)  # e.g. "agent:42", "shop:sales:CNY"
    currency: Mapped[str] = mapped_column(String(3))
    normal: Mapped[str] = mapped_column(String(6))
    # The lowest balance allowed, e.g. minus an agent's credit limit; NULL: no floor.
    floor_minor: Mapped[int | None] = mapped_column(BigInteger)
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at = mapped_column(UTCDateTime(), nullable=False)


class LedgerTransfer(Base):
    __tablename__ = "ledger_transfers"
    # The reference leads: a look-up of many references is then an index probe each, whatever the statistics say.
    __table_args__ = (UniqueConstraint("reference", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # The caller's idempotency key within `kind` (an order number, a statement line id); NULL: none.
    reference: Mapped[str | None] = mapped_column(String(128))
    memo: Mapped[str] = mapped_column(String(300), default="")
    actor: Mapped[str] = mapped_column(String(128))
    at = mapped_column(UTCDateTime(), nullable=False)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"))


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="amount_not_zero"),
        # An account's entries are read oldest first by posting id: (account_id, id) serves both filter and order.
        Index("ix_ledger_postings_account_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # debit positive, credit negative
    currency: Mapped[str] = mapped_column(String(3))
    at = mapped_column(UTCDateTime(), nullable=False)


class LedgerBalanceMove(Base):
    """A balance move waiting for its transaction's commit (PostgreSQL; `posting.post_many_locking_last`).

    Always empty between transactions: a deferred trigger applies a committing transaction's moves to
    their accounts, in ascending account id, and deletes them, as the last thing before the commit.
    """

    __tablename__ = "ledger_balance_moves"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key: its check would share-lock the hot account rows in every sale (accounts are never deleted).
    account_id: Mapped[int] = mapped_column(BigId)
    delta_minor: Mapped[int] = mapped_column(BigInteger)  # in the account's normal sign
