"""Warehouses in the console: an operator adds a warehouse, moves stock into it and sets a refill rule; stock
per warehouse adds up on the page and in the downloads; support only reads; bad forms change nothing."""

import io

import httpx
from openpyxl import load_workbook
from tests.support.aftersale import audited
from tests.support.builders import given_sku_with_codes
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user

from kaquan.inventory import refills, stock, warehouses
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


async def signed_in(rt: Runtime, client: httpx.AsyncClient, username: str, role: str) -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def stock_by_warehouse(rt: Runtime) -> dict[str, int]:
    async with rt.db.read() as session:
        return {row.warehouse: row.available for row in await stock(session)}


async def test_an_operator_adds_a_warehouse_moves_stock_into_it_and_sets_a_refill_rule(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    olga = await signed_in(rt, client, "olga", "operator")

    added = await olga.post("/admin/warehouses", {"code": "backup", "name": "备用仓", "kind": "own"})
    moved = await olga.post(
        "/admin/warehouses/transfers",
        {"sku": sku.code, "from_warehouse": "main", "to_warehouse": "backup", "units": "3", "reason": "双十二备货"},
    )
    ruled = await olga.post(
        "/admin/warehouses/refill-rules",
        {"sku": sku.code, "warehouse": "backup", "source_warehouse": "main", "threshold": "5", "refill_units": "2"},
    )

    assert [r.headers["location"] for r in (added, moved, ruled)] == [
        "/admin/warehouses?done=warehouse",
        "/admin/warehouses?done=transfer",
        "/admin/warehouses?done=rule",
    ]
    assert await stock_by_warehouse(rt) == {"main": 7, "backup": 3}
    shown = await olga.get("/admin/warehouses?done=rule")
    assert "补货规则已保存" in shown.text and "双十二备货" in shown.text and "启用" in shown.text
    assert 'data-warehouse="backup"' in shown.text and "UTC+8" in shown.text
    assert [await audited(rt, a) for a in ("warehouse.created", "stock.transferred", "refill_rule.set")] == [1, 1, 1]

    async with rt.db.read() as session:
        [rule] = await refills.list_rules(session)
    disabled = await olga.post(f"/admin/warehouses/refill-rules/{rule.id}/disable")
    assert disabled.headers["location"] == "/admin/warehouses?done=disabled"
    assert "已停用" in (await olga.get("/admin/warehouses")).text


async def test_every_list_downloads_as_csv_and_xlsx(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 4)
    olga = await signed_in(rt, client, "olga", "operator")
    await olga.post("/admin/warehouses", {"code": "agent-7", "name": "代理七号", "kind": "consignment"})
    await olga.post(
        "/admin/warehouses/transfers",
        {"sku": sku.code, "from_warehouse": "main", "to_warehouse": "agent-7", "units": "1", "reason": "寄售"},
    )

    for name in ("stock", "warehouses", "transfers", "rules"):
        csv_file = await olga.get(f"/admin/warehouses?list={name}&format=csv")
        xlsx_file = await olga.get(f"/admin/warehouses?list={name}&format=xlsx")
        assert csv_file.status_code == xlsx_file.status_code == 200, name
        assert csv_file.content.startswith("\ufeff".encode()), name
        assert load_workbook(io.BytesIO(xlsx_file.content)).worksheets[0].max_row >= 1
    warehouses_csv = (await olga.get("/admin/warehouses?list=warehouses&format=csv")).content.decode("utf-8-sig")
    assert "寄售" in warehouses_csv and "consignment" not in warehouses_csv
    stock_csv = (await olga.get("/admin/warehouses?list=stock&format=csv")).content.decode("utf-8-sig")
    assert f"{sku.code},agent-7,1," in stock_csv and f"{sku.code},main,3," in stock_csv


async def test_bad_forms_are_error_pages_that_change_nothing(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 3)
    olga = await signed_in(rt, client, "olga", "operator")
    await olga.post("/admin/warehouses", {"code": "backup", "name": "备用仓"})
    transfer = {"sku": sku.code, "from_warehouse": "main", "to_warehouse": "backup", "units": "1", "reason": "r"}
    rule = {"sku": sku.code, "warehouse": "backup", "source_warehouse": "main", "threshold": "2", "refill_units": "1"}

    refusals = [
        ("/admin/warehouses", {"code": "bad code!", "name": "x"}),
        ("/admin/warehouses", {"code": "backup", "name": "again"}),
        ("/admin/warehouses", {"code": "x1", "name": "x", "kind": "own", "consignee": "not consignment"}),
        ("/admin/warehouses/transfers", transfer | {"units": "4"}),
        ("/admin/warehouses/transfers", transfer | {"units": "-1"}),
        ("/admin/warehouses/transfers", transfer | {"units": "lots"}),
        ("/admin/warehouses/transfers", transfer | {"reason": " "}),
        ("/admin/warehouses/transfers", transfer | {"to_warehouse": "main"}),
        ("/admin/warehouses/transfers", transfer | {"to_warehouse": "nowhere"}),
        ("/admin/warehouses/refill-rules", rule | {"threshold": "0"}),
        ("/admin/warehouses/refill-rules", rule | {"source_warehouse": "backup"}),
        ("/admin/warehouses/refill-rules/999/disable", {}),
    ]
    for path, form in refusals:
        refused = await olga.post(path, form)
        assert 400 <= refused.status_code < 500 and "<html" in refused.text, (path, form, refused.status_code)

    assert await stock_by_warehouse(rt) == {"main": 3}
    async with rt.db.read() as session:
        assert [w.code for w in await warehouses.list_warehouses(session)] == ["main", "backup"]
        assert await refills.list_rules(session) == []


async def test_support_reads_stock_but_sees_no_forms_and_is_refused_changes(rt: Runtime) -> None:
    await given_sku_with_codes(rt, 3)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as one:
        sam = await signed_in(rt, one, "sam", "support")

        shown = await sam.get("/admin/warehouses")
        refused = await sam.post("/admin/warehouses", {"code": "backup", "name": "x"})

    assert shown.status_code == 200 and 'id="stock"' in shown.text and 'id="nav-warehouses"' in shown.text
    assert all(form not in shown.text for form in ('id="create-warehouse"', 'id="transfer-form"', 'id="rule-form"'))
    assert refused.status_code == 403 and "<html" in refused.text
    async with rt.db.read() as session:
        assert [w.code for w in await warehouses.list_warehouses(session)] == ["main"]


async def test_a_form_without_the_csrf_token_is_refused(rt: Runtime, client: httpx.AsyncClient) -> None:
    olga = await signed_in(rt, client, "olga", "operator")
    olga.csrf = "forged"

    refused = await olga.post("/admin/warehouses", {"code": "backup", "name": "x"})

    assert refused.status_code == 403
    async with rt.db.read() as session:
        assert [w.code for w in await warehouses.list_warehouses(session)] == ["main"]
