"""Custody: the audit trail, code reveals with a reason, leak tracing, quarantine."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kaquan.audit import service as audit
from kaquan.audit.service import AuditEntry
from kaquan.identity.permissions import Permission
from kaquan.inventory import custody
from kaquan.kit.bounds import BigRowId, Id
from kaquan.kit.errors import BadInput
from kaquan.orders import service as orders
from kaquan.orders.trace import LeakReport, trace_leaks
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.schemas import CodeOut, RangeOut

router = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=JSON_ONLY)
MAX_LEAK_FILE_BYTES = 64 * 1024 * 1024

AuditRead = Annotated[Principal, require(Permission.AUDIT_READ)]
CodesReveal = Annotated[Principal, require(Permission.CODES_REVEAL)]
LeaksTrace = Annotated[Principal, require(Permission.LEAKS_TRACE)]
OrdersRead = Annotated[Principal, require(Permission.ORDERS_READ)]
StockWrite = Annotated[Principal, require(Permission.STOCK_WRITE)]


# --- audit trail --------------------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


def _filter(
    actor: str | None, action: str | None, target: str | None, since: datetime | None, until: datetime | None
) -> audit.AuditFilter:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise BadInput(f"{name} needs a time zone, e.g. 2026-11-25T08:00:00Z", field=name)
    return audit.AuditFilter(actor=actor, action=action, target=target, since=since, until=until)


@router.get("/audit")
async def audit_trail(
    rt: RuntimeDep,
    admin: AuditRead,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=128, description="exact, or a prefix ending in *")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: BigRowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """The audit trail, newest first, filtered; page with `before_id`."""
    where = _filter(actor, action, target, since, until)
    async with rt.db.read() as session:
        rows = await audit.search(session, where, before_id=before_id, limit=limit)
    return AuditPage(
        entries=[AuditEntryOut.model_validate(row) for row in rows],
        next_before_id=rows[-1].id if len(rows) == limit else None,
    )


class CsvResponse(StreamingResponse):
    """Documents the answer as text/csv in the OpenAPI document."""

    media_type = "text/csv"


@router.get("/audit.csv", response_class=CsvResponse)
async def audit_csv(
    rt: RuntimeDep,
    admin: AuditRead,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CsvResponse:
    """The (filtered) audit trail as CSV, oldest first, streamed."""
    where = _filter(actor, action, target, since, until)

    async def lines() -> AsyncIterator[str]:
        yield audit.csv_lines([list(audit.CSV_COLUMNS)])
        async with rt.db.read() as session:
            batch: list[list[str]] = []
            entry: AuditEntry
            async for entry in audit.entries(session, where):
                batch.append(audit.csv_row(entry))
                if len(batch) == audit.PAGE:
                    yield audit.csv_lines(batch)
                    batch = []
            yield audit.csv_lines(batch)

    return CsvResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


# --- code custody -------------------------------------------------------------------------------


class RevealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=2000, description="why you need the plaintext codes (≤ 200 characters)")


class RevealOut(BaseModel):
    order: str
    codes: list[CodeOut]
    ranges: list[RangeOut]


class MaskedCodeOut(BaseModel):
    card_no: str | None
    secret: str
    status: str
    expires_on: str | None


@router.post("/orders/{number}/reveal")
async def reveal_codes(
    rt: RuntimeDep, admin: CodesReveal, number: str, body: RevealRequest, response: Response
) -> RevealOut:
    """The order's codes in plaintext; needs a reason, and leaves a reveal row and an audit entry."""
    response.headers["Cache-Control"] = "no-store"
    custody.checked_reason(body.reason)  # before the lookup: an empty reason gets its own clear error
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        revealed = await custody.reveal(
            session,
            rt.vault,
            order.id,
            order_number=order.number,
            actor=admin.actor,
            reason=body.reason,
            ip=admin.ip,
        )
    return RevealOut(
        order=order.number,
        codes=[CodeOut.of(code) for code in revealed.codes],
        ranges=[RangeOut.of(serials) for serials in revealed.ranges],
    )


@router.get("/orders/{number}/codes")
async def masked_codes(rt: RuntimeDep, admin: OrdersRead, number: str) -> list[MaskedCodeOut]:
    """The order's codes as support sees them: masked, no reveal."""
    async with rt.db.read() as session:
        order = await orders.by_number(session, number)
        codes = await custody.masked_codes(session, rt.vault, order.id)
    return [MaskedCodeOut(card_no=c.card_no, secret=c.secret, status=c.status, expires_on=c.expires_on) for c in codes]


# --- leaks --------------------------------------------------------------------------------------


class RevealFactOut(BaseModel):
    at: datetime
    viewer: str
    reason: str
    ip: str | None
    units: int


class LeakedCodeOut(BaseModel):
    line_no: int
    code: str
    batch_id: int
    supplier: str
    sku: str
    status: str
    batch_quarantined: bool
    order: str | None
    order_status: str | None
    channel: str | None
    sold_at: datetime | None
    reveals: list[RevealFactOut]


class LeakLineOut(BaseModel):
    line_no: int
    code: str | None = None
    problem: str | None = None
    reason: str | None = None


class LeakReportOut(BaseModel):
    found: list[LeakedCodeOut]
    unknown: list[LeakLineOut]
    problems: list[LeakLineOut]
    batches: list[int]
    unsold: int

    @classmethod
    def of(cls, report: LeakReport) -> "LeakReportOut":
        found = [
            LeakedCodeOut(
                line_no=leaked.code.line_no,
                code=leaked.code.code,
                batch_id=leaked.code.batch_id,
                supplier=leaked.code.supplier,
                sku=leaked.code.sku,
                status=leaked.code.status,
                batch_quarantined=leaked.code.batch_quarantined,
                order=leaked.order.number if leaked.order else None,
                order_status=leaked.order.status if leaked.order else None,
                channel=leaked.order.channel if leaked.order else None,
                sold_at=leaked.code.sold_at,
                reveals=[RevealFactOut(**vars(r)) for r in leaked.reveals],
            )
            for leaked in report.found
        ]
        return cls(
            found=found,
            unknown=[LeakLineOut(line_no=n, code=code) for n, code in report.unknown],
            problems=[LeakLineOut(line_no=p.line_no, problem=p.code, reason=p.reason) for p in report.problems],
            batches=report.batch_ids,
            unsold=report.unsold,
        )


@router.post("/leaks/trace")
async def trace_leaked_codes(
    rt: RuntimeDep,
    admin: LeaksTrace,
    file: Annotated[UploadFile, File(description="leaked codes: one per line, or card_no,secret lines")],
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
) -> LeakReportOut:
    """Where each leaked code came from and went; read-only (quarantine is its own route)."""
    data = await file.read(MAX_LEAK_FILE_BYTES + 1)
    if len(data) > MAX_LEAK_FILE_BYTES:
        raise BadInput(f"the file is larger than {MAX_LEAK_FILE_BYTES // 2**20} MiB; split it")
    async with rt.db.read() as session:
        report = await trace_leaks(rt.db, session, rt.vault, data, layout=layout)
    return LeakReportOut.of(report)


class QuarantineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=2000)


class QuarantineOut(BaseModel):
    batch_id: int
    quarantined_at: datetime
    already: bool
    voided: int
    held_by_unpaid_orders: int
    sold: int


@router.post("/batches/{batch_id}/quarantine")
async def quarantine_batch(rt: RuntimeDep, admin: StockWrite, batch_id: Id, body: QuarantineRequest) -> QuarantineOut:
    """Void the batch's unsold codes; codes released later from unpaid orders are voided too."""
    async with rt.db.transaction() as session:
        done = await custody.quarantine(rt.db, session, batch_id, actor=admin.actor, reason=body.reason, ip=admin.ip)
    return QuarantineOut(**vars(done))
