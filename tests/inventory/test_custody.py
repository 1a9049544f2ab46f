"""Code custody: an admin sees plaintext codes only with the reveal permission and a reason, and it is recorded.

A quarantined batch voids its unsold codes now and the codes unpaid orders
still hold when those orders release them; stock still adds up.
"""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.builders import buy, given_sku_with_codes, place_order, stock_of

from kaquan.audit.models import AuditEntry
from kaquan.inventory import custody
from kaquan.inventory.levels import Stock
from kaquan.inventory.models import Batch, Reveal
from kaquan.orders import service as orders
from kaquan.runtime import Runtime


async def counts(rt: Runtime) -> dict[str, int]:
    async with rt.db.read() as session:
        return {
            model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (AuditEntry, Reveal)
        }


async def last_audit(rt: Runtime) -> AuditEntry:
    async with rt.db.read() as session:
        return (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).scalar_one()


async def reveal(client: httpx.AsyncClient, headers: dict[str, str], number: str, body: Any) -> httpx.Response:
    return await client.post(f"/admin/api/orders/{number}/reveal", json=body, headers=headers)


async def test_an_admin_reveal_with_a_reason_returns_the_codes_and_records_who_when_why(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    bought = await buy(rt, sku, 2)

    response = await reveal(client, admin_headers, bought.number, {"reason": "  buyer says code 2 is  invalid "})

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert sorted(c["secret"] for c in response.json()["codes"]) == sorted(bought.codes)
    entry = await last_audit(rt)
    assert (entry.action, entry.target) == ("codes.revealed", f"order:{bought.number}")
    assert entry.after == {"codes": 2, "serials": 0, "reason": "buyer says code 2 is invalid"}
    assert entry.ip is not None
    assert not any(code in str(entry.after) + str(entry.before) for code in bought.codes)
    async with rt.db.read() as session:
        last = (await session.execute(select(Reveal).order_by(Reveal.id.desc()).limit(1))).scalar_one()
    assert (last.viewer, last.reason, last.units) == (entry.actor, "buyer says code 2 is invalid", 2)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reason": ""}, 400, "reason_required"),
        ({"reason": "   "}, 400, "reason_required"),
        ({"reason": "x" * 201}, 400, "reason_required"),
        ({}, 422, "validation_error"),
    ],
)
async def test_a_reveal_without_a_fitting_reason_is_refused_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], body: Any, status: int, code: str
) -> None:
    sku = await given_sku_with_codes(rt, 2)
    bought = await buy(rt, sku)
    before = await counts(rt)

    response = await reveal(client, admin_headers, bought.number, body)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert bought.codes[0] not in response.text
    assert await counts(rt) == before


async def test_revealing_an_unknown_or_undelivered_order_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 2)
    unpaid, _, _ = await place_order(rt, sku)
    before = await counts(rt)

    unknown = await reveal(client, admin_headers, "K000000000", {"reason": "checking"})
    undelivered = await reveal(client, admin_headers, unpaid, {"reason": "checking"})

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "order_not_found")
    assert (undelivered.status_code, undelivered.json()["error"]["code"]) == (409, "nothing_to_reveal")
    assert await counts(rt) == before


async def test_a_reveal_needs_an_admin(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 1)
    bought = await buy(rt, sku)

    response = await reveal(client, {}, bought.number, {"reason": "curious"})

    assert response.status_code == 401
    assert bought.codes[0] not in response.text


async def test_admins_otherwise_see_codes_masked_and_nothing_is_recorded(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    bought = await buy(rt, sku, 2)
    before = await counts(rt)

    response = await client.get(f"/admin/api/orders/{bought.number}/codes", headers=admin_headers)

    assert response.status_code == 200
    shown = response.json()
    assert sorted(c["secret"][-4:] for c in shown) == sorted(code[-4:] for code in bought.codes)
    assert all(c["secret"].startswith("•") and c["status"] == "sold" for c in shown)
    assert not any(code in response.text for code in bought.codes)
    assert await counts(rt) == before


# --- quarantine ---------------------------------------------------------------------------------


async def batch_of(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.max(Batch.id)))).scalar_one()


async def test_quarantine_voids_unsold_codes_now_and_held_codes_when_released(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    batch_id = await batch_of(rt)
    await buy(rt, sku)
    unpaid, _, _ = await place_order(rt, sku, 2)

    response = await client.post(
        f"/admin/api/batches/{batch_id}/quarantine", json={"reason": "codes on a forum"}, headers=admin_headers
    )

    assert response.status_code == 200, response.text
    assert response.json() | {"quarantined_at": None} == {
        "batch_id": batch_id,
        "quarantined_at": None,
        "already": False,
        "voided": 7,
        "held_by_unpaid_orders": 2,
        "sold": 1,
    }
    assert await stock_of(rt, sku) == Stock(
        sku_id=sku.id, warehouse="main", imported=10, available=0, reserved=2, sold=1, redeemed=0, voided=7
    )
    entry = await last_audit(rt)
    assert (entry.action, entry.target, (entry.after or {})["reason"]) == (
        "batch.quarantined",
        f"batch:{batch_id}",
        "codes on a forum",
    )

    async with rt.db.transaction() as session:
        await orders.cancel(rt.db, session, (await orders.by_number(session, unpaid)).id)

    after = await stock_of(rt, sku)
    assert (after.available, after.reserved, after.sold, after.voided) == (0, 0, 1, 9)
    assert after.adds_up
    assert (await buy(rt, sku)).error == "out_of_stock"


async def test_quarantine_runs_again_harmlessly(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    batch_id = await batch_of(rt)
    async with rt.db.transaction() as session:
        first = await custody.quarantine(rt.db, session, batch_id, actor="sec", reason="leak")
    async with rt.db.transaction() as session:
        second = await custody.quarantine(rt.db, session, batch_id, actor="sec", reason="leak")

    assert (first.already, first.voided) == (False, 3)
    assert (second.already, second.voided, second.quarantined_at) == (True, 0, first.quarantined_at)
    assert (await stock_of(rt, sku)).voided == 3


async def test_released_codes_of_a_clean_batch_return_to_stock(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    unpaid, _, _ = await place_order(rt, sku, 2)

    async with rt.db.transaction() as session:
        await orders.cancel(rt.db, session, (await orders.by_number(session, unpaid)).id)

    assert (await stock_of(rt, sku)).available == 3


async def test_quarantining_an_unknown_batch_or_without_a_reason_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    batch_id = await batch_of(rt)
    before = await counts(rt), await stock_of(rt, sku)

    unknown = await client.post("/admin/api/batches/9999/quarantine", json={"reason": "x"}, headers=admin_headers)
    no_reason = await client.post(
        f"/admin/api/batches/{batch_id}/quarantine", json={"reason": " "}, headers=admin_headers
    )

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "batch_not_found")
    assert (no_reason.status_code, no_reason.json()["error"]["code"]) == (400, "reason_required")
    assert (await counts(rt), await stock_of(rt, sku)) == before
    async with rt.db.read() as session:
        assert (await session.get(Batch, batch_id)).quarantined_at is None  # type: ignore[union-attr]
