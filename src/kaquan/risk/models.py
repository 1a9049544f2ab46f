"""Risk's tables: recorded decisions, velocity counters (without Redis), rules, allow/block lists, used nonces,
learned models."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime, partial_index

OUTCOMES = ("approve", "challenge", "review", "decline")
LIST_KINDS = ("ip", "prefix", "device", "contact", "account")
LIST_VERDICTS = ("allow", "block")
LABELS = ("fraud", "legit")
REVIEW_STATUSES = ("open", "approved", "declined", "fraud")


class RiskDecision(Base):
    """One answer of `risk.decide`: what was asked, what it scored and why, and the features it saw
    (the rows a rule's backtest runs over). Every text column is bounded; subjects are stored as the
    same keys the counters use (a device or contact as a digest, never the raw token)."""

    __tablename__ = "risk_decisions"
    __table_args__ = (
        CheckConstraint("outcome IN ('approve', 'challenge', 'review', 'decline')", name="outcome_known"),
        CheckConstraint("score BETWEEN 0 AND 100", name="score_range"),
        Index("ix_risk_decisions_at", "at"),
        Index("ix_risk_decisions_subject_at", "subject", "at"),
        CheckConstraint("label IS NULL OR label IN ('fraud', 'legit')", name="label_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(80), nullable=False)
    outcome: Mapped[str] = mapped_column(String(12), nullable=False)
    score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # What the decision turned out to be, for training (`risk.reviews`): 'fraud' or 'legit' from a review
    # verdict; null while nobody knows.
    label: Mapped[str | None] = mapped_column(String(8), nullable=True)
    model_score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # the active model's 0–100
    shadow_score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # a shadow model's, not acting


class RiskCounter(Base):
    """A fixed-window velocity counter: hits of `key` in the window starting at `bucket` (unix seconds)."""

    __tablename__ = "risk_counters"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigId, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)


class RiskRule(Base):
    """An operator's rule: when `expression` holds for an action in `actions`, add `score` or force `outcome`."""

    __tablename__ = "risk_rules"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("score BETWEEN -100 AND 100", name="score_range"),
        CheckConstraint("outcome IS NULL OR outcome IN ('challenge', 'review', 'decline')", name="outcome_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    expression: Mapped[str] = mapped_column(String(500), nullable=False)
    actions: Mapped[str] = mapped_column(String(200), nullable=False)
    score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(12), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_by: Mapped[str] = mapped_column(String(120), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RiskListEntry(Base):
    """An allow or block entry for one subject (`value` is the subject's key: an address, a prefix, a device's
    or contact's digest, an account)."""

    __tablename__ = "risk_list_entries"
    __table_args__ = (
        UniqueConstraint("kind", "value"),
        CheckConstraint("kind IN ('ip', 'prefix', 'device', 'contact', 'account')", name="kind_known"),
        CheckConstraint("verdict IN ('allow', 'block')", name="verdict_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    value: Mapped[str] = mapped_column(String(120), nullable=False)
    verdict: Mapped[str] = mapped_column(String(8), nullable=False)
    note: Mapped[str] = mapped_column(String(200), nullable=False)
    created_by: Mapped[str] = mapped_column(String(120), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RiskUsedNonce(Base):
    """A proof-of-work challenge already spent (without Redis): its nonce, kept until the challenge expires."""

    __tablename__ = "risk_used_nonces"
    __table_args__ = (Index("ix_risk_used_nonces_expires_at", "expires_at"),)

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RiskReview(Base):
    """An order held by a `review` decision until a person's verdict (`risk.reviews`): one per order.

    The subjects are the decision's keys (`ip:…`, `device:<digest>`, …): what the buyer's history is found
    by and what a fraud verdict puts on the block list. `order_id` is the order's id (orders owns it).
    """

    __tablename__ = "risk_reviews"
    __table_args__ = (
        UniqueConstraint("order_id"),
        CheckConstraint("status IN ('open', 'approved', 'declined', 'fraud')", name="status_known"),
        Index("ix_risk_reviews_status_id", "status", "id"),
        Index("ix_risk_reviews_contact", "contact"),
        Index("ix_risk_reviews_device", "device"),
        Index("ix_risk_reviews_ip", "ip"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    decision_id: Mapped[int] = mapped_column(BigId, nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    ip: Mapped[str | None] = mapped_column(String(120), nullable=True)
    device: Mapped[str | None] = mapped_column(String(120), nullable=True)
    contact: Mapped[str | None] = mapped_column(String(120), nullable=True)
    account: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    verdict_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    verdict_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verdict_reason: Mapped[str] = mapped_column(String(300), nullable=False, default="")


MODEL_STATUSES = ("shadow", "active", "retired")


class RiskModel(Base):
    """A learned model (`risk.learning`): its trees as kaquan's own JSON, what it reads, how it did on a later period.

    A new model starts in `shadow` (scored beside the active one, recorded, not acting); a person promotes
    it to `active` (at most one: the partial unique index) and the one before becomes `retired`.
    """

    __tablename__ = "risk_models"
    __table_args__ = (
        UniqueConstraint("version"),
        CheckConstraint("status IN ('shadow', 'active', 'retired')", name="status_known"),
        partial_index("uq_risk_models_one_active", "status", where="status = 'active'", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    trained_by: Mapped[str] = mapped_column(String(120), nullable=False)
    feature_names: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    trees: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    promoted_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
