"""The Alipay simulator as Alipay: its cashier and QR pages, the trade terms it holds, its bill file."""

import csv
import io
import zipfile
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from tests.support.alipay import RETURN_URL, SELLER_ID, START, AlipayWorld, alipay_world, payment

from kaquan.payments.alipay import protocol
from kaquan.payments.alipay.bill import DETAIL_HEADER
from kaquan.payments.errors import GatewayRefused
from kaquan.payments.gateway import RefundRequest


@pytest.fixture
def world() -> AlipayWorld:
    return alipay_world()


def buyer(world: AlipayWorld) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(world.simulator.app, root_path="/sim/alipay"))


async def test_a_scanned_qr_code_lands_on_the_cashier_whose_button_pays_and_returns_the_buyer(
    world: AlipayWorld,
) -> None:
    base = payment(method="page")
    action = await world.gateway.create(base)
    assert action.url is not None
    async with buyer(world) as browser:
        cashier = await browser.get(action.url)
        assert 'lang="zh-CN"' in cashier.text and "确认付款 ¥19.90" in cashier.text
        assert not any(external in cashier.text for external in ("<script", "src=", "<link", "url("))
        trade = world.simulator.trade("KQP0001")
        assert trade is not None
        paid = await browser.post(f"http://alipay.test/sim/alipay/cashier/{trade.trade_no}/pay")

    assert paid.status_code == 303
    back = paid.headers["location"]
    assert back.startswith(f"{RETURN_URL}?")
    returned = dict(parse_qsl(urlsplit(back).query))
    assert returned["method"] == "alipay.trade.page.pay.return"
    assert protocol.verify_notification(returned, world.simulator.public_key)
    assert [note.kind for note in world.shop.accepted] == ["paid"]


async def test_the_qr_landing_page_shows_the_trade_and_an_unknown_code_is_not_found(world: AlipayWorld) -> None:
    action = await world.gateway.create(payment(method="qr"))
    assert action.qr is not None
    async with buyer(world) as phone:
        landing = await phone.get(action.qr)
        unknown = await phone.get("http://alipay.test/sim/alipay/qr/nothing")
    assert landing.status_code == 200 and "确认付款 ¥19.90" in landing.text
    assert unknown.status_code == 404


async def test_the_same_trade_number_again_gets_the_same_qr_code_and_other_terms_are_refused(
    world: AlipayWorld,
) -> None:
    first = await world.gateway.create(payment())
    again = await world.gateway.create(payment())
    assert first.qr == again.qr
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.create(payment(amount_minor=1))
    assert refused.value.details["sub_code"] == "ACQ.CONTEXT_INCONSISTENT"


async def test_a_paid_trade_cannot_be_opened_again(world: AlipayWorld) -> None:
    await world.gateway.create(payment())
    await world.simulator.pay("KQP0001")
    with pytest.raises(GatewayRefused) as refused:
        await world.gateway.create(payment())
    assert refused.value.details["sub_code"] == "ACQ.TRADE_HAS_SUCCESS"


async def test_paying_a_trade_alipay_never_saw_is_an_error_not_a_payment(world: AlipayWorld) -> None:
    with pytest.raises(LookupError):
        await world.simulator.pay("KQP0404")
    assert world.simulator.sent() == []


async def test_a_lost_notification_is_not_sent_but_the_trade_is_paid(world: AlipayWorld) -> None:
    await world.gateway.create(payment())
    assert await world.simulator.pay("KQP0001", notify=False) is None
    assert world.simulator.sent() == []
    trade = world.simulator.trade("KQP0001")
    assert trade is not None and trade.status == "TRADE_SUCCESS"


async def test_an_unknown_gateway_method_is_refused_as_alipay_does(world: AlipayWorld) -> None:
    async with buyer(world) as client:
        answer = await client.post("http://alipay.test/sim/alipay/gateway.do", data={"method": "alipay.nothing"})
    assert answer.json()["error_response"]["sub_code"] == "isv.invalid-method"


async def test_the_bill_is_a_zip_of_gbk_csv_framed_by_hash_lines_with_tabbed_ids(world: AlipayWorld) -> None:
    await world.gateway.create(payment())
    await world.simulator.pay("KQP0001")
    await world.gateway.refund(
        RefundRequest("KQP0001", None, "R1", 500, 1990, "CNY", "partial", "http://shop.test/payments/alipay/notify")
    )
    await world.simulator.drain()

    archive = zipfile.ZipFile(io.BytesIO(world.simulator.bill(START.date())))

    detail_name = f"{SELLER_ID}0156_20240520_业务明细.csv"
    assert sorted(archive.namelist()) == sorted([detail_name, f"{SELLER_ID}0156_20240520_业务明细(汇总).csv"])
    lines = archive.read(detail_name).decode("gbk").split("\r\n")
    assert lines[0] == "#支付宝业务明细查询"
    assert lines[1] == f"#账号：[{SELLER_ID}]"
    assert lines[2] == "#起始日期：[2024年05月20日 00:00:00]   终止日期：[2024年05月21日 00:00:00]"
    assert lines[3].startswith("#---") and "业务明细列表" in lines[3]
    assert lines[4].split(",") == DETAIL_HEADER
    rows = list(csv.reader(lines[5:7]))
    trade = world.simulator.trade("KQP0001")
    assert trade is not None
    assert rows[0][:3] == [f"{trade.trade_no}\t", "KQP0001\t", "交易"]
    assert (rows[0][11], rows[0][12], rows[0][22]) == ("19.90", "19.90", "-0.12")
    assert (rows[1][2], rows[1][12], rows[1][21], rows[1][22]) == ("退款", "-5.00", "R1\t", "0.03")
    assert lines[7].startswith("#---") and "业务明细列表结束" in lines[7]
    assert lines[8].startswith("#交易合计：1笔，商家实收：19.90元，商家实收退款：-5.00元")
    assert lines[9] == "#退款合计：1笔"
    assert lines[10].startswith("#导出时间：[")
    assert "实收净额（元）" in archive.read(f"{SELLER_ID}0156_20240520_业务明细(汇总).csv").decode("gbk")


async def test_a_bill_download_link_dies_after_thirty_seconds(world: AlipayWorld) -> None:
    world.clock.advance(days=1)
    url_answer = await world.gateway._call(
        "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": "2024-05-20"}
    )
    world.clock.advance(seconds=31)
    async with buyer(world) as client:
        late = await client.get(url_answer["bill_download_url"])
    assert late.status_code == 404
