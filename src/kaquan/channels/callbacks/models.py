"""Callback tables: endpoints, deliveries, attempts.

`agent_id` is the channels module's opaque agent id; these tables never join agents.
A delivery row is the callbacks' own transactional outbox: it is inserted in the
transaction that changed the order, and the worker sends it later.
"""

from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime

DELIVERY_STATUSES = ("pending", "delivered", "failed", "cancelled")


class CallbackEndpoint(Base):
    """Where an agent receives its callbacks, and the secret they are signed with (sealed at rest)."""

    __tablename__ = "callback_endpoints"
    __table_args__ = (CheckConstraint("consecutive_failures >= 0", name="failures_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # After a rotation callbacks carry a second signature under the previous secret until `previous_valid_until`.
    previous_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_valid_until = mapped_column(UTCDateTime(), nullable=True)
    disabled_at = mapped_column(UTCDateTime(), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # The circuit breaker: while set and in the future, nothing is sent to this endpoint.
    paused_until = mapped_column(UTCDateTime(), nullable=True)
    created_at = mapped_column(UTCDateTime(), nullable=False)
    updated_at = mapped_column(UTCDateTime(), nullable=False)


class CallbackDelivery(Base):
    """One event for one agent, sent until the receiver answers 2xx or its retry window closes."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in DELIVERY_STATUSES)})", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_callback_deliveries_due", "status", "next_attempt_at"),
        Index("ix_callback_deliveries_agent", "agent_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    agent_id: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at = mapped_column(UTCDateTime(), nullable=False)
    # Retries stop once this passes (creation or the last replay + the retry window).
    give_up_at = mapped_column(UTCDateTime(), nullable=False)
    # Set while one worker is sending it: no other worker takes it until the lease runs out.
    lease_until = mapped_column(UTCDateTime(), nullable=True)
    created_at = mapped_column(UTCDateTime(), nullable=False)
    delivered_at = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)


class CallbackAttempt(Base):
    """One try at sending a delivery: when, where, what came back (a status code or an error)."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("callback_deliveries.id"), index=True)
    at = mapped_column(UTCDateTime(), nullable=False)
    url: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
