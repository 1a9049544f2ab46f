"""Finance's settlement API: rules, runs (statements), confirmation, exports and the check."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from kaquan import settlement
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import Int64
from kaquan.settlement.schemas import CheckOut, ConfirmOut, RuleIn, RuleOut, RunIn, RunOut
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api/settlement", tags=["settlement"], dependencies=JSON_ONLY)
FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
FinanceWrite = Annotated[Principal, require(Permission.FINANCE_WRITE)]


@router.get("/rules/{counterparty}")
async def rules(rt: RuntimeDep, admin: FinanceRead, counterparty: str) -> list[RuleOut]:
    async with rt.db.read() as session:
        await settlement.resolve(session, counterparty)
        return [RuleOut.of(counterparty, rule) for rule in await settlement.rules_of(session, counterparty)]


@router.post("/rules/{counterparty}", status_code=201)
async def set_rule(rt: RuntimeDep, admin: FinanceWrite, counterparty: str, body: RuleIn) -> RuleOut:
    async with rt.db.transaction() as session:
        rule = await settlement.set_rule(rt.db, session, counterparty, body.as_input(), actor=admin.actor)
        return RuleOut.of(counterparty, rule)


@router.post("/runs", status_code=201)
async def create_run(rt: RuntimeDep, admin: FinanceWrite, body: RunIn) -> RunOut:
    async with rt.db.transaction() as session:
        run = await settlement.create_run(rt.db, session, body.counterparty, body.period, actor=admin.actor)
        return RunOut.of(run)


@router.get("/runs")
async def list_runs(
    rt: RuntimeDep,
    admin: FinanceRead,
    counterparty: Annotated[str | None, Query(max_length=80)] = None,
    status: Annotated[str | None, Query(pattern="^(draft|confirmed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RunOut]:
    async with rt.db.read() as session:
        found = await settlement.list_runs(session, counterparty=counterparty, status=status, limit=limit)
        return [RunOut.of(run) for run in found]


@router.get("/runs/{run_id}")
async def get_run(rt: RuntimeDep, admin: FinanceRead, run_id: Int64) -> RunOut:
    async with rt.db.read() as session:
        run = await settlement.get_run(session, run_id)
        return RunOut.of(run, await settlement.lines_of(session, run.id))


@router.post("/runs/{run_id}/confirm")
async def confirm(rt: RuntimeDep, admin: FinanceWrite, run_id: Int64) -> ConfirmOut:
    async with rt.db.transaction() as session:
        done = await settlement.confirm(rt.db, session, run_id, actor=admin.actor)
        return ConfirmOut(run=RunOut.of(done.run), posted=done.posted)


FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the statement as a file",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media, _ in settlement.FORMATS.values()
        },
    }
}


@router.get("/runs/{run_id}/export", response_class=Response, responses=FILES)
async def export(
    rt: RuntimeDep, admin: FinanceRead, run_id: Int64, format: Annotated[str, Query(max_length=8)] = "csv"
) -> Response:
    async with rt.db.read() as session:
        found = await settlement.statement_file(session, await settlement.get_run(session, run_id), format)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


@router.get("/check")
async def check(rt: RuntimeDep, admin: FinanceRead) -> CheckOut:
    async with rt.db.read() as session:
        result = await settlement.check(session)
    return CheckOut(runs=result.runs, ok=result.ok, problems=result.problems)
