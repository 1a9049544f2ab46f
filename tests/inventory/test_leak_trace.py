"""Leak tracing: each leaked code traced by fingerprint to its batch, supplier, order, channel and reveals."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.builders import buy, given_codes, given_sku, random_codes

from kaquan.all_models import metadata
from kaquan.inventory.delivery import mask
from kaquan.kit.crypto import SecretBox
from kaquan.orders.trace import trace_leaks
from kaquan.runtime import Runtime


async def state(rt: Runtime) -> dict[str, Any]:
    async with rt.db.read() as session:
        return {
            table.name: (await session.execute(select(func.count()).select_from(table))).scalar_one()
            for table in metadata.sorted_tables
        }


async def given_leak(rt: Runtime, client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    sku = await given_sku(rt, code="GAME-100")
    codes = random_codes(4)
    batch = await given_codes(rt, sku, codes, supplier="Acme Cards")
    bought = await buy(rt, sku, 1)
    revealed = await client.post(
        f"/admin/api/orders/{bought.number}/reveal", json={"reason": "support ticket 7"}, headers=headers
    )
    assert revealed.status_code == 200
    unsold = next(code for code in codes if code not in bought.codes)
    return {"batch": batch, "sold": bought.codes[0], "unsold": unsold, "order": bought.number}


async def test_each_leaked_code_is_traced_to_where_it_came_from_and_went(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    leak = await given_leak(rt, client, admin_headers)
    before = await state(rt)
    lines = [leak["sold"], "NOTOURSXXXXXXXXX", "a,b", leak["unsold"]]

    response = await client.post(
        "/admin/api/leaks/trace",
        files={"file": ("leak.txt", "\n".join(lines).encode(), "text/plain")},
        headers=admin_headers,
    )

    assert response.status_code == 200, response.text
    report = response.json()
    sold, unsold = report["found"]
    assert sold | {"sold_at": None, "reveals": None} == {
        "line_no": 1,
        "code": mask(leak["sold"]),
        "batch_id": leak["batch"],
        "supplier": "Acme Cards",
        "sku": "GAME-100",
        "status": "sold",
        "batch_quarantined": False,
        "order": leak["order"],
        "order_status": "delivered",
        "channel": "shop",
        "sold_at": None,
        "reveals": None,
    }
    assert sold["sold_at"] is not None
    assert [r["reason"] for r in sold["reveals"]] == ["test", "support ticket 7"]  # the buyer's view, the admin's
    assert sold["reveals"][0]["viewer"] == "buyer" and sold["reveals"][1]["units"] == 1
    assert (unsold["line_no"], unsold["status"], unsold["order"], unsold["reveals"]) == (4, "available", None, [])
    assert report["unknown"] == [{"line_no": 2, "code": mask("NOTOURSXXXXXXXXX"), "problem": None, "reason": None}]
    assert [p["line_no"] for p in report["problems"]] == [3]
    assert (report["batches"], report["unsold"]) == ([leak["batch"]], 1)
    assert leak["sold"] not in response.text and leak["unsold"] not in response.text
    assert await state(rt) == before


async def test_tracing_never_decrypts_the_inventory(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    leak = await given_leak(rt, client, admin_headers)

    def refuse(*_args: object) -> str:
        raise AssertionError("a leak trace opened a sealed code")

    monkeypatch.setattr(SecretBox, "open", refuse)
    async with rt.db.read() as session:
        report = await trace_leaks(rt.db, session, rt.vault, f"{leak['sold']}\n{leak['unsold']}".encode())

    assert [found.code.status for found in report.found] == ["sold", "available"]


async def test_a_file_of_garbage_is_reported_by_line_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await given_leak(rt, client, admin_headers)
    before = await state(rt)

    garbage = await client.post(
        "/admin/api/leaks/trace",
        files={"file": ("leak.txt", b"ONE,TWO\nA,\nx,y,z,w,v\n", "text/plain")},
        data={"layout": "pair"},
        headers=admin_headers,
    )
    empty = await client.post(
        "/admin/api/leaks/trace", files={"file": ("leak.txt", b"\n\n", "text/plain")}, headers=admin_headers
    )

    assert garbage.status_code == 200, garbage.text
    assert garbage.json()["found"] == []
    assert [p["line_no"] for p in garbage.json()["problems"]] == [2, 3]
    assert empty.status_code == 400
    assert await state(rt) == before


async def test_tracing_needs_an_admin(rt: Runtime, client: httpx.AsyncClient) -> None:
    response = await client.post("/admin/api/leaks/trace", files={"file": ("leak.txt", b"X", "text/plain")})

    assert response.status_code == 401
