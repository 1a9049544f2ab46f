"""The console's order list and order actions over HTTP: recent orders without a search, filters, paging,
downloads read back, cancelling an unpaid order and writing a note, each by a role that may and one that may not."""

import csv
import io
import secrets
from datetime import datetime, timedelta

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from tests.support.aftersale import given_shop_order
from tests.support.builders import TEST_CLIENT, GivenSku, given_sku_with_codes, pay, place_order, stock_of
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user

from kaquan.audit.models import AuditEntry
from kaquan.kit import clock
from kaquan.orders import service as orders
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


async def signed_in(rt: Runtime, client: httpx.AsyncClient, username: str, role: str) -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def given_order(rt: Runtime, sku: GivenSku, *, channel: str = "shop", contact: str = "") -> str:
    """An unpaid order of `channel` for `contact`; returns its number."""
    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(
                sku=sku.id,
                quantity=1,
                idempotency_key=secrets.token_hex(8),
                client_token=TEST_CLIENT,
                channel=channel,
                contact=contact,
            ),
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )
    return placed.order.number


def listed(page: httpx.Response) -> list[str]:
    """The order numbers a list page shows, top to bottom."""
    return [part.split('"', 1)[0] for part in page.text.split('data-order="')[1:]]


async def test_the_list_shows_recent_orders_newest_first_without_a_search(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 5, code="LIST-1")
    numbers = [await given_order(rt, sku, contact=f"b{n}@example.com") for n in range(3)]
    sam = await signed_in(rt, client, "sam", "support")

    page = await sam.get("/admin/orders")

    assert page.status_code == 200
    assert listed(page) == numbers[::-1]
    assert "待支付" in page.text and ">pending_payment<" not in page.text
    assert "¥19.90" in page.text and "UTC+8" in page.text


async def test_pages_follow_each_other_by_the_last_id_and_keep_the_filters(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 6, code="PAGE-1")
    numbers = [await given_order(rt, sku) for _ in range(5)][::-1]
    sam = await signed_in(rt, client, "sam", "support")

    first = await sam.get("/admin/orders?per_page=2&sku=PAGE-1")
    assert listed(first) == numbers[:2]
    nxt = first.text.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "sku=PAGE-1" in nxt and "per_page=2" in nxt
    second = await sam.get(nxt)
    assert listed(second) == numbers[2:4]
    third = await sam.get(
        second.text.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    )
    assert listed(third) == numbers[4:]
    assert 'id="next-page"' not in third.text


async def test_each_filter_narrows_the_list(rt: Runtime, client: httpx.AsyncClient) -> None:
    one, two = await given_sku_with_codes(rt, 5, code="FIL-1"), await given_sku_with_codes(rt, 5, code="FIL-2")
    ann = await given_order(rt, one, contact="Ann@Example.com")
    api = await given_order(rt, two, channel="api", contact="bo@example.com")
    paid_number, _, token = await place_order(rt, one)
    assert await pay(rt, token) == "delivered"
    sam = await signed_in(rt, client, "sam", "support")
    today = clock.now().astimezone(rt.settings.zone()).date()

    async def shown(query: str) -> set[str]:
        page = await sam.get(f"/admin/orders?{query}")
        assert page.status_code == 200, page.text
        return set(listed(page))

    assert await shown("status=delivered") == {paid_number}
    assert await shown("status=pending_payment") == {ann, api}
    assert await shown("channel=api") == {api}
    assert await shown("sku=FIL-2") == {api}
    assert await shown("contact=ann%40example.com") == {ann}
    assert await shown(f"q={ann}") == {ann}
    assert await shown(f"date_from={today}&date_to={today}") == {ann, api, paid_number}
    assert await shown(f"date_to={today - timedelta(days=1)}") == set()
    assert await shown(f"date_from={today + timedelta(days=1)}") == set()
    assert await shown("status=pending_payment&channel=shop&sku=FIL-1") == {ann}


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("status=shipped", 400, "unknown_order_status"),
        ("sku=NO-SUCH-SKU", 404, "sku_not_found"),
        ("date_from=2026-02-30", 400, "bad_input"),
        ("date_from=2026-12-06&date_to=2026-12-01", 400, "bad_date_range"),
    ],
)
async def test_a_bad_filter_is_an_error_page_not_an_empty_list(
    rt: Runtime, client: httpx.AsyncClient, query: str, status: int, code: str
) -> None:
    sam = await signed_in(rt, client, "sam", "support")

    for path in (f"/admin/orders?{query}", f"/admin/orders.csv?{query}", f"/admin/orders.xlsx?{query}"):
        page = await sam.get(path)
        assert page.status_code == status, (path, page.text)
        assert f'data-code="{code}"' in page.text


@pytest.mark.parametrize("query", ["per_page=0", "per_page=1000", "before_id=-1", "before_id=abc"])
async def test_a_page_size_or_cursor_out_of_bounds_is_refused(
    rt: Runtime, client: httpx.AsyncClient, query: str
) -> None:
    sam = await signed_in(rt, client, "sam", "support")

    page = await sam.get(f"/admin/orders?{query}")

    assert page.status_code == 422 and 'data-code="validation_error"' in page.text


async def test_an_unknown_download_format_is_refused(rt: Runtime, client: httpx.AsyncClient) -> None:
    sam = await signed_in(rt, client, "sam", "support")

    assert (await sam.get("/admin/orders.pdf")).status_code == 422


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def read_xlsx(body: bytes) -> list[list[object]]:
    sheet = load_workbook(io.BytesIO(body), read_only=True).active
    assert sheet is not None
    return [list(row) for row in sheet.iter_rows(values_only=True)]


async def test_the_filtered_list_downloads_as_csv_and_xlsx(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 5, code="EXP-1")
    kept = await given_order(rt, sku, contact="=cmd|' /C calc'!A0")
    await given_order(rt, sku, channel="api")
    sam = await signed_in(rt, client, "sam", "support")
    page = await sam.get("/admin/orders?channel=shop")
    assert 'href="/admin/orders.csv?channel=shop"' in page.text
    assert 'href="/admin/orders.xlsx?channel=shop"' in page.text and "导出 XLSX" in page.text

    as_csv = await sam.get("/admin/orders.csv?channel=shop")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "orders-" in as_csv.headers["content-disposition"]
    header, *rows = read_csv(as_csv.content)
    assert header[:4] == ["订单号", "状态", "渠道", "SKU"] and header[10] == "下单时间（Asia/Shanghai）"
    assert [row[:4] for row in rows] == [[kept, "待支付", "网店", "EXP-1"]]
    assert rows[0][6:10] == ["¥19.90", "¥19.90", "CNY", "'=cmd|' /C calc'!A0"]

    as_xlsx = await sam.get("/admin/orders.xlsx?channel=shop")
    assert as_xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    header_x, *rows_x = read_xlsx(as_xlsx.content)
    assert header_x[:4] == ["订单号", "状态", "渠道", "SKU"]
    assert [row[:4] for row in rows_x] == [[kept, "待支付", "网店", "EXP-1"]]
    placed_at = rows_x[0][10]
    async with rt.db.read() as session:
        order = await orders.by_number(session, kept)
    local = order.created_at.astimezone(rt.settings.zone()).replace(tzinfo=None)
    assert isinstance(placed_at, datetime) and abs(placed_at - local) < timedelta(seconds=1)


async def test_downloads_follow_the_language(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await given_order(rt, sku, channel="api")
    sam = await signed_in(rt, client, "sam", "support")
    client.cookies.set("lang", "en")

    header, row = read_csv((await sam.get("/admin/orders.csv")).content)

    assert header[:3] == ["Number", "Status", "Channel"]
    assert row[1:3] == ["Awaiting payment", "Agent API"]


async def test_support_cancels_an_unpaid_order_its_codes_return_and_the_trail_says_who(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number = await given_order(rt, sku)
    assert (await stock_of(rt, sku)).available == 2
    sam = await signed_in(rt, client, "sam", "support")
    detail = await sam.get(f"/admin/orders/{number}")
    assert 'id="cancel-form"' in detail.text

    done = await sam.post(f"/admin/orders/{number}/cancel", {"reason": "buyer asked by phone"})

    assert (done.status_code, done.headers["location"]) == (303, f"/admin/orders/{number}?done=cancelled")
    after = await sam.get(done.headers["location"])
    assert 'id="cancelled-notice"' in after.text and "已取消" in after.text and 'id="cancel-form"' not in after.text
    assert (await stock_of(rt, sku)).available == 3
    async with rt.db.read() as session:
        assert (await orders.by_number(session, number)).status == "cancelled"
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "order.cancelled"))).scalar_one()
    assert (entry.actor, entry.target) == ("sam", f"order:{number}")
    assert entry.after == {"status": "cancelled", "reason": "buyer asked by phone", "released": 1}

    again = await sam.post(f"/admin/orders/{number}/cancel", {"reason": "twice"})
    assert again.status_code == 409 and 'data-code="order_not_unpaid"' in again.text


async def test_finance_may_not_cancel_and_sees_no_button(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number = await given_order(rt, sku)
    fiona = await signed_in(rt, client, "fiona", "finance")

    assert 'id="cancel-form"' not in (await fiona.get(f"/admin/orders/{number}")).text
    refused = await fiona.post(f"/admin/orders/{number}/cancel", {"reason": "no"})

    assert refused.status_code == 403
    async with rt.db.read() as session:
        assert (await orders.by_number(session, number)).status == "pending_payment"
    assert (await stock_of(rt, sku)).available == 2


@pytest.mark.parametrize(
    ("form", "status"), [({"reason": "   "}, 400), ({"reason": "x" * 301}, 400), ({"reason": "x" * 2001}, 422)]
)
async def test_a_cancel_without_a_fit_reason_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, form: dict[str, str], status: int
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number = await given_order(rt, sku)
    sam = await signed_in(rt, client, "sam", "support")

    refused = await sam.post(f"/admin/orders/{number}/cancel", form)

    assert refused.status_code == status
    async with rt.db.read() as session:
        assert (await orders.by_number(session, number)).status == "pending_payment"


async def test_a_cancel_without_the_forms_token_is_refused(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number = await given_order(rt, sku)
    sam = await signed_in(rt, client, "sam", "support")

    refused = await sam.post(f"/admin/orders/{number}/cancel", {"reason": "x", "csrf_token": "forged"})

    assert refused.status_code == 403
    async with rt.db.read() as session:
        assert (await orders.by_number(session, number)).status == "pending_payment"


async def test_a_note_shows_in_the_timeline_for_staff_only_and_is_audited(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number, secret, _ = await place_order(rt, sku)
    sam = await signed_in(rt, client, "sam", "support")

    done = await sam.post(f"/admin/orders/{number}/notes", {"note": "买家来电：<b>稍后付款</b>"})

    assert done.headers["location"] == f"/admin/orders/{number}?done=noted"
    detail = await sam.get(done.headers["location"])
    timeline = detail.text.split('id="timeline"')[1].split("</ol>")[0]
    assert "sam" in timeline and "买家来电：&lt;b&gt;稍后付款&lt;/b&gt;" in timeline and "待支付" in timeline
    async with rt.db.read() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "order.note_added"))).scalar_one()
    assert (entry.actor, entry.target, entry.after) == ("sam", f"order:{number}", {"length": 16})
    client.cookies.set(f"kqo_{number}", secret)
    buyer = await client.get(f"/orders/{number}")
    assert buyer.status_code == 200 and number in buyer.text
    assert "稍后付款" not in buyer.text


async def test_an_auditor_may_not_write_notes_and_an_empty_note_is_refused(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number = await given_order(rt, sku)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as other:
        audrey = await signed_in(rt, other, "audrey", "auditor")
        assert 'id="note-form"' not in (await audrey.get(f"/admin/orders/{number}")).text
        assert (await audrey.post(f"/admin/orders/{number}/notes", {"note": "hello"})).status_code == 403
    sam = await signed_in(rt, client, "sam", "support")
    assert (await sam.post(f"/admin/orders/{number}/notes", {"note": "  "})).status_code == 400
    assert (await sam.post("/admin/orders/NOPE/notes", {"note": "x"})).status_code == 404
    detail = await sam.get(f"/admin/orders/{number}")
    assert "order.note_by" not in detail.text and "✎" not in detail.text


async def test_the_dashboard_counts_the_shops_day_not_the_utc_day(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 3, price_minor=1000)
    zone = rt.settings.zone()
    now = clock.now()
    local_midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    # Sell at 00:30 the shop's time: the day before in UTC (Asia/Shanghai is 8 hours ahead).
    clock.travel((local_midnight + timedelta(minutes=30) - now).total_seconds() + 86_400)
    await given_shop_order(rt, quantity=1, sku=sku)
    fiona = await signed_in(rt, client, "fiona", "finance")

    page = await fiona.get("/admin/")

    shop_day = clock.now().astimezone(zone).date()
    assert f"{shop_day}（Asia/Shanghai）" in page.text
    assert "¥10.00" in page.text
