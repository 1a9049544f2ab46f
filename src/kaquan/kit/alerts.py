"""Operator alerts, raised where a condition is noticed and sent by the worker through the outbox.

Any module raises an alert with `raise_alert(db, session, kind, condition, facts)` inside its own
transaction: one `operator_alerts` row per (kind, condition, interval) — the unique key makes a
second raise within the interval (or a concurrent one) a no-op — and one `operator.alert` outbox
event per configured channel (e-mail, webhook), which `operations.alerts` sends with the outbox's
retries. With no channel configured nothing is recorded: the log line the caller writes is all.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kaquan.kit import clock, outbox
from kaquan.kit.db import Database
from kaquan.kit.models import Base, BigId, UTCDateTime

TOPIC = "operator.alert"
KINDS = ("low_stock", "refill", "callback_disabled", "worker_stale", "risk_model_fallback")


class OperatorAlert(Base):
    __tablename__ = "operator_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "<kind>:<condition>:<interval number>": unique, so a condition alerts once per interval.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


@dataclass(frozen=True)
class Routing:
    """Where alerts go (set once per process by runtime.start from the settings)."""

    channels: tuple[str, ...] = ()  # "email", "webhook"
    interval: timedelta = timedelta(hours=1)


_routing = Routing()


def configure(routing: Routing) -> None:
    global _routing
    _routing = routing


def routing() -> Routing:
    return _routing


def alert_key(kind: str, condition: str, at: datetime, interval: timedelta) -> str:
    window = int(at.timestamp() // max(interval.total_seconds(), 1))
    return f"{kind}:{condition}:{window}"[:200]


async def claim(db: Database, session: AsyncSession, kind: str, condition: str, facts: dict[str, Any]) -> str | None:
    """The alert's key when this raise is the first of its condition in this interval, else None."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    now = clock.now()
    key = alert_key(kind, condition, now, _routing.interval)
    inserted = await session.execute(
        db.insert(OperatorAlert.__table__)  # type: ignore[arg-type]
        .values(key=key, kind=kind, facts=facts, raised_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(OperatorAlert.id)
    )
    return key if inserted.first() is not None else None


async def raise_alert(db: Database, session: AsyncSession, kind: str, condition: str, facts: dict[str, Any]) -> bool:
    """Alert the operator about `condition` (e.g. "sku:3:wh:main"), once per interval; True when queued."""
    if not _routing.channels:
        return False
    key = await claim(db, session, kind, condition, facts)
    if key is None:
        return False
    for channel in _routing.channels:
        payload = {"key": key, "kind": kind, "facts": facts, "channel": channel, "raised_at": clock.now().isoformat()}
        await outbox.enqueue(session, TOPIC, payload)
    return True
