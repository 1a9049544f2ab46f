"""对账 in the admin API: upload a statement, match a period, work off the differences, save column mappings.

Reading needs finance.read, every change finance.write. An upload is read only
after its credential and permission were checked (web.limits), up to the upload
cap; the file is stored in one transaction, so a rejected file (422
`statement_rejected`, naming the line and column) leaves nothing behind.
"""

import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kaquan import reconciliation
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import BigRowId
from kaquan.kit.errors import BadInput
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api/reconciliation", tags=["reconciliation"], dependencies=JSON_ONLY)
CSV_PAGE = 1000

FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
FinanceWrite = Annotated[Principal, require(Permission.FINANCE_WRITE)]
ClassName = reconciliation.ClassName
StateName = reconciliation.StateName
ResolutionName = reconciliation.Resolution
SourceText = Annotated[str, Query(max_length=64, description="wechatpay, alipay, …")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- statements -----------------------------------------------------------------------------------


class ImportOut(BaseModel):
    """What became of the file. `already_imported`: the same file was stored before; nothing changed."""

    statement_id: int
    source: str
    account: str
    lines_read: int
    lines_new: int
    lines_known: int = Field(description="stored before, by an overlapping statement")
    lines_repeated: int = Field(description="an identity seen earlier in the same file: a duplicate line")
    already_imported: bool


class StatementsPage(BaseModel):
    statements: list[reconciliation.StatementView]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


async def import_upload(rt: RuntimeDep, admin: Principal, file: UploadFile, source: str) -> ImportOut:
    """Shared by the API and the console: the uploaded statement stored in one transaction."""
    reconciliation.checked_source(source)
    async with rt.db.transaction() as session:
        result = await reconciliation.import_file(
            rt.db, session, source, file.file, filename=file.filename or "statement", actor=admin.actor
        )
    return ImportOut(**vars(result))


@router.post("/statements", status_code=201)
async def upload_statement(
    rt: RuntimeDep,
    admin: FinanceWrite,
    file: Annotated[UploadFile, File(description="the statement as downloaded from the counterparty")],
    source: Annotated[str, Form(max_length=64, description=reconciliation.SOURCE_HELP)],
) -> ImportOut:
    """Import a statement (导入对账单): each line stored once; the same file again changes nothing."""
    return await import_upload(rt, admin, file, source)


@router.get("/statements")
async def list_statements(
    rt: RuntimeDep,
    admin: FinanceRead,
    source: SourceText | None = None,
    before_id: BigRowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StatementsPage:
    """The statements imported, newest first."""
    async with rt.db.read() as session:
        rows = await reconciliation.list_statements(session, source=source, before_id=before_id, limit=limit)
    return StatementsPage(
        statements=rows,
        next_before_id=rows[-1].id if len(rows) == limit else None,
    )


# --- matching -------------------------------------------------------------------------------------


class MatchIn(_Body):
    source: str = Field(max_length=64, description=reconciliation.SOURCE_HELP)
    first_day: date = Field(strict=False)
    last_day: date | None = Field(default=None, strict=False, description="default: first_day")


class MatchOut(BaseModel):
    source: str
    first_day: date
    last_day: date
    counts: dict[str, int] = Field(
        description="items of each class in the period, after matching; `matched` counts the matched pairs too"
    )
    differences: int = Field(description="items that need finance (every class but matched and timing)")


@router.post("/match")
async def match_period(rt: RuntimeDep, admin: FinanceWrite, body: MatchIn) -> MatchOut:
    """Match the period's statement lines with kaquan's payments and refunds (自动对账)."""
    last_day = body.last_day or body.first_day
    if (last_day - body.first_day).days > 92:
        raise BadInput("match at most 93 days at a time", first_day=str(body.first_day), last_day=str(last_day))
    async with rt.db.transaction() as session:
        summary = await reconciliation.match_period(
            rt.db, session, source=body.source, first_day=body.first_day, last_day=last_day
        )
    return MatchOut(
        source=summary.source,
        first_day=summary.first_day,
        last_day=summary.last_day,
        counts=summary.counts,
        differences=summary.differences,
    )


# --- the worklist ---------------------------------------------------------------------------------


class DifferenceOut(BaseModel):
    """One item: a statement line, a kaquan record, or the pair of them, in one class. Amounts in minor units."""

    id: int
    source: str
    business_day: date
    class_: ClassName = Field(serialization_alias="class")
    class_words: str = Field(description="the class in words, zh-CN then English")
    state: StateName
    currency: str
    record_kind: str | None
    record_ref: str | None
    expected_minor: int | None = Field(description="kaquan's amount")
    found_minor: int | None = Field(description="the statement's amount")
    expected_fee_minor: int | None
    found_fee_minor: int | None
    expected_status: str | None
    found_status: str | None
    line_kind: str | None
    line_id: int | None
    line_no: int | None
    line_identity: str | None
    line_merchant_ref: str | None
    line_counterparty_ref: str | None
    line_occurred_at: datetime | None
    statement_id: int | None
    note: str
    resolution: ResolutionName | None
    decided_by: str | None
    decided_at: datetime | None
    ledger_reference: str | None

    @classmethod
    def of(cls, item: reconciliation.DifferenceView) -> "DifferenceOut":
        fields = {name: getattr(item, name) for name in cls.model_fields if name != "class_words"}
        return cls(**fields, class_words=reconciliation.words(reconciliation.CLASS_WORDS, item.class_))


class DifferencesPage(BaseModel):
    items: list[DifferenceOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page")


class AnnotateIn(_Body):
    note: str = Field(min_length=1, max_length=1000)


class ResolveIn(_Body):
    resolution: ResolutionName
    note: str = Field(default="", max_length=1000)


class Filters(BaseModel):
    source: str | None
    first_day: date | None
    last_day: date | None
    classes: tuple[str, ...] | None
    states: tuple[str, ...] | None


def _filters(
    source: SourceText | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    klass: Annotated[list[ClassName] | None, Query(alias="class", description="repeatable")] = None,
    state: Annotated[list[StateName] | None, Query(description="repeatable; default open and annotated")] = None,
) -> Filters:
    if first_day and last_day and last_day < first_day:
        raise BadInput("last_day is before first_day", first_day=str(first_day), last_day=str(last_day))
    return Filters(
        source=source,
        first_day=first_day,
        last_day=last_day,
        classes=tuple(klass) if klass else None,
        states=tuple(state) if state else reconciliation.OPEN_STATES,
    )


FiltersDep = Annotated[Filters, Depends(_filters)]


async def _page(rt: RuntimeDep, where: Filters, *, after_id: int, limit: int) -> list[reconciliation.DifferenceView]:
    async with rt.db.read() as session:
        return await reconciliation.list_differences(
            session,
            source=where.source,
            first_day=where.first_day,
            last_day=where.last_day,
            classes=where.classes,
            states=where.states,
            after_id=after_id,
            limit=limit,
        )


@router.get("/differences")
async def list_differences(
    rt: RuntimeDep,
    admin: FinanceRead,
    where: FiltersDep,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DifferencesPage:
    """The worklist (差异清单), by id; by default the items still waiting for finance."""
    items = await _page(rt, where, after_id=after_id, limit=limit)
    return DifferencesPage(
        items=[DifferenceOut.of(item) for item in items],
        next_after_id=items[-1].id if len(items) == limit else None,
    )


class CsvResponse(StreamingResponse):
    """Documents the answer as text/csv in the OpenAPI document."""

    media_type = "text/csv"


def worklist_csv(rt: RuntimeDep, where: Filters) -> CsvResponse:
    """The filtered worklist as CSV (UTF-8 with BOM, for Chinese Excel), streamed a page at a time."""

    async def chunks() -> AsyncIterator[str]:
        yield reconciliation.csv_text([], header=True)
        after = 0
        while True:
            items = await _page(rt, where, after_id=after, limit=CSV_PAGE)
            if not items:
                return
            yield reconciliation.csv_text(reconciliation.csv_row(item) for item in items)
            after = items[-1].id

    return CsvResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="reconciliation.csv"'},
    )


@router.get("/differences.csv", response_class=CsvResponse)
async def differences_csv(rt: RuntimeDep, admin: FinanceRead, where: FiltersDep) -> CsvResponse:
    """The filtered worklist as CSV for Excel (UTF-8 with BOM; amounts as ¥12.34, times in Beijing time)."""
    return worklist_csv(rt, where)


@router.get("/differences/{item_id}")
async def get_difference(rt: RuntimeDep, admin: FinanceRead, item_id: BigRowId) -> DifferenceOut:
    async with rt.db.read() as session:
        return DifferenceOut.of(await reconciliation.get_difference(session, item_id))


@router.post("/differences/{item_id}/annotate")
async def annotate(rt: RuntimeDep, admin: FinanceWrite, item_id: BigRowId, body: AnnotateIn) -> DifferenceOut:
    """Attach a note (audited); an open item becomes annotated and re-matching keeps it."""
    async with rt.db.transaction() as session:
        item = await reconciliation.annotate(rt.db, session, item_id, note=body.note, actor=admin.actor)
    return DifferenceOut.of(item)


@router.post("/differences/{item_id}/resolve")
async def resolve(rt: RuntimeDep, admin: FinanceWrite, item_id: BigRowId, body: ResolveIn) -> DifferenceOut:
    """Resolve an item (audited); accept_statement and write_off post the adjustment to the ledger, once.

    The same resolution again answers the item as it is; another one is 409 `reconciliation_already_resolved`.
    """
    async with rt.db.transaction() as session:
        item = await reconciliation.resolve(
            rt.db, session, item_id, resolution=body.resolution, note=body.note, actor=admin.actor
        )
    return DifferenceOut.of(item)


# --- saved column mappings ------------------------------------------------------------------------


class MappingOut(BaseModel):
    name: str
    mapping: dict[str, Any]
    saved_by: str
    saved_at: datetime


@router.get("/mappings")
async def list_mappings(rt: RuntimeDep, admin: FinanceRead) -> list[MappingOut]:
    async with rt.db.read() as session:
        return [MappingOut(**vars(row)) for row in await reconciliation.list_mappings(session)]


@router.get("/mappings/{name}")
async def get_mapping(rt: RuntimeDep, admin: FinanceRead, name: Annotated[str, Path(max_length=48)]) -> MappingOut:
    async with rt.db.read() as session:
        return MappingOut(**vars(await reconciliation.get_mapping(session, name)))


@router.put("/mappings/{name}")
async def save_mapping(
    rt: RuntimeDep,
    admin: FinanceWrite,
    name: Annotated[str, Path(max_length=48)],
    mapping: Annotated[dict[str, Any], Body(description="a statements.ColumnMapping as JSON")],
) -> MappingOut:
    """Save (or replace) the column mapping of the generic source `generic:<name>` (audited)."""
    async with rt.db.transaction() as session:
        saved = await reconciliation.save_mapping(rt.db, session, name, json.dumps(mapping), actor=admin.actor)
    return MappingOut(**vars(saved))


# --- the daily bill job ---------------------------------------------------------------------------


class BillFetchOut(BaseModel):
    id: int
    gateway: str
    day: date
    state: Literal["waiting", "done", "failed"]
    attempts: int
    next_at: datetime
    last_error: str
    statement_id: int | None
    lines_new: int | None
    differences: int | None
    updated_at: datetime


@router.get("/bill-fetches")
async def list_bill_fetches(
    rt: RuntimeDep, admin: FinanceRead, limit: Annotated[int, Query(ge=1, le=500)] = 30
) -> list[BillFetchOut]:
    """The worker's daily bill fetches, newest day first: done, waiting for the next try, or failed."""
    async with rt.db.read() as session:
        return [BillFetchOut(**vars(row)) for row in await reconciliation.list_fetches(session, limit=limit)]


@router.post("/bill-fetches/{fetch_id}/retry")
async def retry_bill_fetch(rt: RuntimeDep, admin: FinanceWrite, fetch_id: BigRowId) -> BillFetchOut:
    """Try a waiting or failed fetch again on the worker's next pass (audited); a done one stays as it is."""
    async with rt.db.transaction() as session:
        return BillFetchOut(**vars(await reconciliation.retry_fetch(rt.db, session, fetch_id, actor=admin.actor)))
