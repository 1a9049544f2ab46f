"""Channel tables: channels, price lists, quotas, agents and their API keys."""

from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit.models import Base, BigId, UTCDateTime

CHANNEL_KINDS = ("shop", "wholesale", "api", "group_buy", "marketplace")


class Channel(Base):
    """Where orders come from: the shop, wholesale, the open API, group buying, one marketplace store each."""

    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in CHANNEL_KINDS)})", name="kind_known"),
        CheckConstraint("fee_rate_bp >= 0 AND fee_rate_bp <= 10000", name="fee_rate_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    # The channel's commission or fee, in basis points of the order total (1% = 100).
    fee_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    # Warehouse codes in the order this channel takes stock from; empty: every warehouse.
    warehouses: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime(), nullable=False)


class ChannelPrice(Base):
    """A SKU's price in one channel for one agent tier ("" = the channel's default price)."""

    __tablename__ = "channel_prices"
    __table_args__ = (
        UniqueConstraint("channel_id", "tier", "sku_id"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str] = mapped_column(String(32), default="")
    sku_id: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))


class ChannelQuota(Base):
    """The most of a SKU's stock one channel may hold or have sold, in basis points (keeps the rest for others)."""

    __tablename__ = "channel_quotas"
    __table_args__ = (CheckConstraint("max_share_bp >= 0 AND max_share_bp <= 10000", name="share_valid"),)

    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    max_share_bp: Mapped[int] = mapped_column(Integer)


class Agent(Base):
    """A downstream agent (代理商) buying through the open API from a prepaid deposit (预存款)."""

    __tablename__ = "channel_agents"
    __table_args__ = (
        CheckConstraint("credit_limit_minor >= 0", name="credit_limit_not_negative"),
        CheckConstraint("status IN ('active', 'suspended')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    channel_id: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str] = mapped_column(String(32), default="")
    currency: Mapped[str] = mapped_column(String(3))
    account_id: Mapped[int] = mapped_column(Integer)
    credit_limit_minor: Mapped[int] = mapped_column(BigId, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at = mapped_column(UTCDateTime(), nullable=False)


class AgentKey(Base):
    """An agent's API credential: a public key id and a secret sealed at rest (needed to check signatures)."""

    __tablename__ = "channel_agent_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, index=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # After a rotation the previous secret still signs until `previous_valid_until`.
    previous_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_valid_until = mapped_column(UTCDateTime(), nullable=True)
    ip_allowlist: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at = mapped_column(UTCDateTime(), nullable=False)
    rotated_at = mapped_column(UTCDateTime(), nullable=True)
    revoked_at = mapped_column(UTCDateTime(), nullable=True)


class SeenNonce(Base):
    """A request nonce already used by a key, kept for the signature window (when Redis is not configured)."""

    __tablename__ = "channel_seen_nonces"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at = mapped_column(UTCDateTime(), nullable=False, index=True)
