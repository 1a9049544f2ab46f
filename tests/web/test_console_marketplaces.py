"""Marketplaces in the console: add a store (its secret shown once), import an order file and read its results,
download the deliveries only with codes.reveal, refund a marketplace order; refusals are pages that change nothing."""

import io
import secrets

import httpx
from openpyxl import load_workbook
from sqlalchemy import func, select
from tests.support.aftersale import audited
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user
from tests.support.marketplace import given_store_selling, order_file

from kaquan.channels import marketplace
from kaquan.orders.models import Order
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


async def signed_in(rt: Runtime, client: httpx.AsyncClient, username: str, role: str) -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def import_via(console: Console, data: bytes, *, store: str = "tmall", answer: str = "page") -> httpx.Response:
    form = {"csrf_token": console.csrf, "store": store, "answer": answer}
    files = {"file": ("orders.csv", data, "text/csv")}
    return await console.client.post(
        "/admin/marketplaces/order-files", data=form, files=files, headers={"Accept": "text/html"}
    )


async def marketplace_orders(rt: Runtime) -> int:
    async with rt.db.read() as session:
        stmt = select(func.count()).where(Order.channel.like("marketplace:%"))
        return int((await session.execute(stmt)).scalar_one())


def some_codes(n: int) -> list[str]:
    return [f"MKT-{secrets.token_hex(6)}" for _ in range(n)]


async def test_an_operator_adds_a_store_and_sees_its_push_secret_once(rt: Runtime, client: httpx.AsyncClient) -> None:
    olga = await signed_in(rt, client, "olga", "operator")

    added = await olga.post("/admin/marketplaces", {"store": "jd-1", "name": "京东旗舰店", "fee": "2.5"})
    later = await olga.get("/admin/marketplaces")

    async with rt.db.read() as session:
        secret = await marketplace.reveal_secret(rt.db, session, rt.keyring, "jd-1", actor="test")
        [store] = await marketplace.list_stores(session)
    assert added.status_code == 201 and secret in added.text and added.headers["cache-control"] == "no-store"
    assert secret not in later.text and "京东旗舰店" in later.text and "2.50%" in later.text and "销售中" in later.text
    assert (store.code, store.fee_rate_bp) == ("marketplace:jd-1", 250)
    assert await audited(rt, "marketplace.store_added") == 1


async def test_an_order_file_is_imported_and_its_results_are_shown_and_downloadable(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_store_selling(rt, some_codes(5), price_minor=1000)
    olga = await signed_in(rt, client, "olga", "operator")
    data = order_file(f"TM-1,{sku.code},2", f"TM-2,{sku.code},1")

    shown = await import_via(olga, data)
    again = await import_via(olga, data, answer="xlsx")

    assert shown.status_code == 200, shown.text
    assert 'data-outcome="placed"' in shown.text and "已下单" in shown.text and "已发货" in shown.text
    assert "MKT-" not in shown.text  # the page never shows a code
    [sheet] = load_workbook(io.BytesIO(again.content)).worksheets
    rows = list(sheet.values)
    assert rows[0][0] == "行号" and [row[4] for row in rows[1:]] == ["之前已导入", "之前已导入"]
    assert await marketplace_orders(rt) == 2


async def test_the_deliveries_file_needs_codes_reveal_and_names_who_downloaded_it(rt: Runtime) -> None:
    sku = await given_store_selling(rt, some_codes(5))
    data = order_file(f"TM-1,{sku.code},2")
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as one,
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as two,
    ):
        olga = await signed_in(rt, one, "olga", "operator")
        owen = await signed_in(rt, two, "owen", "owner")

        page = await olga.get("/admin/marketplaces")
        refused = await import_via(olga, data, answer="deliveries")
        assert 'value="deliveries"' not in page.text
        assert refused.status_code == 403 and await marketplace_orders(rt) == 0

        delivered = await import_via(owen, data, answer="deliveries")

    text = delivered.content.decode("utf-8-sig")
    assert text.splitlines()[0] == "marketplace_order_id,order_no,card_no,secret,expires_on"
    assert len(text.splitlines()) == 3 and text.count("MKT-") == 2
    assert await audited(rt, "marketplace.deliveries_downloaded") == 1


async def test_a_bad_order_file_names_every_bad_line_and_places_nothing(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_store_selling(rt, some_codes(5))
    olga = await signed_in(rt, client, "olga", "operator")

    refused = await import_via(olga, order_file(f"TM-1,{sku.code},2", "TM-2,NO-SUCH,1", f"TM-3,{sku.code},x"))
    empty = await import_via(olga, b"")
    unknown = await import_via(olga, order_file(f"TM-1,{sku.code},1"), store="nowhere")

    assert refused.status_code == 400 and 'data-line="3"' in refused.text and 'data-line="4"' in refused.text
    assert 'data-line="2"' not in refused.text and "未下任何订单" in refused.text
    assert empty.status_code == 400 and unknown.status_code == 404 and "<html" in unknown.text
    assert await marketplace_orders(rt) == 0


async def test_finance_refunds_a_marketplace_order_and_it_is_listed(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_store_selling(rt, some_codes(5), price_minor=1000)
    fiona = await signed_in(rt, client, "fiona", "finance")
    async with rt.db.read() as session:
        lines = await marketplace.order_files.check_order_file(
            session, "tmall", order_file(f"TM-9,{sku.code},2"), max_per_order=10
        )
    [line] = await marketplace.order_files.import_orders(rt.db, rt.vault, "tmall", lines)

    page = await fiona.get("/admin/marketplaces")
    unreasoned = await fiona.post(
        "/admin/marketplaces/refunds", {"store": "tmall", "marketplace_order_id": "TM-9", "reason": " "}
    )
    unknown = await fiona.post(
        "/admin/marketplaces/refunds", {"store": "tmall", "marketplace_order_id": "TM-404", "reason": "x"}
    )
    done = await fiona.post(
        "/admin/marketplaces/refunds", {"store": "tmall", "marketplace_order_id": "TM-9", "reason": "买家退货"}
    )
    twice = await fiona.post(
        "/admin/marketplaces/refunds", {"store": "tmall", "marketplace_order_id": "TM-9", "reason": "again"}
    )

    assert 'id="refund-form"' in page.text and 'id="import-form"' not in page.text  # finance reads stores only
    assert unreasoned.status_code == 400 and unknown.status_code == 400
    assert done.headers["location"] == f"/admin/marketplaces?refunded={line.order_no}"
    assert twice.status_code == 409 and "<html" in twice.text
    listed = await fiona.get(done.headers["location"])
    assert "买家退货" in listed.text and "¥20.00" in listed.text and "TM-9" in listed.text
    refunds_csv = (await fiona.get("/admin/marketplaces?list=refunds&format=csv")).content
    assert refunds_csv.startswith("\ufeff".encode()) and "买家退货" in refunds_csv.decode("utf-8-sig")
    async with rt.db.read() as session:
        order = (await session.execute(select(Order).where(Order.number == line.order_no))).scalar_one()
    assert order.status == "refunded" and await audited(rt, "marketplace_order.refunded") == 1


async def test_operators_and_support_may_not_refund_and_support_may_not_add_stores(rt: Runtime) -> None:
    await given_store_selling(rt, some_codes(2))
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as one,
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as two,
    ):
        olga = await signed_in(rt, one, "olga", "operator")
        sam = await signed_in(rt, two, "sam", "support")

        olga_page = await olga.get("/admin/marketplaces")
        olga_refund = await olga.post(
            "/admin/marketplaces/refunds", {"store": "tmall", "marketplace_order_id": "X", "reason": "x"}
        )
        sam_page = await sam.get("/admin/marketplaces")
        sam_add = await sam.post("/admin/marketplaces", {"store": "pdd", "name": "拼多多"})

    assert 'id="refund-form"' not in olga_page.text and olga_refund.status_code == 403
    assert 'id="add-store"' not in sam_page.text and sam_add.status_code == 403
    async with rt.db.read() as session:
        assert [c.code for c in await marketplace.list_stores(session)] == ["marketplace:tmall"]


async def test_bad_store_forms_are_error_pages_that_change_nothing(rt: Runtime, client: httpx.AsyncClient) -> None:
    olga = await signed_in(rt, client, "olga", "operator")

    for form in (
        {"store": "Bad Store", "name": "x"},
        {"store": "ok", "name": "x", "fee": "101"},
        {"store": "ok", "name": "x", "fee": "2.555"},
        {"store": "ok", "name": " "},
    ):
        refused = await olga.post("/admin/marketplaces", form)
        assert refused.status_code == 400 and "<html" in refused.text, form
    olga.csrf = "forged"
    assert (await olga.post("/admin/marketplaces", {"store": "ok", "name": "x"})).status_code == 403

    async with rt.db.read() as session:
        assert await marketplace.list_stores(session) == []
