"""The SDK's settlement statements, against the real app: an agent lists, reads and downloads its own
confirmed statements (CSV, XLSX, PDF), and is refused anyone else's as the open API refuses them."""

import io

import pytest
from openpyxl import load_workbook
from tests.support.agents import agent_client, given_agent
from tests.support.settlement import TIERS, agent_buys, at_local, confirm, given_rule, given_selling_agent, run

from kaquan.client import ApiError, Statement
from kaquan.kit import clock
from kaquan.runtime import Runtime

NAME = "statement-{id}-agent-A001-2026-11-01-2026-11-30.{fmt}"


async def test_an_agent_lists_reads_and_downloads_its_statements_in_every_format(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    at_local(2026, 11, 10)
    number = await agent_buys(rt, agent, sku, 1, "N-1")
    at_local(2026, 12, 2)
    november = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    await confirm(rt, november.id)
    clock.reset()  # signatures are checked against the real time

    async with agent_client(rt, agent) as kq:
        listed = await kq.statements()
        one = await kq.statement(november.id)
        files = {fmt: await kq.statement_file(november.id, fmt) for fmt in ("csv", "xlsx", "pdf")}

    [summary] = listed
    assert isinstance(summary, Statement) and summary.lines is None
    assert (summary.id, summary.counterparty, summary.status, str(summary.first_day), str(summary.last_day)) == (
        november.id,
        "agent:A001",
        "confirmed",
        "2026-11-01",
        "2026-11-30",
    )
    assert summary.figures == one.figures and one.figures["commission_posted"] == 10_000
    assert summary.period_start.utcoffset() is not None and summary.confirmed_at is not None
    assert one.lines is not None
    [sale] = [line for line in one.lines if line.kind == "order"]
    assert (sale.order_no, sale.gross_minor, sale.amount_minor, sale.in_period, sale.settled) == (
        number,
        -1_000_000,
        -1_000_000,
        True,
        True,
    )
    assert {fmt: found.filename for fmt, found in files.items()} == {
        fmt: NAME.format(id=november.id, fmt=fmt) for fmt in files
    }
    assert files["csv"].media_type.startswith("text/csv")
    assert files["csv"].content.startswith("\ufeff".encode()) and "结算单" in files["csv"].content.decode("utf-8-sig")
    assert load_workbook(io.BytesIO(files["xlsx"].content), read_only=True).sheetnames == ["结算单", "明细"]
    assert files["pdf"].media_type == "application/pdf" and files["pdf"].content.startswith(b"%PDF")


async def test_a_draft_another_agents_statement_and_a_bad_request_are_refused(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    other = await given_agent(rt, code="B002")
    await given_rule(rt, "agent:A001", tiers=TIERS)
    at_local(2026, 11, 10)
    await agent_buys(rt, agent, sku, 1, "N-1")
    at_local(2026, 12, 2)
    november = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    draft = await run(rt, "agent:A001", "2026-10-01..2026-10-31")
    await confirm(rt, november.id)
    clock.reset()

    async with agent_client(rt, agent) as kq, agent_client(rt, other) as stranger:
        for refused in (
            kq.statement(draft.id),
            kq.statement_file(draft.id, "pdf"),
            stranger.statement(november.id),
            stranger.statement_file(november.id, "xlsx"),
        ):
            with pytest.raises(ApiError) as answer:
                await refused
            assert (answer.value.status, answer.value.code) == (404, "statement_not_found")
        assert await stranger.statements() == []
        with pytest.raises(ApiError) as answer:
            await kq.statements(limit=501)
        assert (answer.value.status, answer.value.code) == (422, "validation_error")
        with pytest.raises(ValueError, match="csv, xlsx, pdf"):
            await kq.statement_file(november.id, "doc")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="from 1"):
            await kq.statement(0)
