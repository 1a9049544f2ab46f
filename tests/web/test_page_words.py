"""Every page a person reads, in both languages: no message key, raw enum value or `\\u` escape shows.

The walk discovers the console's pages from its router, so a new page is walked the day it lands;
a page whose path needs a value the walk cannot supply fails here, naming the parameter to add.
"""

import re
from dataclasses import dataclass
from functools import partial

import httpx
import pytest
from fastapi.routing import APIRoute
from tests.support.agents import given_agent
from tests.support.builders import buy, given_sku_with_codes
from tests.support.console import HTML, console_sign_in
from tests.support.console_words import Reader
from tests.support.flash import given_event
from tests.support.identity import given_user

from kaquan import demo
from kaquan.runtime import Runtime
from kaquan.web import console
from kaquan.web.i18n import MESSAGES
from kaquan.web.shop_words import MESSAGES as SHOP_MESSAGES

LANGUAGES = ("zh", "en")
NOT_PAGES = re.compile(r"\.(csv|xlsx|pdf|json)$|\{fmt\}|/lang/|/export$")
PARAMETER = re.compile(r"\{([a-z_]+)(?::[a-z]+)?\}")
ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")
RAW_VALUE_ZH = re.compile(r"^[a-z][a-z_]{2,}$")
RAW_VALUE_EN = re.compile(r"^[a-z]+(?:_[a-z]+)+$")
KEY_PREFIXES = {key.split(".")[0] for words in (*MESSAGES.values(), *SHOP_MESSAGES.values()) for key in words}
KEY = re.compile(r"^([a-z_]+)\.[a-z0-9_.]+$")
# The product's name, and the names this walk's world gave its people and places (data, not words to translate).
ALLOWED_LOWERCASE = {"kaquan", "alice", "test", "demo", "main", "backup", "walker"}


def problems_on(page: str, lang: str) -> list[str]:
    reader = Reader()
    reader.feed(page)
    found = []
    raw_value = RAW_VALUE_ZH if lang == "zh" else RAW_VALUE_EN
    for text in reader.texts:
        if ESCAPE.search(text):
            found.append(f"escape: {text!r}")
        key = KEY.match(text)
        if key and key.group(1) in KEY_PREFIXES:
            found.append(f"message key: {text!r}")
        elif raw_value.match(text) and text not in ALLOWED_LOWERCASE:
            found.append(f"raw value: {text!r}")
    return found


def test_the_checks_see_a_key_a_raw_value_and_an_escape_but_not_verbatim_text() -> None:
    page = (
        "<p>orders.title</p><td><span class='status'>pending_payment</span></td><p>\\u4e2d</p>"
        "<p title='nav.orders'>x</p><td class='mono'>ab_cd</td><code>net_flix</code><p>已支付</p>"
    )
    assert problems_on(page, "en") == [
        "message key: 'orders.title'",
        "raw value: 'pending_payment'",
        "escape: '\\\\u4e2d'",
        "message key: 'nav.orders'",
    ]
    assert problems_on("<td>paid</td>", "zh") == ["raw value: 'paid'"]
    assert problems_on("<td>paid</td>", "en") == []


def test_every_message_exists_in_both_languages() -> None:
    assert set(MESSAGES["en"]) == set(MESSAGES["zh"])
    assert set(SHOP_MESSAGES["en"]) == set(SHOP_MESSAGES["zh"])


@dataclass(frozen=True)
class World:
    samples: dict[str, str]
    order_cookie: tuple[str, str]


async def given_a_shop_with_an_order(rt: Runtime) -> World:
    await demo.seed(rt)
    sku = await given_sku_with_codes(rt, 3, code="WALK-1", price_minor=1990)
    bought = await buy(rt, sku)
    assert bought.ok, bought.error
    await given_user(rt, "alice", "owner")
    agent = await given_agent(rt, code="walker")
    flash_sku = await given_sku_with_codes(rt, 2, code="WALK-FLASH")
    event_id = await given_event(rt, flash_sku, stock=1)
    samples = {
        "number": bought.number,
        "sku": "WALK-1",
        "product_id": str(sku.product_id),
        "code": agent.code,
        "event_id": str(event_id),
    }
    return World(samples, (f"kqo_{bought.number}", bought.lookup_secret))


def _sample(values: dict[str, str], match: re.Match[str]) -> str:
    return values[match.group(1)]


ROUTE_SAMPLES = {"/admin/channels/{code}": {"code": "wholesale"}}  # where `code` names a channel, not an agent


def console_pages(samples: dict[str, str]) -> list[str]:
    paths = []
    for route in console.router.routes:
        if not isinstance(route, APIRoute) or "GET" not in (route.methods or ()) or NOT_PAGES.search(route.path):
            continue
        values = {**samples, **ROUTE_SAMPLES.get(route.path, {})}
        missing = [name for name in PARAMETER.findall(route.path) if name not in values]
        assert not missing, f"{route.path}: the walk needs a sample value for {missing}"
        paths.append(PARAMETER.sub(partial(_sample, values), route.path))
    return paths


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_every_console_page_speaks_the_chosen_language_only(
    rt: Runtime, client: httpx.AsyncClient, lang: str
) -> None:
    world = await given_a_shop_with_an_order(rt)
    signed_in = await console_sign_in(client)
    client.cookies.set("lang", lang)

    report = {}
    for path in console_pages(world.samples):
        page = await signed_in.get(path)
        assert page.status_code == 200, f"{path}: {page.status_code}"
        if page.headers["content-type"].startswith("text/html"):
            report[path] = problems_on(page.text, lang)

    problems = {path: found for path, found in report.items() if found}
    assert problems == {}, "\n".join(f"{path}: {sorted(set(found))}" for path, found in problems.items())
    assert len(report) >= 10


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_every_shop_page_speaks_the_chosen_language_only(
    rt: Runtime, client: httpx.AsyncClient, lang: str
) -> None:
    world = await given_a_shop_with_an_order(rt)
    client.cookies.set(*world.order_cookie)
    number = world.samples["number"]
    paths = ["/", f"/products/{world.samples['product_id']}", "/lookup", f"/orders/{number}", "/account/sign-in"]

    report = {}
    for path in paths:
        page = await client.get(path, params={"lang": lang}, headers=HTML)
        assert page.status_code == 200, f"{path}: {page.status_code}"
        report[path] = problems_on(page.text, lang)

    problems = {path: found for path, found in report.items() if found}
    assert problems == {}, "\n".join(f"{path}: {sorted(set(found))}" for path, found in problems.items())
