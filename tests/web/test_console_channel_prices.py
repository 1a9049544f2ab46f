"""Channel price lists and quotas in the console: a page per channel, prices typed in yuan per agent
tier, quotas in percent, both removable, the list as CSV and XLSX; refused without channels.write."""

import csv
import io

import httpx
import pytest
from openpyxl import load_workbook
from tests.support.builders import given_sku
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user, row_counts

from kaquan.audit import service as audit
from kaquan.channels import pricing
from kaquan.runtime import Runtime


async def signed_in(rt: Runtime, client: httpx.AsyncClient, role: str) -> Console:
    await given_user(rt, role, role)
    return await console_sign_in(client, role)


async def wholesale_prices(rt: Runtime) -> list[tuple[str, str, int]]:
    async with rt.db.read() as session:
        channel = await pricing.get_channel(session, "wholesale")
        return [(e.sku.code, e.tier, e.price_minor) for e in await pricing.price_entries(session, channel)]


async def wholesale_quotas(rt: Runtime) -> dict[int, int]:
    async with rt.db.read() as session:
        return await pricing.quotas_of(session, await pricing.get_channel(session, "wholesale"))


async def test_an_operator_prices_a_sku_per_tier_sets_a_quota_and_removes_both(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku(rt, code="CH-1", price_minor=1990)
    console = await signed_in(rt, client, "operator")
    empty = await console.get("/admin/channels/wholesale")
    assert empty.status_code == 200

    assert (
        await console.post("/admin/channels/wholesale/prices", {"sku": "CH-1", "price": "18.50"})
    ).status_code == 303
    await console.post("/admin/channels/wholesale/prices", {"sku": "CH-1", "price": "17", "tier": "gold"})
    assert (await console.post("/admin/channels/wholesale/quotas", {"sku": "CH-1", "share": "12.5"})).status_code == 303

    assert await wholesale_prices(rt) == [("CH-1", "", 1850), ("CH-1", "gold", 1700)]
    assert await wholesale_quotas(rt) == {sku.id: 1250}
    page = await console.get("/admin/channels/wholesale")
    assert "¥18.50" in page.text and "¥17.00" in page.text and "12.5%" in page.text
    async with rt.db.read() as session:
        actions = [e.action for e in await audit.recent(session, limit=10)]
    assert actions.count("channel.price_set") == 2 and "channel.quota_set" in actions

    await console.post("/admin/channels/wholesale/prices/remove", {"sku": "CH-1", "tier": "gold"})
    await console.post("/admin/channels/wholesale/quotas", {"sku": "CH-1", "share": ""})
    assert await wholesale_prices(rt) == [("CH-1", "", 1850)]
    assert await wholesale_quotas(rt) == {}


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/admin/channels/wholesale/prices", {"sku": "CH-2", "price": "1.00"}),
        ("/admin/channels/wholesale/prices/remove", {"sku": "CH-2"}),
        ("/admin/channels/wholesale/quotas", {"sku": "CH-2", "share": "50"}),
    ],
)
async def test_a_role_without_channels_write_is_refused_and_nothing_changes(
    rt: Runtime, client: httpx.AsyncClient, path: str, form: dict[str, str]
) -> None:
    await given_sku(rt, code="CH-2")
    async with rt.db.transaction() as session:
        await pricing.set_price(rt.db, session, "wholesale", "CH-2", 1500, actor="test")
    console = await signed_in(rt, client, "finance")
    before = await row_counts(rt)

    refused = await console.post(path, form)

    assert refused.status_code == 403
    assert "channels.write" in refused.text
    assert await row_counts(rt) == before
    assert await wholesale_prices(rt) == [("CH-2", "", 1500)]


@pytest.mark.parametrize(
    ("path", "form", "status", "words"),
    [
        ("/admin/channels/wholesale/prices", {"sku": "CH-3", "price": "12,3.4.5"}, 400, "price"),
        ("/admin/channels/wholesale/prices", {"sku": "NO-SUCH", "price": "1"}, 404, "NO-SUCH"),
        ("/admin/channels/nowhere/prices", {"sku": "CH-3", "price": "1"}, 404, "nowhere"),
        ("/admin/channels/wholesale/quotas", {"sku": "CH-3", "share": "150"}, 400, "percentage"),
        ("/admin/channels/wholesale/prices/remove", {"sku": "CH-3", "tier": "none"}, 404, "CH-3"),
    ],
)
async def test_bad_channel_input_is_a_clear_error_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, path: str, form: dict[str, str], status: int, words: str
) -> None:
    await given_sku(rt, code="CH-3")
    async with rt.db.transaction() as session:
        await pricing.set_price(rt.db, session, "wholesale", "CH-3", 1500, actor="test")
    console = await signed_in(rt, client, "operator")
    before = await row_counts(rt)

    refused = await console.post(path, form)

    assert refused.status_code == status
    assert words in refused.text
    assert await row_counts(rt) == before


async def test_a_price_list_downloads_as_csv_and_xlsx(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_sku(rt, code="CH-4")
    async with rt.db.transaction() as session:
        await pricing.set_price(rt.db, session, "wholesale", "CH-4", 123456, actor="test")
        await pricing.set_quota(rt.db, session, "wholesale", "CH-4", 3000, actor="test")
    console = await signed_in(rt, client, "finance")

    as_csv = await console.get("/admin/channels/wholesale/prices/export?format=csv")
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows == [
        ["编码", "SKU 名称", "代理商等级", "渠道价", "库存占比上限", "SKU 在售"],
        ["CH-4", "CH-4", "所有人（默认）", "¥1,234.56", "30%", "在售"],
    ]
    as_xlsx = await console.get("/admin/channels/wholesale/prices/export?format=xlsx")
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    assert [c.value for c in next(sheet.iter_rows(min_row=2))] == rows[1]
