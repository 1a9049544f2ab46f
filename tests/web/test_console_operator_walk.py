"""An operator's day in a real browser, once at 1280 px in Chinese and once at 390 px in English, each walk's
pages shot again in the other language: sign in, edit a price, take a SKU off sale (the shop stops offering
it), refund a paid order from its page (it shows refunded, its code is voided, the books take the refund),
download the order list as XLSX and read it back against the CSV (headers in the page's language, ¥ amounts,
wall-clock times of the shop's zone).

Screenshots go to KAQUAN_SCREENSHOTS (or the test's tmp dir), as the other console browser tests do.
"""

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect
from tests.support.builders import GivenSku, buy
from tests.support.console_browser import edit_on_the_product_page
from tests.support.identity import PASSWORD, given_user
from tests.support.loops import in_own_loop
from tests.support.server import served

from kaquan import accounting, identity, ledger
from kaquan.catalog import service as catalog
from kaquan.identity.permissions import Permission
from kaquan.kit.db import Database
from kaquan.payments import refunds as payment_refunds
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")
ZONE = ZoneInfo("Asia/Shanghai")
WORDS = {
    "zh": {"refunded": "已退款", "voided": "已作废", "number": "订单号", "created": "下单时间（Asia/Shanghai）"},
    "en": {"refunded": "Refunded", "voided": "Voided", "number": "Number", "created": "Created (Asia/Shanghai)"},
}
OTHER = {"zh": "en", "en": "zh"}


@dataclass(frozen=True)
class Walk:
    width: int
    lang: str
    priced: str
    price: str
    taken_off: str


WALKS = (Walk(1280, "zh", "VIDEO-3M", "49.90", "VIDEO-12M"), Walk(390, "en", "VIDEO-1M", "18.80", "VIDEO-3M"))


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, list[str], str]]:
    """The demo shop with an owner `alice` holding an API token, a support user `sam`, and two delivered VIDEO-1M
    orders (one per walk); its worker runs."""
    sold: list[str] = []

    async def seed(rt: Runtime) -> None:
        alice = await given_user(rt, "alice", "owner")
        await given_user(rt, "sam", "support")
        async with rt.db.transaction() as session:
            scopes = [Permission.ORDERS_READ, Permission.FINANCE_READ]
            await identity.create_token(
                session, alice.id, "BI", scopes, expires_in_days=90, allowed=frozenset(Permission), actor="test"
            )
        async with rt.db.read() as session:
            sku = await catalog.get_sku(session, "VIDEO-1M")
        for _ in WALKS:
            bought = await buy(rt, GivenSku(sku.id, sku.code))
            assert bought.ok, bought.error
            sold.append(bought.number)

    with served(tmp_path, seed, run_worker=True) as url:
        yield url, sold, f"sqlite:///{tmp_path / 'kaquan.db'}"


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def fits(page: Page, width: int) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide at {width} px"


def sign_in(page: Page, url: str, lang: str) -> None:
    page.goto(url + "/admin/login")
    page.locator(f"#lang-{lang}").click()
    page.locator('input[name="username"]').fill("alice")
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/")


def voided_of(page: Page, url: str, sku: str) -> int:
    page.goto(url + "/admin/")
    return int(page.locator(f'#stock tr[data-sku="{sku}"] td').nth(5).inner_text())


def refund_whole(page: Page, url: str, number: str, lang: str) -> None:
    """Refund what remains of the order from its page; an owner's refund is approved at once, the worker sends it."""
    page.goto(f"{url}/admin/orders/{number}")
    page.locator("#refund-reason").fill("买家误购" if lang == "zh" else "bought by mistake")
    page.locator("#refund-submit").click()
    page.wait_for_url(f"{url}/admin/orders/{number}*")
    for _ in range(60):
        if page.locator("#order-status").inner_text() == WORDS[lang]["refunded"]:
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(page.locator("#order-status")).to_have_text(WORDS[lang]["refunded"])
    expect(page.locator("#masked-codes tbody tr").first).to_contain_text(WORDS[lang]["voided"])


def orders_download(page: Page, url: str, number: str, lang: str) -> None:
    """The list's XLSX has the CSV's headers and cells: words of `lang`, ¥ amounts, the shop's wall clock."""
    page.goto(url + "/admin/orders")
    with page.expect_download() as download:
        page.locator("#export-orders-xlsx").click()
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).active
    assert sheet is not None
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    answer = page.request.get(url + "/admin/orders.csv")
    csv_header, *csv_rows = list(csv.reader(io.StringIO(answer.body().decode("utf-8-sig"))))

    assert header == csv_header and header[0] == WORDS[lang]["number"] and WORDS[lang]["created"] in header
    row = next(row for row in rows if row[0] == number)
    csv_row = next(row for row in csv_rows if row[0] == number)
    assert row[1] == csv_row[1] == WORDS[lang]["refunded"]
    assert "¥19.90" in row and "¥19.90" in csv_row
    created = row[header.index(WORDS[lang]["created"])]
    assert isinstance(created, datetime)
    assert created.strftime("%Y-%m-%d %H:%M:%S") == csv_row[header.index(WORDS[lang]["created"])]
    assert abs(created - datetime.now(ZONE).replace(tzinfo=None)) < timedelta(hours=1)  # Shanghai's clock, not UTC


def the_walk(browser: Browser, url: str, number: str, walk: Walk, tmp_path: Path) -> None:
    size, lang = f"{walk.width}", walk.lang
    phone = walk.width < 800
    context = browser.new_context(
        viewport={"width": walk.width, "height": 844 if phone else 900},
        is_mobile=phone,
        locale="zh-CN" if lang == "zh" else "en-US",
        accept_downloads=True,
    )
    page = context.new_page()
    sign_in(page, url, lang)

    product_id = edit_on_the_product_page(page, url, walk.priced, walk.price, walk.taken_off)
    fits(page, walk.width)
    shot(page, tmp_path, f"walk-product-{size}-{lang}.png")
    page.goto(f"{url}/products/{product_id}")
    expect(page.locator(f'label.sku-option[data-sku="{walk.priced}"] .sku-price')).to_contain_text(f"¥{walk.price}")
    expect(page.locator(f'label.sku-option[data-sku="{walk.taken_off}"]')).to_have_count(0)
    shot(page, tmp_path, f"walk-shop-{size}-{lang}.png")

    voided = voided_of(page, url, "VIDEO-1M")
    refund_whole(page, url, number, lang)
    fits(page, walk.width)
    shot(page, tmp_path, f"walk-refunded-{size}-{lang}.png")
    assert voided_of(page, url, "VIDEO-1M") == voided + 1

    orders_download(page, url, number, lang)
    shot(page, tmp_path, f"walk-orders-{size}-{lang}.png")

    page.locator(f"#lang-{OTHER[lang]}").click()
    for path, name in (
        (f"/admin/orders/{number}", "order"),
        ("/admin/orders", "orders"),
        ("/admin/audit", "audit"),
        ("/admin/users", "users"),
        ("/admin/me", "me"),
        ("/admin/orders?status=lost", "refused"),  # a refusal the console has no sentence for
    ):
        page.goto(url + path)
        fits(page, walk.width)
        shot(page, tmp_path, f"walk-{name}-{size}-{OTHER[lang]}.png")
        if phone and name in ("users", "me", "audit"):  # every list a phone reads is cards, not a table's head
            expect(page.locator("main table.cards thead").first).to_be_hidden()
    expect(page.locator("#error-words .ident")).to_have_text("unknown_order_status")
    context.close()


async def books_of(database_url: str) -> tuple[bool, list[str], int]:
    """What `kaquan ledger check` proves: the ledger balances, and the books agree with payments and refunds."""
    db = Database(database_url)
    try:
        async with db.read() as session:
            paid, refunds = await payment_refunds.books_records(session)
            problems = await accounting.check_books(session, paid, refunds)
            return (await ledger.check(session)).ok, problems, len(refunds)
    finally:
        await db.dispose()


def test_an_operator_prices_takes_off_sale_refunds_and_downloads_on_a_desktop_and_a_phone(
    shop: tuple[str, list[str], str], browser: Browser, tmp_path: Path
) -> None:
    url, sold, database_url = shop

    for number, walk in zip(sold, WALKS, strict=True):
        the_walk(browser, url, number, walk, tmp_path)

    balanced, problems, refunds = in_own_loop(partial(books_of, database_url))
    assert (balanced, problems, refunds) == (True, [], 2)
