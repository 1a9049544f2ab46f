"""Buyers' tables: one-time codes sent to a contact.

Neither the contact nor the code is stored: `contact_digest` is a keyed digest of
the normalized contact (a database dump does not tell whose numbers are here, and
the digest cannot be brute-forced without the key), `code_hash` a keyed digest of
the code bound to that contact.
"""

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime


class ContactCode(Base):
    __tablename__ = "buyers_codes"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_buyers_codes_contact", "contact_digest", "created_at"),
        Index("ix_buyers_codes_ip", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_digest: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # email, sms or dev (printed to the server log)
    ip: Mapped[str | None] = mapped_column(String(64))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong codes tried
    created_at = mapped_column(UTCDateTime(), nullable=False)
    expires_at = mapped_column(UTCDateTime(), nullable=False)
    used_at = mapped_column(UTCDateTime(), nullable=True)  # confirmed, or replaced by a newer code
