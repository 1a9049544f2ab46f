"""Flash sales in the console: an operator schedules an event in local time and yuan, watches it live, ends it;
other roles see what they may and are refused the rest; bad input is an error page that changes nothing."""

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from openpyxl import load_workbook
from sqlalchemy import func, select
from tests.support.aftersale import audited
from tests.support.builders import given_sku_with_codes
from tests.support.console import Console, console_sign_in
from tests.support.flash import attempt, given_event
from tests.support.identity import given_user

from kaquan.flashsale.models import Event
from kaquan.flashsale.purchase import FlashSale
from kaquan.kit import clock
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def signed_in(rt: Runtime, client: httpx.AsyncClient, username: str, role: str) -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def events_in_db(rt: Runtime) -> list[Event]:
    async with rt.db.read() as session:
        return list((await session.execute(select(Event).order_by(Event.id))).scalars())


def local(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


async def test_an_operator_schedules_an_event_in_local_time_and_yuan_and_watches_it_live(
    rt: Runtime, client: httpx.AsyncClient, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    olga = await signed_in(rt, client, "olga", "operator")
    starts = clock.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    form = {
        "sku": sku.code,
        "name": "双十二秒杀",
        "starts_at": local(starts),
        "ends_at": local(starts + timedelta(hours=2)),
        "stock": "4",
        "price": "9.90",
        "per_buyer_limit": "2",
        "verified": "no",
    }

    created = await olga.post("/admin/flash", form)

    assert created.status_code == 303, created.text
    [event] = await events_in_db(rt)
    assert created.headers["location"] == f"/admin/flash/{event.id}"
    assert (event.price_minor, event.stock, event.per_buyer_limit, event.status) == (990, 4, 2, "live")
    assert event.starts_at.astimezone(UTC) == starts  # typed as Shanghai time, stored as the same instant
    assert await audited(rt, "flashsale.event_created") == 1

    await attempt(flash, event.id, "ann", quantity=2)
    live = await olga.get(f"/admin/flash/{event.id}")
    assert live.status_code == 200
    assert "进行中" in live.text and "¥9.90" in live.text and "UTC+8" in live.text
    assert 'id="end-event"' in live.text and 'data-live-url="/admin/flash/' in live.text
    counts = (await olga.client.get(f"/admin/flash/{event.id}/live", headers={"Accept": "application/json"})).json()
    assert (counts["status"], counts["status_word"], counts["sold"], counts["purchases"], counts["held"]) == (
        "live",
        "进行中",
        2,
        1,
        2,
    )
    assert counts["gate_tokens"] == 2 and counts["gate"] == "开放" and counts["queued"] == 0

    ended = await olga.post(f"/admin/flash/{event.id}/end")
    assert (ended.status_code, ended.headers["location"]) == (303, f"/admin/flash/{event.id}")
    after = (await olga.client.get(f"/admin/flash/{event.id}/live", headers={"Accept": "application/json"})).json()
    assert (after["status_word"], after["held"], after["sold"]) == ("已结束", 0, 2)
    assert await audited(rt, "flashsale.event_ended") == 1
    reconciled = await olga.post(f"/admin/flash/{event.id}/reconcile")
    assert reconciled.headers["location"] == f"/admin/flash/{event.id}?reconciled=1"


async def test_the_event_list_downloads_as_csv_with_a_bom_and_as_xlsx_in_words(
    rt: Runtime, client: httpx.AsyncClient, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await given_event(rt, sku, stock=2, price_minor=1990, starts_in_s=3600)
    olga = await signed_in(rt, client, "olga", "operator")

    listed = await olga.get("/admin/flash")
    csv_file = await olga.get("/admin/flash?format=csv")
    xlsx_file = await olga.get("/admin/flash?format=xlsx")

    assert "未开始" in listed.text and "¥19.90" in listed.text and 'id="create-event"' in listed.text
    assert csv_file.content.startswith("\ufeff".encode())
    text = csv_file.content.decode("utf-8-sig")
    assert "未开始" in text and "¥19.90" in text and "UTC+8" in text and "scheduled" not in text
    [sheet] = load_workbook(io.BytesIO(xlsx_file.content)).worksheets
    rows = list(sheet.values)
    assert rows[0][0] == "编号" and rows[1][3] == "未开始"


async def test_bad_input_is_an_error_page_and_creates_nothing(
    rt: Runtime, client: httpx.AsyncClient, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    olga = await signed_in(rt, client, "olga", "operator")
    now = clock.now()
    good = {
        "sku": sku.code,
        "starts_at": local(now),
        "ends_at": local(now + timedelta(hours=1)),
        "stock": "2",
        "price": "9.90",
        "verified": "no",
    }
    bad_forms = [
        good | {"price": "abc"},
        good | {"price": "9.999"},
        good | {"stock": "many"},
        good | {"stock": "4"},  # more than the 3 available
        good | {"starts_at": "tomorrow"},
        good | {"ends_at": local(now - timedelta(hours=1))},
        good | {"sku": "NO-SUCH-SKU"},
        good | {"per_buyer_limit": "0"},
    ]

    for form in bad_forms:
        refused = await olga.post("/admin/flash", form)
        assert 400 <= refused.status_code < 500 and "<html" in refused.text, (form, refused.status_code)

    assert await events_in_db(rt) == []
    assert await audited(rt, "flashsale.event_created") == 0


async def test_roles_see_only_what_they_may_do_and_the_server_refuses_the_rest(
    rt: Runtime, client: httpx.AsyncClient, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    event_id = await given_event(rt, sku, stock=2)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as one,
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as two,
    ):
        audrey = await signed_in(rt, one, "audrey", "auditor")
        sam = await signed_in(rt, two, "sam", "support")

        listed = await audrey.get("/admin/flash")
        live = await audrey.get(f"/admin/flash/{event_id}")
        assert listed.status_code == 200 and 'id="create-event"' not in listed.text
        assert live.status_code == 200 and 'id="end-event"' not in live.text and 'id="reconcile"' not in live.text
        assert 'id="nav-flash"' in listed.text

        refused_end = await audrey.post(f"/admin/flash/{event_id}/end")
        assert refused_end.status_code == 403 and "<html" in refused_end.text
        assert (await sam.get("/admin/flash")).status_code == 403
        assert 'id="nav-flash"' not in (await sam.get("/admin/orders")).text

    [event] = await events_in_db(rt)
    assert event.status == "live" and await audited(rt, "flashsale.event_ended") == 0


async def test_a_form_without_the_csrf_token_is_refused_and_an_unknown_event_is_a_404_page(
    rt: Runtime, client: httpx.AsyncClient, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    event_id = await given_event(rt, sku, stock=2)
    olga = await signed_in(rt, client, "olga", "operator")

    missing = await olga.get("/admin/flash/999999")
    olga.csrf = "forged"
    forged = await olga.post(f"/admin/flash/{event_id}/end")

    assert missing.status_code == 404 and "<html" in missing.text
    assert forged.status_code == 403
    async with rt.db.read() as session:
        live = await session.execute(select(func.count()).where(Event.status == "live"))
    assert live.scalar_one() == 1


async def test_the_live_counters_answer_a_signed_out_script_with_a_json_401_not_the_sign_in_page(
    rt: Runtime, client: httpx.AsyncClient, flash: FlashSale
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    event_id = await given_event(rt, sku, stock=2)

    polled = await client.get(f"/admin/flash/{event_id}/live", headers={"Accept": "application/json"})
    opened = await client.get(f"/admin/flash/{event_id}", headers={"Accept": "text/html"})

    assert polled.status_code == 401 and polled.json()["error"]["code"] == "unauthorized"
    assert opened.status_code == 303 and opened.headers["location"].startswith("/admin/login?next=")
