"""The admin API for callbacks to agents: deliveries, attempts, manual replay."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from kaquan.channels import callbacks
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import BigRowId, Id
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api", tags=["callbacks"], dependencies=JSON_ONLY)

ChannelsRead = Annotated[Principal, require(Permission.CHANNELS_READ)]
ChannelsWrite = Annotated[Principal, require(Permission.CHANNELS_WRITE)]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str = Field(description="the webhook-id header; the same on every try and replay")
    agent_id: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime = Field(description="no retries after this (a replay starts a new window)")
    created_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryDetailOut(DeliveryOut):
    payload: dict[str, Any] = Field(description="the event's data, as sent in the body's data field")
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


@router.get("/callbacks/deliveries")
async def list_deliveries(
    rt: RuntimeDep,
    admin: ChannelsRead,
    agent_id: Id | None = None,
    status: DeliveryStatus | None = None,
    before_id: BigRowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    """Callback deliveries, newest first, filtered; page with `before_id`."""
    async with rt.db.read() as session:
        rows = await callbacks.list_deliveries(
            session, agent_id=agent_id, status=status, before_id=before_id, limit=limit
        )
    return DeliveryPage(
        deliveries=[DeliveryOut.model_validate(row) for row in rows],
        next_before_id=rows[-1].id if len(rows) == limit else None,
    )


@router.get("/callbacks/deliveries/{delivery_id}")
async def delivery_detail(rt: RuntimeDep, admin: ChannelsRead, delivery_id: BigRowId) -> DeliveryDetailOut:
    """One delivery with its payload and every attempt, oldest first."""
    async with rt.db.read() as session:
        found = await callbacks.delivery_detail(session, delivery_id)
    return DeliveryDetailOut.model_validate(
        {
            **DeliveryOut.model_validate(found.delivery).model_dump(),
            "payload": found.delivery.payload,
            "attempt_log": [AttemptOut.model_validate(attempt) for attempt in found.attempts],
        }
    )


@router.post("/callbacks/deliveries/{delivery_id}/replay")
async def replay_delivery(rt: RuntimeDep, admin: ChannelsWrite, delivery_id: BigRowId) -> DeliveryOut:
    """Send a delivery again, due now, under the same event id (receivers dedupe by it)."""
    async with rt.db.transaction() as session:
        delivery = await callbacks.replay(rt.db, session, delivery_id, actor=admin.actor)
        return DeliveryOut.model_validate(delivery)
