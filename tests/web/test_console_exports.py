"""Every list of the console's after-sale and audit pages downloads as CSV (UTF-8 BOM) and XLSX, read back here:
the refunds awaiting approval, the audit trail as filtered, a leak trace."""

import httpx
from tests.support.aftersale import given_shop_order
from tests.support.console import Console, console_sign_in
from tests.support.downloads import read_csv, read_xlsx
from tests.support.identity import given_user

from kaquan.runtime import Runtime
from kaquan.web.app import create_app


async def signed_in(rt: Runtime, client: httpx.AsyncClient, username: str, role: str) -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def test_the_refunds_awaiting_approval_download_as_the_queue_shows_them(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=2)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as one,
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as two,
    ):
        sam, fiona = await signed_in(rt, one, "sam", "support"), await signed_in(rt, two, "fiona", "finance")
        await sam.post(f"/admin/orders/{order.number}/refund", {"amount": "10.00", "reason": "=slow delivery"})
        queue = await fiona.get("/admin/refunds")
        assert 'href="/admin/refunds.csv"' in queue.text and 'href="/admin/refunds.xlsx"' in queue.text

        header, row = read_csv(await fiona.get("/admin/refunds.csv"))
        assert header[:3] == ["订单", "退款单号", "金额"] and header[-1] == "时间（Asia/Shanghai）"
        assert [row[0], *row[2:7]] == [order.number, "¥10.00", "¥39.80", "CNY", "'=slow delivery", "sam"]
        header_x, row_x = read_xlsx(await fiona.get("/admin/refunds.xlsx"))
        assert header_x == header and row_x[0] == order.number and row_x[2] == "¥10.00"

        assert (await sam.get("/admin/refunds.csv")).status_code == 403  # support does not read finance's queue


async def test_the_audit_trail_downloads_as_filtered(rt: Runtime, client: httpx.AsyncClient) -> None:
    order = await given_shop_order(rt, quantity=1)
    alice = await signed_in(rt, client, "alice", "owner")
    await alice.post(f"/admin/orders/{order.number}/notes", {"note": "called the buyer"})
    await alice.post(f"/admin/orders/{order.number}/reveal", {"reason": "buyer says the code fails"})
    trail = await alice.get("/admin/audit?action=order.note_added")
    assert 'href="/admin/audit.xlsx?action=order.note_added"' in trail.text

    header, *rows = read_csv(await alice.get("/admin/audit.csv?action=order.note_added"))
    assert header[1] == "时间（Asia/Shanghai）" and header[2:6] == [
        "操作人",
        "操作",
        "操作代码",
        "对象（精确匹配，或以 * 结尾的前缀）",
    ]
    assert [row[2:6] for row in rows] == [["alice", "添加订单备注", "order.note_added", f"order:{order.number}"]]
    header_x, *rows_x = read_xlsx(await alice.get(f"/admin/audit.xlsx?target=order:{order.number}"))
    assert header_x == header
    assert sorted(str(row[4]) for row in rows_x) == ["codes.revealed", "order.note_added"]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt=rt)), base_url="http://t") as other:
        sam = await signed_in(rt, other, "sam", "support")
        assert (await sam.get("/admin/audit.csv")).status_code == 403


async def test_a_leak_trace_downloads_instead_of_showing_when_asked(rt: Runtime, client: httpx.AsyncClient) -> None:
    order = await given_shop_order(rt, quantity=1)
    alice = await signed_in(rt, client, "alice", "owner")
    leaked = (order.codes[0] + "\nNOT-OURS-123456\n").encode()

    header, row = read_csv(
        await alice.post("/admin/leaks", {"output": "csv"}, files={"file": ("leak.txt", leaked, "text/plain")})
    )

    assert header[:3] == ["行号", "密码", "批次"] and header[8] == "售出时间（Asia/Shanghai）"
    assert row[0] == "1" and order.codes[0] not in row[1] and row[6] == order.number and row[5] == "已售"
    header_x, row_x = read_xlsx(
        await alice.post("/admin/leaks", {"output": "xlsx"}, files={"file": ("leak.txt", leaked, "text/plain")})
    )
    assert header_x == header and row_x[6] == order.number
    page = await alice.post("/admin/leaks", {"output": "page"}, files={"file": ("leak.txt", leaked, "text/plain")})
    assert page.headers["content-type"].startswith("text/html") and 'id="leaks-found"' in page.text
