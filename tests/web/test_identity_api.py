"""Admin identity over HTTP: sign-in cookies, CSRF, sessions, users, API tokens and two-factor codes.

Every refusal comes in the one error shape and changes nothing.
"""

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter
from tests.support.http import answer_without_request_id, the_error
from tests.support.identity import PASSWORD, HeadersFor, error_code, given_user, row_counts, sign_in

from kaquan.identity.credentials import totp_code, totp_step
from kaquan.identity.permissions import Permission
from kaquan.kit import clock
from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.web.deps import Principal, require


def set_cookie(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


async def test_signing_in_sets_a_strict_httponly_cookie_and_returns_the_csrf_token(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, role="support")

    response = await client.post("/admin/api/session", json={"username": "alice", "password": PASSWORD})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == "alice" and body["role"] == "support" and len(body["csrf_token"]) >= 40
    morsel = set_cookie(response)["kq_admin"]
    assert morsel["httponly"] and morsel["samesite"] == "strict" and morsel["path"] == "/admin"
    assert not morsel["secure"]  # plain http in this test; see the https test below
    assert morsel.value not in response.text
    me = await client.get("/admin/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["via"] == "session" and "orders.support" in me.json()["permissions"]


async def test_the_cookie_is_secure_when_the_site_is_https(rt: Runtime) -> None:
    await given_user(rt)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.test") as https:
        response = await https.post("/admin/api/session", json={"username": "alice", "password": PASSWORD})

    assert set_cookie(response)["kq_admin"]["secure"]


async def test_unknown_user_and_wrong_password_get_the_same_answer(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt)

    unknown = await client.post("/admin/api/session", json={"username": "mallory", "password": PASSWORD})
    wrong = await client.post("/admin/api/session", json={"username": "alice", "password": "wrong password"})

    assert the_error(unknown, 401, "login_failed") == the_error(wrong, 401, "login_failed")
    assert answer_without_request_id(unknown) == answer_without_request_id(wrong)
    assert "set-cookie" not in unknown.headers and "set-cookie" not in wrong.headers


def from_address(rt: Runtime, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(rt=rt), client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test")


async def test_wrong_passwords_from_five_addresses_do_not_lock_the_owner_out_but_one_guesser_is_slowed(
    rt: Runtime,
) -> None:
    await given_user(rt)
    for n in range(5):
        async with from_address(rt, f"203.0.113.{n}") as attacker:
            wrong = await attacker.post("/admin/api/session", json={"username": "alice", "password": f"wrong {n}"})
        the_error(wrong, 401, "login_failed")

    async with from_address(rt, "198.51.100.7") as owner:
        signed_in = await owner.post("/admin/api/session", json={"username": "alice", "password": PASSWORD})
    async with from_address(rt, "203.0.113.0") as attacker:
        before = await row_counts(rt)
        refused = await attacker.post("/admin/api/session", json={"username": "alice", "password": PASSWORD})

    assert signed_in.status_code == 200, signed_in.text
    error = the_error(refused, 429, "login_throttled")
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert error["retry_after"] == int(refused.headers["Retry-After"])
    assert await row_counts(rt) == before


async def test_a_cookie_request_that_changes_something_needs_the_csrf_token(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt)
    browser = await sign_in(client)
    before = await row_counts(rt)
    product = {"name": "New", "kind": "voucher"}

    missing = await client.post("/admin/api/products", json=product)
    wrong = await client.post("/admin/api/products", json=product, headers={"X-CSRF-Token": "x" + browser.csrf})
    empty = await client.post("/admin/api/products", json=product, headers={"X-CSRF-Token": ""})

    for response in (missing, wrong, empty):
        the_error(response, 403, "csrf_failed")
    assert await row_counts(rt) == before
    assert (await client.get("/admin/api/products")).status_code == 200  # reading needs no token
    created = await client.post("/admin/api/products", json=product, headers=browser.csrf_header)
    assert created.status_code == 201, created.text


async def test_a_form_may_carry_the_csrf_token_as_a_field(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/admin/api/skus",
        json={"product_id": 0, "code": "X"},
        headers=admin_headers,
    )
    assert created.status_code in (404, 422), created.text  # the token works without CSRF
    await given_user(rt)
    browser = await sign_in(client)
    await client.post("/admin/api/products", json={"name": "P", "kind": "voucher"}, headers=browser.csrf_header)
    sku = {"product_id": 1, "code": "VOUCHER-1", "name": "V", "face_value_minor": 100, "price_minor": 100}
    assert (await client.post("/admin/api/skus", json=sku, headers=browser.csrf_header)).status_code == 201
    upload = {"file": ("codes.txt", b"AAAABBBBCCCCDDDD\nEEEEFFFFGGGGHHHH\n", "text/plain")}
    before = await row_counts(rt)

    refused = await client.post("/admin/api/skus/VOUCHER-1/batches", files=upload, data={"csrf_token": "nope"})
    the_error(refused, 403, "csrf_failed")
    assert await row_counts(rt) == before
    accepted = await client.post("/admin/api/skus/VOUCHER-1/batches", files=upload, data={"csrf_token": browser.csrf})

    assert accepted.status_code == 201, accepted.text


async def test_a_bearer_token_needs_no_csrf_token_and_a_cookie_alone_is_not_a_bearer(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/admin/api/products", json={"name": "P", "kind": "voucher"}, headers=admin_headers)

    assert response.status_code == 201, response.text
    client.cookies.set("kq_admin", admin_headers["Authorization"].removeprefix("Bearer "), path="/admin")
    the_error(await client.get("/admin/api/me"), 401, "unauthorized")


async def test_an_expired_session_is_refused_and_changes_nothing(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt)
    browser = await sign_in(client)
    clock.travel(31 * 60)
    before = await row_counts(rt)

    the_error(await client.get("/admin/api/me"), 401, "unauthorized")
    response = await client.post("/admin/api/products", json={"name": "P", "kind": "x"}, headers=browser.csrf_header)

    the_error(response, 401, "unauthorized")
    assert await row_counts(rt) == before


async def test_logging_out_ends_the_session_and_clears_the_cookie(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt)
    browser = await sign_in(client)
    cookie = client.cookies["kq_admin"]

    without_csrf = await client.delete("/admin/api/session")
    the_error(without_csrf, 403, "csrf_failed")
    assert (await client.get("/admin/api/me")).status_code == 200
    response = await client.delete("/admin/api/session", headers=browser.csrf_header)

    assert response.status_code == 204
    assert 'kq_admin=""' in response.headers["set-cookie"]
    client.cookies.set("kq_admin", cookie, path="/admin")  # a copy kept by an attacker is dead too
    the_error(await client.get("/admin/api/me"), 401, "unauthorized")
    assert (await client.delete("/admin/api/session")).status_code == 204  # signing out twice is harmless


async def test_a_password_change_ends_other_sessions_and_renews_this_one(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as laptop:
        await sign_in(laptop)
        browser = await sign_in(client)
        new = {"current_password": PASSWORD, "new_password": "another fine passphrase"}

        response = await client.post("/admin/api/me/password", json=new, headers=browser.csrf_header)

        assert response.status_code == 200, response.text
        assert response.json()["sessions_revoked"] == 2
        fresh = response.json()["csrf_token"]
        assert (await client.get("/admin/api/me")).status_code == 200
        the_error(await laptop.get("/admin/api/me"), 401, "unauthorized")
        again = {"current_password": "another fine passphrase", "new_password": "and yet another phrase"}
        assert (await client.post("/admin/api/me/password", json=again, headers={"X-CSRF-Token": fresh})).is_success


async def test_own_credentials_cannot_be_changed_with_an_api_token(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = await row_counts(rt)
    new = {"current_password": "whatever it is", "new_password": "another fine passphrase"}

    for path, body in [("/admin/api/me/password", new), ("/admin/api/me/totp", None)]:
        the_error(await client.post(path, json=body, headers=admin_headers), 401, "session_required")

    assert await row_counts(rt) == before


# --- permissions ----------------------------------------------------------------------------------------------


@pytest.fixture
async def with_finance_route(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app plus one finance action (the ledger's own routes come with the ledger)."""
    finance = APIRouter(prefix="/admin/api")

    @finance.post("/test-finance/settle")
    async def settle(admin: Annotated[Principal, require(Permission.FINANCE_WRITE)]) -> dict[str, str]:
        return {"settled_by": admin.actor}

    app = create_app(rt=rt)
    app.include_router(finance)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        yield http


async def test_a_support_user_is_refused_a_finance_action_and_finance_is_not(
    rt: Runtime, with_finance_route: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    support, finance = await headers_for("support"), await headers_for("finance")
    before = await row_counts(rt)

    refused = await with_finance_route.post("/admin/api/test-finance/settle", headers=support)

    assert the_error(refused, 403, "forbidden") == {"permission": "finance.write"}
    assert await row_counts(rt) == before
    allowed = await with_finance_route.post("/admin/api/test-finance/settle", headers=finance)
    assert allowed.status_code == 200 and allowed.json()["settled_by"].startswith("finance-")


async def test_a_token_without_the_scope_is_refused_even_when_the_role_has_it(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    reader = await headers_for("owner", scopes=[Permission.CATALOG_READ])
    before = await row_counts(rt)

    refused = await client.post("/admin/api/products", json={"name": "P", "kind": "voucher"}, headers=reader)

    assert the_error(refused, 403, "forbidden") == {"permission": "catalog.write"}
    assert await row_counts(rt) == before
    assert (await client.get("/admin/api/products", headers=reader)).status_code == 200


# --- users ------------------------------------------------------------------------------------------------------


async def test_an_owner_creates_lists_disables_and_enables_users(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"username": "Sam", "password": "a long enough password", "role": "support"}
    created = await client.post("/admin/api/users", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    sam = created.json()
    assert sam["username"] == "sam" and sam["role"] == "support" and "password" not in str(sam)

    listed = await client.get("/admin/api/users", headers=admin_headers)
    assert [u["username"] for u in listed.json()] == ["owner", "sam"]
    assert all("hash" not in key for user in listed.json() for key in user)

    await sign_in(client, "sam", "a long enough password")
    disabled = await client.post(f"/admin/api/users/{sam['id']}/disable", headers=admin_headers)
    assert disabled.json()["disabled"] is True
    the_error(await client.get("/admin/api/me"), 401, "unauthorized")
    refused = await client.post("/admin/api/session", json={"username": "sam", "password": "a long enough password"})
    the_error(refused, 401, "login_failed")
    enabled = await client.post(f"/admin/api/users/{sam['id']}/enable", headers=admin_headers)
    assert enabled.json()["disabled"] is False
    await sign_in(client, "sam", "a long enough password")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "sam", "password": "too short", "role": "support"}, 400, "weak_password"),
        ({"username": "owner", "password": "a long enough password", "role": "support"}, 409, "username_taken"),
        ({"username": "sam", "password": "a long enough password", "role": "root"}, 422, "validation_error"),
        ({"username": "-sam", "password": "a long enough password", "role": "support"}, 422, "validation_error"),
        ({"username": "sam", "password": "a long enough password"}, 422, "validation_error"),
    ],
    ids=["weak-password", "duplicate", "unknown-role", "bad-username", "no-role"],
)
async def test_a_bad_user_is_refused_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    body: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = await row_counts(rt)

    the_error(await client.post("/admin/api/users", json=body, headers=admin_headers), status, code)

    assert await row_counts(rt) == before


async def test_an_owner_cannot_disable_itself(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    me = (await client.get("/admin/api/me", headers=admin_headers)).json()
    before = await row_counts(rt)

    the_error(
        await client.post(f"/admin/api/users/{me['id']}/disable", headers=admin_headers), 409, "cannot_disable_self"
    )
    the_error(await client.post("/admin/api/users/999/disable", headers=admin_headers), 404, "user_not_found")

    assert await row_counts(rt) == before


# --- API tokens --------------------------------------------------------------------------------------------------


async def test_tokens_are_created_listed_without_secret_and_revoked(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    support = await headers_for("support")
    created = await client.post(
        "/admin/api/tokens", json={"name": "helpdesk bot", "scopes": ["orders.read"]}, headers=support
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    bot = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/admin/api/me", headers=bot)).status_code == 403  # no account.self scope
    assert (await client.get("/admin/api/stock", headers=bot)).status_code == 403

    listed = await client.get("/admin/api/tokens", headers=support)
    assert token not in listed.text
    assert [t["name"] for t in listed.json()] == ["test", "helpdesk bot"]

    revoked = await client.delete(f"/admin/api/tokens/{created.json()['id']}", headers=support)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    the_error(await client.get("/admin/api/orders/x", headers=bot), 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "scopes": ["finance.write"]}, 403, "scope_not_allowed"),
        ({"name": "x", "scopes": ["users.manage", "orders.read"]}, 403, "scope_not_allowed"),
        ({"name": "x", "scopes": []}, 422, "validation_error"),
        ({"name": "x", "scopes": ["root"]}, 422, "validation_error"),
        ({"name": "x", "scopes": ["orders.read"], "expires_in_days": 0}, 422, "validation_error"),
        ({"name": "x", "scopes": ["orders.read"], "expires_in_days": 3650}, 422, "validation_error"),
    ],
    ids=["beyond-role", "partly-beyond", "no-scope", "unknown-scope", "no-lifetime", "too-long-lived"],
)
async def test_a_bad_token_request_is_refused_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    headers_for: HeadersFor,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    support = await headers_for("support")
    before = await row_counts(rt)

    the_error(await client.post("/admin/api/tokens", json=body, headers=support), status, code)

    assert await row_counts(rt) == before


async def test_an_expired_token_is_refused(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    headers = await headers_for("auditor")  # 30 days
    assert (await client.get("/admin/api/stock", headers=headers)).status_code == 200

    clock.travel(30 * 86_400)

    the_error(await client.get("/admin/api/stock", headers=headers), 401, "unauthorized")


async def test_a_token_mints_no_child_that_outlives_it_or_survives_its_revocation(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    support = await headers_for("support")  # a token of 30 days
    day = await client.post(
        "/admin/api/tokens",
        json={"name": "one day", "scopes": ["orders.read", "account.self"], "expires_in_days": 1},
        headers=support,
    )
    parent = {"Authorization": f"Bearer {day.json()['token']}"}

    minted = await client.post(
        "/admin/api/tokens", json={"name": "forever", "scopes": ["orders.read"], "expires_in_days": 366}, headers=parent
    )
    assert minted.status_code == 201, minted.text
    child = {"Authorization": f"Bearer {minted.json()['token']}"}
    assert minted.json()["expires_at"] == day.json()["expires_at"]
    assert (await client.get("/admin/api/orders/x", headers=child)).status_code == 404  # alive, may read orders

    revoked = await client.delete(f"/admin/api/tokens/{day.json()['id']}", headers=support)

    assert revoked.status_code == 200
    the_error(await client.get("/admin/api/orders/x", headers=child), 401, "unauthorized")
    listed = {t["id"]: t for t in (await client.get("/admin/api/tokens", headers=support)).json()}
    assert listed[minted.json()["id"]]["revoked_at"] is not None


async def test_a_token_created_in_a_session_is_its_own_credential_and_outlives_sign_out(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    """By design: scripts hold tokens for days; a browser session lasts hours. Revoke tokens by hand."""
    await given_user(rt)
    browser = await sign_in(client)
    created = await client.post(
        "/admin/api/tokens", json={"name": "ci", "scopes": ["catalog.read"]}, headers=browser.csrf_header
    )
    assert created.status_code == 201 and created.json()["parent_id"] is None

    assert (await client.delete("/admin/api/session", headers=browser.csrf_header)).status_code == 204

    bot = {"Authorization": f"Bearer {created.json()['token']}"}
    assert (await client.get("/admin/api/products", headers=bot)).status_code == 200


async def test_nobody_revokes_someone_elses_token(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor, admin_headers: dict[str, str]
) -> None:
    support = await headers_for("support")
    [owner_token] = (await client.get("/admin/api/tokens", headers=admin_headers)).json()
    before = await row_counts(rt)

    the_error(await client.delete(f"/admin/api/tokens/{owner_token['id']}", headers=support), 404, "token_not_found")

    assert await row_counts(rt) == before
    assert (await client.get("/admin/api/me", headers=admin_headers)).status_code == 200


# --- two-factor codes -----------------------------------------------------------------------------------------


async def test_two_factor_sign_in_is_enrolled_confirmed_and_then_required(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt)
    browser = await sign_in(client)
    enrol = await client.post("/admin/api/me/totp", headers=browser.csrf_header)
    assert enrol.status_code == 201, enrol.text
    secret = enrol.json()["secret"]
    before = await row_counts(rt)
    wrong = f"{(int(totp_code(secret, totp_step(clock.now()))) + 1) % 10**6:06d}"
    bad = await client.post("/admin/api/me/totp/confirm", json={"code": wrong}, headers=browser.csrf_header)
    the_error(bad, 400, "totp_invalid")
    assert await row_counts(rt) == before

    code = totp_code(secret, totp_step(clock.now()))
    confirmed = await client.post("/admin/api/me/totp/confirm", json={"code": code}, headers=browser.csrf_header)
    assert confirmed.status_code == 204, confirmed.text
    clock.travel(30)

    asked = await client.post("/admin/api/session", json={"username": "alice", "password": PASSWORD})
    assert error_code(asked) == "totp_required" and asked.status_code == 401
    replayed = await client.post("/admin/api/session", json={"username": "alice", "password": PASSWORD, "totp": code})
    the_error(replayed, 401, "login_failed")
    await sign_in(client, totp=totp_code(secret, totp_step(clock.now())))
    assert (await client.get("/admin/api/me")).json()["totp_enabled"] is True
