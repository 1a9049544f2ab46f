"""The admin console through HTTP, as a browser uses it: sign in, every page, refusals, languages."""

import httpx
from sqlalchemy import func, select
from tests.support.builders import buy, given_sku_with_codes, random_codes
from tests.support.console import HTML, console_sign_in, csrf_of, login_form
from tests.support.identity import PASSWORD, given_user, row_counts
from tests.support.vouchers import given_voucher_sku, given_vouchers, status_of

from kaquan.audit.models import AuditEntry
from kaquan.catalog.models import Product
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


async def test_a_browser_without_a_session_is_sent_to_the_sign_in_page(client: httpx.AsyncClient) -> None:
    for path in ("/admin/", "/admin/orders", "/admin/audit", "/admin/orders/123"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")

    page = await client.get("/admin/login", headers=HTML)
    assert page.status_code == 200
    assert 'name="password"' in page.text


async def test_a_script_without_a_session_gets_the_json_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_signing_in_opens_the_page_asked_for(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    page = await client.get("/admin/login?next=/admin/orders", headers=HTML)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page), "next": "/admin/orders"}

    response = await client.post("/admin/login", data=form, headers=HTML)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/orders"
    assert (await client.get("/admin/orders", headers=HTML)).status_code == 200


async def test_sign_in_never_redirects_off_the_site(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    page = await client.get("/admin/login", headers=HTML)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page), "next": "//evil.example/"}

    response = await client.post("/admin/login", data=form, headers=HTML)

    assert response.headers["location"] == "/admin/"


async def test_a_wrong_password_shows_the_error_and_opens_no_session(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")

    response = await login_form(client, "alice", "not the password")

    assert response.status_code == 401
    assert 'id="login-message"' in response.text
    assert "kq_admin" not in response.cookies
    assert (await client.get("/admin/", headers=HTML)).status_code == 303


async def test_five_wrong_passwords_slow_that_address_and_say_when_to_retry_but_lock_nobody_out(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "alice", "owner")
    for _ in range(5):
        assert (await login_form(client, "alice", "wrong")).status_code == 401

    response = await login_form(client, "alice", PASSWORD)

    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 15 * 60 and f" {retry_after} " in response.text
    assert "kq_admin" not in response.cookies
    transport = httpx.ASGITransport(app=create_app(rt=rt), client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as elsewhere:
        assert (await login_form(elsewhere, "alice", PASSWORD)).status_code == 303


async def test_a_sign_in_form_without_its_token_is_refused(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    form = {"username": "alice", "password": PASSWORD, "csrf_token": "forged"}

    response = await client.post("/admin/login", data=form, headers=HTML)

    assert response.status_code == 403
    assert "kq_admin" not in response.cookies


async def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "alice", "owner")
    await console_sign_in(client)
    before = await row_counts(rt)

    response = await client.post("/admin/products", data={"name": "Forged", "kind": "membership"}, headers=HTML)

    assert response.status_code == 403
    assert 'data-code="csrf_failed"' in response.text
    assert await row_counts(rt) == before


async def test_a_product_and_a_sku_are_created_with_the_forms(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "operator")
    console = await console_sign_in(client)

    created = await console.post("/admin/products", {"name": "Game points", "kind": "game_points"})
    assert created.status_code == 303
    async with rt.db.read() as session:
        product_id = (await session.execute(select(func.max(Product.id)))).scalar_one()
    sku = {"product_id": str(product_id), "code": "GP-100", "name": "100 points", "face_value": "10"}
    assert (await console.post("/admin/skus", {**sku, "price": "9.90"})).status_code == 303

    page = await console.get("/admin/products")
    assert "Game points" in page.text
    assert 'data-sku="GP-100"' in page.text
    assert "¥9.90" in page.text


async def test_a_bad_sku_form_is_a_clear_error_page(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "operator")
    console = await console_sign_in(client)
    sku = {"product_id": "1", "code": "12345", "name": "x", "face_value": "1", "price": "1"}

    response = await console.post("/admin/skus", sku)

    assert response.status_code == 400
    assert "digits only" in response.text


async def test_a_role_without_the_permission_gets_the_refusal_page(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "sam", "support")
    console = await console_sign_in(client, "sam")

    response = await console.get("/admin/audit")

    assert response.status_code == 403
    assert 'data-status="403"' in response.text
    assert 'href="/admin/audit"' not in response.text
    nav = (await console.get("/admin/orders")).text
    assert 'href="/admin/orders"' in nav
    assert 'href="/admin/audit"' not in nav


async def test_the_language_is_chinese_by_default_and_switches_to_english(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)
    assert "概览" in (await console.get("/admin/")).text

    switched = await client.get("/lang/en?next=/admin/orders", headers=HTML)

    assert switched.status_code == 303
    assert switched.headers["location"] == "/admin/orders"
    page = await console.get("/admin/")
    assert "Dashboard" in page.text
    assert "概览" not in page.text
    assert '<html lang="en">' in page.text
    await client.get("/lang/zh", headers=HTML)
    assert "概览" in (await console.get("/admin/")).text


async def test_an_unknown_language_or_a_foreign_return_address_is_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/lang/xx?next=https://evil.example/", headers=HTML)

    assert response.headers["location"] == "/admin/"
    assert "lang" not in response.cookies


def test_every_english_message_has_a_chinese_one() -> None:
    from kaquan.web.i18n import MESSAGES

    assert set(MESSAGES["en"]) == set(MESSAGES["zh"])


async def test_the_dashboard_shows_stock_per_sku_and_todays_sales(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 5, code="DASH-1", price_minor=1990)
    assert (await buy(rt, sku, 2)).ok
    await given_user(rt, "fin", "finance")
    console = await console_sign_in(client, "fin")

    page = await console.get("/admin/")

    assert page.status_code == 200
    assert 'data-sku="DASH-1"' in page.text
    assert '<td class="num available">3</td>' in page.text
    assert 'data-currency="CNY"' in page.text
    assert "¥39.80" in page.text


async def test_a_batch_is_imported_with_the_form_and_bad_lines_are_named(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 1, code="IMP-1")
    await given_user(rt, "op", "operator")
    console = await console_sign_in(client, "op")
    codes = random_codes(4)

    done = await console.post(
        "/admin/skus/IMP-1/batches", files={"file": ("codes.txt", "\n".join(codes).encode(), "text/plain")}
    )

    assert done.status_code == 200
    assert 'data-imported="4"' in done.text
    assert 'data-warehouse="main"' in done.text
    bad = "\n".join([random_codes(1)[0], codes[0], random_codes(1)[0]]).encode()  # line 2 is already in stock
    rejected = await console.post(f"/admin/skus/{sku.id}/batches", files={"file": ("bad.txt", bad, "text/plain")})
    assert rejected.status_code == 400
    assert 'data-line="2"' in rejected.text
    assert "1 行被拒绝" in rejected.text


async def test_an_order_is_found_masked_and_revealed_with_a_reason(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 2)
    bought = await buy(rt, sku)
    [secret] = bought.codes
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)

    found = await console.get(f"/admin/orders?q={bought.number}")
    assert f'data-order="{bought.number}"' in found.text
    detail = await console.get(f"/admin/orders/{bought.number}")
    assert secret[-4:] in detail.text
    assert secret not in detail.text
    assert 'id="reveal-form"' in detail.text

    refused = await console.post(f"/admin/orders/{bought.number}/reveal", {"reason": "  "})
    assert refused.status_code == 400
    revealed = await console.post(f"/admin/orders/{bought.number}/reveal", {"reason": "buyer says code fails"})

    assert revealed.status_code == 200
    assert secret in revealed.text
    assert revealed.headers["cache-control"] == "no-store"
    async with rt.db.read() as session:
        actions = list((await session.execute(select(AuditEntry.action, AuditEntry.actor))).all())
    assert ("codes.revealed", "alice") in actions
    trail = await console.get("/admin/audit?action=codes.revealed")
    assert "buyer says code fails" in trail.text
    assert 'href="/admin/audit.csv?action=codes.revealed"' in trail.text


async def test_support_sees_masked_codes_but_no_reveal_form(rt: Runtime, client: httpx.AsyncClient) -> None:
    bought = await buy(rt, await given_sku_with_codes(rt, 1))
    await given_user(rt, "sam", "support")
    console = await console_sign_in(client, "sam")

    detail = await console.get(f"/admin/orders/{bought.number}")

    assert detail.status_code == 200
    assert 'id="reveal-form"' not in detail.text
    refused = await console.post(f"/admin/orders/{bought.number}/reveal", {"reason": "curious"})
    assert refused.status_code == 403


async def test_orders_are_found_by_contact(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)

    none = await console.get("/admin/orders?q=nobody@example.com")

    assert none.status_code == 200
    assert 'id="no-orders"' in none.text


async def test_a_leak_file_is_traced_and_its_batch_quarantined(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 1)
    bought = await buy(rt, sku)
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)
    assert (await console.get("/admin/leaks")).status_code == 200
    leaked = f"{bought.codes[0]}\nNOT-A-KNOWN-CODE-1\n".encode()

    report = await console.post("/admin/leaks", files={"file": ("leak.txt", leaked, "text/plain")})

    assert report.status_code == 200
    assert bought.number in report.text
    assert 'action="/admin/batches/' in report.text
    batch_id = report.text.split('action="/admin/batches/')[1].split("/")[0]
    done = await console.post(f"/admin/batches/{batch_id}/quarantine", {"reason": "found on a forum"})
    assert done.status_code == 200
    assert 'id="quarantined"' in done.text


async def test_a_voucher_is_verified_then_redeemed_once(rt: Runtime, client: httpx.AsyncClient) -> None:
    [code] = await given_vouchers(rt, await given_voucher_sku(rt))
    await given_user(rt, "sam", "support")
    console = await console_sign_in(client, "sam")
    form = csrf_of(await console.get("/admin/redeem"))
    assert form == console.csrf

    verified = await console.post("/admin/redeem", {"code": code, "action": "verify", "nonce": "n" * 16})
    assert 'data-state="redeemable"' in verified.text
    redeemed = await console.post("/admin/redeem", {"code": code, "action": "redeem", "nonce": "m" * 16})
    assert redeemed.status_code == 200
    assert 'data-state="redeemed"' in redeemed.text
    assert await status_of(rt, code) == "redeemed"
    again = await console.post("/admin/redeem", {"code": code, "action": "redeem", "nonce": "k" * 16})
    assert again.status_code == 409
    assert code not in str(again.url)


async def test_every_console_page_renders_for_the_owner(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 1, code="PAGES-1")
    await buy(rt, sku)
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)

    for path in (
        "/admin/",
        "/admin/products",
        "/admin/skus/PAGES-1/batches",
        "/admin/orders",
        "/admin/audit",
        "/admin/leaks",
        "/admin/redeem",
    ):
        page = await console.get(path)
        assert page.status_code == 200, path
        assert 'id="logout"' in page.text, path
        assert page.headers["cache-control"] == "no-store"


async def test_signing_out_ends_the_session(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)

    response = await console.post("/admin/logout")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")
    assert (await client.get("/admin/", headers=HTML)).status_code == 303


async def test_a_refusal_the_shop_has_words_for_is_said_in_the_consoles_language(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)

    chinese = await console.get("/admin/skus/NO-SUCH-SKU/batches")
    client.cookies.set("lang", "en")
    english = await console.get("/admin/skus/NO-SUCH-SKU/batches")

    assert chinese.status_code == english.status_code == 404
    assert 'data-code="sku_not_found"' in chinese.text
    assert "该商品规格不存在。" in chinese.text
    assert "This option does not exist." in english.text
