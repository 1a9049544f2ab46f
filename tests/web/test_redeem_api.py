"""The redemption API: POST /admin/api/redemptions and verify, in the one error shape, behind the lockout."""

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from tests.support.identity import given_user
from tests.support.vouchers import events, given_voucher_sku, given_vouchers, redemption_count, status_of

from kaquan import identity, redemption
from kaquan.identity.permissions import ROLES, Permission
from kaquan.kit import clock
from kaquan.kit.ratelimit import RedisRateLimiter
from kaquan.redemption.vouchers import display
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

URL = "/admin/api/redemptions"


def body(code: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "nonce": secrets.token_hex(8), "device_id": "till-1", "location": "Store 12", **extra}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def test_a_sold_voucher_is_redeemed_and_the_same_scan_again_gets_the_same_answer(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku, order_id=31)
    scan = body(display(code))

    first = await client.post(URL, json=scan, headers=admin_headers)
    again = await client.post(URL, json={**scan, "code": display(code).lower()}, headers=admin_headers)

    assert first.status_code == 200, first.text
    assert again.json() == first.json()
    done = first.json()
    assert (done["order_id"], done["location"], done["device_id"], done["offline"]) == (31, "Store 12", "till-1", False)
    assert done["redeemed_by"]  # the admin principal, whatever identity it carries
    assert code not in first.text and code[:-4] not in first.text
    assert await redemption_count(rt) == 1


async def test_a_second_redemption_is_refused_with_when_and_where(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    first = (await client.post(URL, json=body(code), headers=admin_headers)).json()

    second = await client.post(URL, json=body(code, device_id="till-2"), headers=admin_headers)

    error = assert_error(second, 409, "voucher_already_redeemed")
    assert error["details"]["redeemed_at"].startswith(first["redeemed_at"][:19])
    assert error["details"]["location"] == "Store 12"
    assert await redemption_count(rt) == 1


async def test_an_offline_redemption_is_flagged(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    happened = (clock.now() - timedelta(hours=2)).isoformat()

    response = await client.post(URL, json=body(code, redeemed_offline_at=happened), headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.json()["offline"] is True
    assert response.json()["redeemed_offline_at"] is not None


async def test_verify_says_what_redeeming_would_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_voucher_sku(rt)
    [unsold] = await given_vouchers(rt, sku, sold=False)
    [code] = await given_vouchers(rt, sku)

    async def verify(typed: str) -> httpx.Response:
        return await client.post(f"{URL}/verify", json={"code": typed, "device_id": "till-1"}, headers=admin_headers)

    redeemable = await verify(display(code))
    not_sold = await verify(unsold)
    unknown = await verify("ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ")
    await client.post(URL, json=body(code), headers=admin_headers)
    redeemed = await verify(code)

    assert redeemable.status_code == 200, redeemable.text
    assert (redeemable.json()["state"], redeemable.json()["redeemable"]) == ("redeemable", True)
    assert (not_sold.json()["state"], not_sold.json()["redeemable"]) == ("not_sold", False)
    assert_error(unknown, 404, "voucher_not_found")
    assert redeemed.json()["state"] == "redeemed"
    assert redeemed.json()["redemption"]["location"] == "Store 12"
    assert await status_of(rt, unsold) == "available"
    assert await redemption_count(rt) == 1


async def test_brute_force_is_locked_out_with_retry_after_even_for_a_valid_code(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], redis_or_none: Redis | None
) -> None:
    if redis_or_none is not None:
        rt.limiter = RedisRateLimiter(redis_or_none)
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)

    guesses = [await client.post(URL, json=body(secrets.token_hex(10)), headers=admin_headers) for _ in range(12)]
    valid = await client.post(URL, json=body(code), headers=admin_headers)
    verify = await client.post(f"{URL}/verify", json={"code": code}, headers=admin_headers)

    assert [g.status_code for g in guesses[: redemption.FAILURE_LIMIT]] == [404] * redemption.FAILURE_LIMIT
    for refused in (*guesses[redemption.FAILURE_LIMIT :], valid, verify):
        error = assert_error(refused, 429, "redeem_locked_out")
        assert 1 <= int(refused.headers["Retry-After"]) <= redemption.LOCKOUT_WINDOW_S
        assert error["details"]["retry_after"] == int(refused.headers["Retry-After"])
    assert await status_of(rt, code) == "sold"
    assert await redemption_count(rt) == 0


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"nonce": None}, 422, "validation_error"),
        ({"code": None}, 422, "validation_error"),
        ({"code": ""}, 400, "voucher_code_invalid"),
        ({"code": "   "}, 400, "voucher_code_invalid"),
        ({"code": "A" * 65}, 400, "voucher_code_invalid"),
        ({"code": "A" * 300}, 422, "validation_error"),
        ({"nonce": "bad nonce with spaces"}, 400, "bad_input"),
        ({"device_id": ""}, 422, "validation_error"),
        ({"redeemed_offline_at": "2026-01-01T10:00:00"}, 422, "validation_error"),
        ({"redeemed_offline_at": "2099-01-01T10:00:00Z"}, 400, "bad_input"),
        ({"surprise": 1}, 422, "validation_error"),
    ],
    ids=[
        "missing-nonce",
        "missing-code",
        "empty-code",
        "blank-code",
        "long-code",
        "overlong-code",
        "bad-nonce",
        "empty-device",
        "naive-offline-time",
        "future-offline-time",
        "unknown-field",
    ],
)
async def test_bad_input_is_refused_in_the_one_error_shape_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    change: dict[str, Any],
    status: int,
    error: str,
) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    request = body(code)
    for key, value in change.items():
        if value is None:
            request.pop(key)
        else:
            request[key] = value

    response = await client.post(URL, json=request, headers=admin_headers)

    assert_error(response, status, error)
    assert code not in response.text
    assert await status_of(rt, code) == "sold"
    assert await redemption_count(rt) == 0
    assert await events(rt) == []


async def test_redeeming_and_verifying_need_an_admin(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)

    redeem = await client.post(URL, json=body(code))
    verify = await client.post(f"{URL}/verify", json={"code": code})

    assert_error(redeem, 401, "unauthorized")
    assert_error(verify, 401, "unauthorized")
    assert await status_of(rt, code) == "sold"


async def test_concurrent_requests_redeem_once(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_voucher_sku(rt)
    [one, other] = await given_vouchers(rt, sku, 2)
    same_scan = body(one)

    copies = await asyncio.gather(*(client.post(URL, json=same_scan, headers=admin_headers) for _ in range(8)))
    rivals = await asyncio.gather(
        *(client.post(URL, json=body(other, device_id=f"till-{n}"), headers=admin_headers) for n in range(8))
    )

    assert [c.status_code for c in copies] == [200] * 8
    assert len({c.text for c in copies}) == 1
    assert sorted(r.status_code for r in rivals) == [200] + [409] * 7
    assert await redemption_count(rt) == 2


async def test_a_code_is_never_sent_in_a_url_where_access_logs_would_keep_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get(f"{URL}/verify", params={"code": "ABCDE-FGHJK-LMNPQ-RSTUV"}, headers=admin_headers)

    assert response.status_code == 405


async def test_more_tokens_and_more_addresses_buy_no_more_guesses_than_one_user_has(rt: Runtime) -> None:
    """The account counter is the user behind the credential: a token (or session) is free to mint."""
    sku = await given_voucher_sku(rt)
    [code] = await given_vouchers(rt, sku)
    user = await given_user(rt, "clerk", "support")
    tokens = []
    for n in range(redemption.FAILURE_LIMIT + 1):
        async with rt.db.transaction() as session:
            _, token = await identity.create_token(
                session,
                user.id,
                f"till {n}",
                [Permission.REDEEM],
                expires_in_days=1,
                allowed=ROLES["support"],
                actor="t",
            )
        tokens.append(token)
    app = create_app(rt=rt)

    async def scan_from(n: int, code: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n}", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
            headers = {"Authorization": f"Bearer {tokens[n]}"}
            return await http.post(URL, json=body(code, device_id=f"till-{n}"), headers=headers)

    guesses = [await scan_from(n, secrets.token_hex(10)) for n in range(redemption.FAILURE_LIMIT)]
    valid = await scan_from(redemption.FAILURE_LIMIT, code)

    assert [g.status_code for g in guesses] == [404] * redemption.FAILURE_LIMIT
    error = assert_error(valid, 429, "redeem_locked_out")
    assert error["details"]["locked"] == ["account"]
    assert await status_of(rt, code) == "sold"
    assert await redemption_count(rt) == 0
