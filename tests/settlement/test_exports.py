"""A statement as CSV (BOM, Chinese headers), XLSX (readable) and PDF (Chinese text inside, no system fonts)."""

import csv
import io

import httpx
from openpyxl import load_workbook
from pypdf import PdfReader
from tests.support.settlement import TIERS, agent_buys, at_local, confirm, given_rule, given_selling_agent, run

from kaquan import settlement
from kaquan.channels import agents
from kaquan.runtime import Runtime


async def _confirmed_statement(rt: Runtime) -> settlement.SettlementRun:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=123_456)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    at_local(2026, 11, 10)
    await agent_buys(rt, agent, sku, 10, "N-1")
    at_local(2026, 12, 2)
    draft = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    return (await confirm(rt, draft.id)).run


async def _export(client: httpx.AsyncClient, headers: dict[str, str], run_id: int, fmt: str) -> httpx.Response:
    answer = await client.get(f"/admin/api/settlement/runs/{run_id}/export?format={fmt}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


async def test_the_csv_opens_in_chinese_excel_bom_and_chinese_headers_first(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    statement = await _confirmed_statement(rt)

    data = (await _export(client, admin_headers, statement.id, "csv")).content

    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["结算单 Statement", str(statement.id)]
    assert ["销售 Sales", "-¥12,345.60"] in rows
    assert ["返佣 Commissions", "¥123.46"] in rows  # 1 % of ¥12,345.60, half up
    header = rows.index(
        [
            "时间 Time",
            "类型 Kind",
            "订单号 Order no.",
            "金额 Amount",
            "手续费 Fee",
            "余额变动 Balance change",
            "结算 Settled",
        ]
    )
    assert rows[header + 1][0] == "2026-11-10 12:00:00" or rows[header + 1][0].startswith("2026-11-10 12:00")


async def test_the_xlsx_reads_back_with_its_two_sheets(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    statement = await _confirmed_statement(rt)

    book = load_workbook(io.BytesIO((await _export(client, admin_headers, statement.id, "xlsx")).content))

    assert book.sheetnames == ["结算单", "明细"]
    summary = {row[0]: row[1] for row in book["结算单"].iter_rows(values_only=True)}
    assert summary["期末余额 Closing balance"] == settlement.money(int(statement.figures["closing"]), "CNY")
    assert next(book["明细"].iter_rows(values_only=True))[0] == "时间 Time"


async def test_the_pdf_carries_the_chinese_text_without_any_font_file(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    statement = await _confirmed_statement(rt)

    data = (await _export(client, admin_headers, statement.id, "pdf")).content

    pages = PdfReader(io.BytesIO(data)).pages
    text = "".join(page.extract_text() for page in pages)
    assert "结算单" in text and "期末余额" in text and "返佣" in text
    assert "¥123.46" in text
    assert b"/STSong-Light" in data  # reportlab's built-in CID font, named, not embedded


async def test_an_unknown_format_is_refused(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    statement = await _confirmed_statement(rt)
    answer = await client.get(f"/admin/api/settlement/runs/{statement.id}/export?format=doc", headers=admin_headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_format"


async def test_a_reference_that_looks_like_a_formula_stays_text_in_csv_and_xlsx(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    at_local(2026, 10, 20)
    agent, _ = await given_selling_agent(rt)
    await given_rule(rt, "agent:A001")
    at_local(2026, 11, 10)
    async with rt.db.transaction() as session:
        await agents.top_up(rt.db, session, agent.id, 5_000, reference='=HYPERLINK("http://x.test")', actor="test")
    at_local(2026, 12, 2)
    draft = await run(rt, "agent:A001", "2026-11-01..2026-11-30")

    rows = list(
        csv.reader(io.StringIO((await _export(client, admin_headers, draft.id, "csv")).content.decode("utf-8-sig")))
    )
    book = load_workbook(io.BytesIO((await _export(client, admin_headers, draft.id, "xlsx")).content))

    assert any(row[2] == '\'=HYPERLINK("http://x.test")' for row in rows if len(row) > 2)
    cell = book["明细"]["C2"]
    assert (cell.data_type, cell.value) == ("s", '\'=HYPERLINK("http://x.test")')
