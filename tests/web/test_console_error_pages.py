"""A refusal a signed-in operator meets is a page of their own console: the menu, their name, the language
switch, the refusal in the page's words, the request id to quote and a way back. A browser without a session
is still sent to sign in, and the admin API keeps its JSON errors."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.support.console import HTML, console_sign_in
from tests.support.http import the_error
from tests.support.identity import given_user

from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.web.console.access import StockRead
from kaquan.web.console.rendering import console_router

WORDS = {
    "zh": {
        "forbidden": "您的角色没有此页面或操作的权限。",
        "needs": "需要的权限：<b>管理用户</b>",
        "order": "没有这个订单号的订单。",
        "page": "要找的页面不存在",
        "form": "提交的内容有误，请检查后重试。",
        "crash": "系统出了问题",
        "request_id": "请求编号",
    },
    "en": {
        "forbidden": "Your role does not allow this page or action.",
        "needs": "Needs the permission: <b>Manage users</b>",
        "order": "No order has this number.",
        "page": "There is no such page",
        "form": "Something in the form is not right",
        "crash": "Something went wrong on our side.",
        "request_id": "Request ID",
    },
}


def assert_in_the_console_frame(page: httpx.Response, user: str, lang: str) -> None:
    """The page is the signed-in console: its menu, the user's name, the language switch, in `lang`."""
    assert 'id="console-nav"' in page.text
    assert f'<b id="whoami">{user}</b>' in page.text
    assert 'id="lang-zh"' in page.text and 'id="lang-en"' in page.text
    assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in page.text
    request_id = re.search(r'<span class="mono" id="request-id">([^<]+)</span>', page.text)
    assert request_id is not None and request_id.group(1) == page.headers["x-request-id"]
    assert WORDS[lang]["request_id"] in page.text
    assert 'id="error-home" href="/admin/"' in page.text or 'href="/admin/" id="error-home"' in page.text


def visible_text(page: httpx.Response) -> str:
    """What the page shows without opening its technical details (the service's own English sentence)."""
    return re.sub(r"<details.*?</details>", "", page.text, flags=re.S)


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_a_support_user_refused_an_owner_page_sees_it_inside_their_console(
    rt: Runtime, client: httpx.AsyncClient, lang: str
) -> None:
    await given_user(rt, "sam", "support")
    console = await console_sign_in(client, "sam")
    client.cookies.set("lang", lang)

    refused = await console.get("/admin/users")

    assert refused.status_code == 403
    assert 'data-status="403"' in refused.text
    assert_in_the_console_frame(refused, "sam", lang)
    assert 'href="/admin/orders"' in refused.text  # support's own menu
    assert 'href="/admin/users"' not in refused.text
    assert WORDS[lang]["forbidden"] in refused.text
    assert WORDS[lang]["needs"] in refused.text
    if lang == "zh":
        assert "this needs" not in visible_text(refused)  # the service's English stays folded away


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("path", "word"), [("/admin/orders/NO-SUCH-ORDER", "order"), ("/admin/no-such-page", "page")])
async def test_an_unknown_order_or_address_is_a_not_found_page_inside_the_console(
    rt: Runtime, client: httpx.AsyncClient, lang: str, path: str, word: str
) -> None:
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)
    client.cookies.set("lang", lang)

    missing = await console.get(path)

    assert missing.status_code == 404
    assert_in_the_console_frame(missing, "alice", lang)
    assert WORDS[lang][word] in missing.text
    assert "lookup secret" not in visible_text(missing)  # the buyer's sentence is not the operator's
    assert "查单密码" not in missing.text


async def test_a_form_value_out_of_bounds_is_worded_in_the_console(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)

    refused = await console.get("/admin/orders?per_page=0")

    assert refused.status_code == 422
    assert_in_the_console_frame(refused, "alice", "zh")
    assert WORDS["zh"]["form"] in refused.text


async def test_back_returns_to_the_console_page_the_operator_came_from(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    await console_sign_in(client)

    missing = await client.get(
        "/admin/orders/NO-SUCH-ORDER", headers={**HTML, "Referer": "http://shop.test/admin/orders?status=paid"}
    )
    elsewhere = await client.get(
        "/admin/orders/NO-SUCH-ORDER", headers={**HTML, "Referer": "http://evil.example/admin/orders"}
    )

    assert 'href="/admin/orders?status=paid" id="error-back"' in missing.text
    assert 'id="error-back"' not in elsewhere.text


@pytest.fixture
async def crashing(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The console with one more page, which fails as an unforeseen bug would."""
    app = create_app(rt=rt)
    broken = console_router()

    @broken.get("/admin/broken")
    async def broken_page(admin: StockRead) -> None:
        raise RuntimeError("an unforeseen bug")

    app.include_router(broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
        yield http


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_a_crash_is_a_page_of_the_console_with_the_request_id_to_quote(
    rt: Runtime, crashing: httpx.AsyncClient, lang: str
) -> None:
    await given_user(rt, "alice", "owner")
    await console_sign_in(crashing)
    crashing.cookies.set("lang", lang)

    crashed = await crashing.get("/admin/broken", headers=HTML)

    assert crashed.status_code == 500
    assert_in_the_console_frame(crashed, "alice", lang)
    assert WORDS[lang]["crash"] in crashed.text
    assert "unforeseen" not in crashed.text and "Traceback" not in crashed.text
    script = await crashing.get("/admin/broken")
    the_error(script, 500, "internal_error")


async def test_a_browser_without_a_session_is_still_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/admin/users", "/admin/orders/NO-SUCH-ORDER", "/admin/no-such-page"):
        response = await client.get(path, headers=HTML)

        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")


async def test_the_admin_api_and_scripts_keep_their_json_errors(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "sam", "support")
    await console_sign_in(client, "sam")

    the_error(await client.get("/admin/api/users", headers=HTML), 403, "forbidden")
    the_error(await client.get("/admin/api/no-such-thing", headers=HTML), 404, "not_found")
    the_error(await client.get("/admin/users"), 403, "forbidden")
    the_error(await client.get("/admin/orders/NO-SUCH-ORDER"), 404, "order_not_found")
