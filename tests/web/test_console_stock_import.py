"""Importing codes in the console with the server-side import's progress, and a SKU's batches and stock
as downloads.

The import answers one JSON object a line while it runs: the file received, the import's progress
after each chunk, and last the batches page with the result.
"""

import csv
import io
import json
from typing import Any

import httpx
from openpyxl import load_workbook
from tests.support.builders import given_sku, given_sku_with_codes, random_codes
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user, row_counts

from kaquan.inventory import importing
from kaquan.inventory.intake import parsing
from kaquan.runtime import Runtime

STOCK_TABLES = ("inventory_batches", "inventory_codes")


async def signed_in(rt: Runtime, client: httpx.AsyncClient, role: str = "operator") -> Console:
    await given_user(rt, role, role)
    return await console_sign_in(client, role)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def upload(lines: list[str]) -> dict[str, Any]:
    return {"file": ("codes.txt", "\n".join(lines).encode(), "text/plain")}


async def test_a_big_file_reports_each_chunk_stored_then_the_result_page(
    rt: Runtime, client: httpx.AsyncClient, monkeypatch: Any
) -> None:
    monkeypatch.setattr(importing, "COPY_CHUNK", 100)  # chunks of about 100 codes, read 1 KiB at a time
    monkeypatch.setattr(parsing, "READ_SIZE", 1024)
    await given_sku(rt, code="STREAM-1")
    console = await signed_in(rt, client)

    response = await console.post(
        "/admin/skus/STREAM-1/imports", {"unit_cost": "8.00"}, files=upload(random_codes(450))
    )

    assert response.status_code == 200
    got = events(response)
    assert got[0]["phase"] == "received" and got[0]["bytes"] > 0
    storing = [e for e in got if e["phase"] == "storing"]
    counts = [e["codes"] for e in storing]
    assert len(counts) >= 4 and counts == sorted(counts) and counts[-1] == 450
    percents = [e["percent"] for e in storing]
    assert percents == sorted(percents) and percents[0] < 100 and percents[-1] == 100
    done = got[-1]
    assert (done["phase"], done["status"]) == ("done", 200)
    assert 'data-imported="450"' in done["html"]


async def test_a_rejected_file_ends_with_the_problems_and_imports_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_sku(rt, code="STREAM-2")
    console = await signed_in(rt, client)
    before = await row_counts(rt)
    code = random_codes(1)[0]

    response = await console.post("/admin/skus/STREAM-2/imports", files=upload([code, "x", code]))

    done = events(response)[-1]
    assert (done["phase"], done["status"]) == ("done", 400)
    assert 'data-line="3"' in done["html"]
    after = await row_counts(rt)
    assert [after[t] for t in STOCK_TABLES] == [before[t] for t in STOCK_TABLES]


async def test_a_refusal_before_the_import_is_the_usual_error_page(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_sku(rt, code="STREAM-3")
    console = await signed_in(rt, client)
    before = await row_counts(rt)

    unknown = await console.post("/admin/skus/NO-SUCH/imports", files=upload(random_codes(2)))
    bad_cost = await console.post("/admin/skus/STREAM-3/imports", {"unit_cost": "8.999"}, files=upload(["A1"]))
    support = await signed_in(rt, client, "support")
    refused = await support.post("/admin/skus/STREAM-3/imports", files=upload(random_codes(2)))

    assert (unknown.status_code, bad_cost.status_code, refused.status_code) == (404, 400, 403)
    assert "text/html" in unknown.headers["content-type"]
    assert "unit_cost" in bad_cost.text
    after = await row_counts(rt)
    assert [after[t] for t in STOCK_TABLES] == [before[t] for t in STOCK_TABLES]


async def test_batches_and_stock_download_as_csv_and_xlsx_with_times_in_the_merchants_zone(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_sku_with_codes(rt, 3, code="EXP-B")
    console = await signed_in(rt, client, "support")

    batches = await console.get("/admin/skus/EXP-B/batches/export?format=csv")
    rows = list(csv.reader(io.StringIO(batches.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["批次", "仓库", "供应商", "数量"]
    assert rows[1][3] == "3"
    stock = await console.get("/admin/skus/EXP-B/stock/export?format=xlsx")
    sheet = load_workbook(io.BytesIO(stock.content)).active
    assert sheet is not None
    assert [c.value for c in next(sheet.iter_rows(min_row=2))] == ["main", 3, 0, 0, 0, 3]
    page = await console.get("/admin/skus/EXP-B/batches")
    assert "UTC+8" in page.text
