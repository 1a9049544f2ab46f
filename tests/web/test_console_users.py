"""The console's users page (owners) and every operator's own page: password, two-factor, API tokens.

The pages call the identity service the admin API calls: usernames, password strength and roles are
checked there, one cannot disable oneself, a token's plaintext and a TOTP secret are shown once.
"""

import csv
import io
import re

import httpx
from openpyxl import load_workbook
from tests.support.console import HTML, Console, console_sign_in, login_form
from tests.support.identity import PASSWORD, given_user, row_counts, user_row

from kaquan.identity.credentials import totp_code, totp_step
from kaquan.kit import clock
from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.web.deps import SESSION_COOKIE

NEW_PASSWORD = "a much longer brand new passphrase"


async def owner(rt: Runtime, client: httpx.AsyncClient) -> Console:
    await given_user(rt, "alice", "owner")
    return await console_sign_in(client)


def shown(page: httpx.Response, element: str) -> str:
    found = re.search(rf'id="{element}">([^<]+)<', page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_an_owner_creates_a_user_with_a_role_and_bad_input_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    console = await owner(rt, client)
    page = await console.get("/admin/users")
    assert page.status_code == 200 and 'id="nav-users"' in page.text and 'data-user="alice"' in page.text
    assert "所有者" in page.text and '<option value="finance">财务</option>' in page.text

    before = await row_counts(rt)
    for bad in (
        {"username": "Bad Name!", "password": PASSWORD, "role": "support"},
        {"username": "sam", "password": "short", "role": "support"},
        {"username": "sam", "password": PASSWORD, "role": "emperor"},
    ):
        refused = await console.post("/admin/users", bad)
        assert refused.status_code in (400, 422) and 'id="error-message"' in refused.text, bad
        assert PASSWORD not in refused.text
    assert await row_counts(rt) == before

    created = await console.post("/admin/users", {"username": "Sam", "password": PASSWORD, "role": "support"})
    assert created.status_code == 303 and created.headers["location"] == "/admin/users?done=created"
    assert (await user_row(rt, "sam")).role == "support"
    assert (await console.post("/admin/users", {"username": "sam", "password": PASSWORD, "role": "support"})).is_error
    assert "客服" in (await console.get("/admin/users")).text


async def test_disabling_ends_a_users_sign_in_and_an_owner_cannot_disable_itself(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    console = await owner(rt, client)
    sam = await given_user(rt, "sam", "support")
    me = await user_row(rt, "alice")

    refused = await console.post(f"/admin/users/{me.id}/disable")
    assert refused.status_code == 409 and not (await user_row(rt, "alice")).disabled
    assert (await console.post(f"/admin/users/{sam.id}/disable")).status_code == 303
    assert (await user_row(rt, "sam")).disabled
    page = await console.get("/admin/users?done=disabled")
    assert "已停用" in page.text and f'action="/admin/users/{sam.id}/enable"' in page.text
    assert f'action="/admin/users/{me.id}/disable"' not in page.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt=rt)), base_url="http://t") as other:
        assert (await login_form(other, "sam", PASSWORD)).status_code == 401
    assert (await console.post(f"/admin/users/{sam.id}/enable")).status_code == 303
    assert not (await user_row(rt, "sam")).disabled
    assert (await console.post("/admin/users/999999/enable")).status_code == 404


async def test_the_users_list_downloads_with_roles_and_states_as_words(rt: Runtime, client: httpx.AsyncClient) -> None:
    console = await owner(rt, client)
    await given_user(rt, "fiona", "finance")

    rows = list(csv.reader(io.StringIO((await console.get("/admin/users.csv")).content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["用户名", "角色", "状态"] and "Asia/Shanghai" in rows[0][5]
    assert rows[2][:4] == ["fiona", "财务", "正常", "否"]
    client.cookies.set("lang", "en")
    sheet = load_workbook(io.BytesIO((await console.get("/admin/users.xlsx")).content)).active
    assert sheet is not None and [c.value for c in sheet[3]][:3] == ["fiona", "finance", "active"]


async def test_only_owners_manage_users_and_others_see_no_link(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "olga", "operator")
    sam = await given_user(rt, "sam", "support")
    console = await console_sign_in(client, "olga")
    before = await row_counts(rt)

    page = await console.get("/admin/me")
    assert page.status_code == 200 and 'id="nav-users"' not in page.text and "运营" in page.text
    assert (await console.get("/admin/users")).status_code == 403
    assert (await console.get("/admin/users.csv")).status_code == 403
    assert (
        await console.post("/admin/users", {"username": "x1", "password": PASSWORD, "role": "owner"})
    ).status_code == 403
    assert (await console.post(f"/admin/users/{sam.id}/disable")).status_code == 403
    assert await row_counts(rt) == before


async def test_changing_ones_own_password_needs_the_current_one(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "fiona", "finance")
    console = await console_sign_in(client, "fiona")
    before = await row_counts(rt)

    wrong = {
        "current_password": "not my password at all",
        "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD,
    }
    refused = await console.post("/admin/me/password", wrong)
    assert refused.status_code == 400 and 'data-code="wrong_password"' in refused.text
    differ = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD + "x"}
    assert (await console.post("/admin/me/password", differ)).status_code == 400
    weak = {"current_password": PASSWORD, "new_password": "short", "repeat_password": "short"}
    assert (await console.post("/admin/me/password", weak)).status_code == 400
    assert await row_counts(rt) == before

    good = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}
    changed = await console.post("/admin/me/password", good)
    assert changed.status_code == 303 and changed.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=")
    page = await client.get("/admin/me?done=password", headers=HTML)
    assert page.status_code == 200 and "密码已修改" in page.text  # this browser stays signed in
    client.cookies.clear()
    assert (await login_form(client, "fiona", PASSWORD)).status_code == 401
    assert (await login_form(client, "fiona", NEW_PASSWORD)).status_code == 303


async def test_enrolling_totp_shows_a_qr_code_and_the_uri_once_then_asks_for_a_code(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "sam", "support")
    console = await console_sign_in(client, "sam")
    assert 'id="totp-start"' in (await console.get("/admin/me")).text

    enrol = await console.post("/admin/me/totp")
    assert enrol.status_code == 200 and enrol.headers["cache-control"] == "no-store"
    uri, secret = shown(enrol, "totp-uri"), shown(enrol, "totp-secret")
    assert uri.startswith("otpauth://totp/") and secret in uri
    assert "<svg" in enrol.text.split('id="totp-qr"', 1)[1]

    wrong = f"{(int(totp_code(secret, totp_step(clock.now()))) + 1) % 10**6:06d}"
    assert (await console.post("/admin/me/totp/confirm", {"code": wrong})).status_code == 400
    assert not (await user_row(rt, "sam")).totp_enabled
    assert (await console.post("/admin/me/totp/confirm", {"code": "12"})).status_code == 400
    ok = await console.post("/admin/me/totp/confirm", {"code": totp_code(secret, totp_step(clock.now()))})
    assert ok.status_code == 303 and (await user_row(rt, "sam")).totp_enabled
    page = await console.get("/admin/me")
    assert 'data-on="1"' in page.text and secret not in page.text
    assert (await console.post("/admin/me/totp")).status_code == 409

    await given_user(rt, "alice", "owner")
    client.cookies.clear()
    boss = await console_sign_in(client, "alice")
    sam = await user_row(rt, "sam")
    assert f'action="/admin/users/{sam.id}/totp/reset"' in (await boss.get("/admin/users")).text
    assert (await boss.post(f"/admin/users/{sam.id}/totp/reset")).status_code == 303
    assert not (await user_row(rt, "sam")).totp_enabled


async def test_an_api_token_is_shown_once_works_as_a_bearer_and_is_revoked(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "fiona", "finance")
    console = await console_sign_in(client, "fiona")
    page = await console.get("/admin/me")
    assert 'value="finance.read"' in page.text and 'value="users.manage"' not in page.text  # only one's own

    before = await row_counts(rt)
    assert (await console.post("/admin/me/tokens", {"name": "", "scopes": "finance.read"})).status_code == 400
    assert (await console.post("/admin/me/tokens", {"name": "bi"})).status_code == 400  # no scope
    assert (await console.post("/admin/me/tokens", {"name": "bi", "scopes": "users.manage"})).status_code == 403
    assert (
        await console.post("/admin/me/tokens", {"name": "bi", "scopes": "finance.read", "expires_in_days": "999"})
    ).status_code == 400
    assert await row_counts(rt) == before

    created = await console.post(
        "/admin/me/tokens", {"name": "月度报表", "scopes": "finance.read", "expires_in_days": "30"}
    )
    assert created.status_code == 200
    token = shown(created, "secret-value")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/admin/api/ledger/check", headers=bearer)).status_code == 200
    page = await console.get("/admin/me")
    assert "月度报表" in page.text and token not in page.text and "有效" in page.text
    rows = list(csv.reader(io.StringIO((await console.get("/admin/me/tokens.csv")).content.decode("utf-8-sig"))))
    assert rows[1][:4] == ["月度报表", rows[1][1], "查看财务", "有效"] and token.startswith(rows[1][1])
    assert token not in rows[1]

    token_id = re.search(r'data-token="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    assert (await console.post(f"/admin/me/tokens/{token_id}/revoke")).status_code == 303
    assert (await client.get("/admin/api/ledger/check", headers=bearer)).status_code == 401
    assert "已吊销" in (await console.get("/admin/me")).text
