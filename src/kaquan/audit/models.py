"""Who changed what: one entry per admin state change, written in the change's transaction.

Entries form a hash chain: each stores the previous entry's hash and its own hash
over both, so an edited, inserted, deleted or reordered entry breaks the chain
from that point on. The chain head (last id and hash) is kept in its own row, so
cutting entries off the end breaks it too.
"""

from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime

HASH_CHARS = 64


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    # Assigned by `audit.record` as the previous id + 1 under the chain lock: gapless, and part of the hash.
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at = mapped_column(UTCDateTime(), nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(128), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    hash: Mapped[str] = mapped_column(String(HASH_CHARS))


class AuditHead(Base):
    """The end of the chain: one row, rewritten by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigId)
    last_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
