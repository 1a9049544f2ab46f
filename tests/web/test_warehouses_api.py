"""The warehouse admin API: an operator changes warehouses, transfers and refill rules; support only reads.

Every refusal comes in the one error shape with a machine-readable code and
changes nothing; every change is in the audit trail under the caller's name.
"""

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.support.builders import GivenSku, given_codes, given_sku_with_codes, random_codes
from tests.support.http import the_error
from tests.support.identity import HeadersFor, row_counts

from kaquan.audit.models import AuditEntry
from kaquan.runtime import Runtime


@pytest.fixture
async def operator(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for("operator", username="olga")


@pytest.fixture
async def support(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for("support")


async def add_backup(client: httpx.AsyncClient, headers: dict[str, str], code: str = "backup") -> dict[str, Any]:
    response = await client.post("/admin/api/warehouses", json={"code": code, "name": "Backup 备仓"}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stocked(rt: Runtime, count: int = 20, in_backup: int = 0) -> GivenSku:
    sku = await given_sku_with_codes(rt, count)
    if in_backup:
        await given_codes(rt, sku, random_codes(in_backup), warehouse="backup")
    return sku


async def stock_rows(client: httpx.AsyncClient, headers: dict[str, str], sku: GivenSku) -> dict[str, tuple[int, int]]:
    response = await client.get("/admin/api/stock", params={"sku": sku.code}, headers=headers)
    assert response.status_code == 200, response.text
    rows = response.json()
    assert all(row["adds_up"] for row in rows)
    return {row["warehouse"]: (row["imported"], row["available"]) for row in rows}


def by_olga(actor: str) -> bool:
    """The operator's actor name: her username, then the token she used."""
    return actor.split(" ")[0] == "olga"


async def last_audit(rt: Runtime) -> AuditEntry:
    async with rt.db.read() as session:
        return (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).scalar_one()


# --- warehouses -----------------------------------------------------------------------------------


async def test_an_operator_adds_warehouses_and_support_lists_them(
    rt: Runtime, client: httpx.AsyncClient, operator: dict[str, str], support: dict[str, str]
) -> None:
    backup = await add_backup(client, operator)
    response = await client.post(
        "/admin/api/warehouses",
        json={"code": "agent-42", "name": "Agent 42", "kind": "consignment", "consignee": "Agent Zhang"},
        headers=operator,
    )
    assert response.status_code == 201, response.text
    entry = await last_audit(rt)

    listed = await client.get("/admin/api/warehouses", headers=support)

    assert listed.status_code == 200, listed.text
    assert [(w["code"], w["kind"], w["consignee"]) for w in listed.json()] == [
        ("main", "own", None),
        ("backup", "own", None),
        ("agent-42", "consignment", "Agent Zhang"),
    ]
    assert backup == {"id": backup["id"], "code": "backup", "name": "Backup 备仓", "kind": "own", "consignee": None}
    assert (entry.action, entry.target) == ("warehouse.created", "warehouse:agent-42")
    assert by_olga(entry.actor)


async def test_support_may_not_add_a_warehouse(rt: Runtime, client: httpx.AsyncClient, support: dict[str, str]) -> None:
    before = await row_counts(rt)

    response = await client.post("/admin/api/warehouses", json={"code": "backup", "name": "B"}, headers=support)

    the_error(response, 403, "forbidden")
    assert await row_counts(rt) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"code": "main", "name": "Another main"}, 409, "warehouse_exists"),
        ({"code": "has space", "name": "X"}, 400, "bad_warehouse"),
        ({"code": "own-store", "name": "X", "consignee": "Agent Zhang"}, 400, "bad_warehouse"),
        ({"code": "x", "name": "X", "kind": "franchise"}, 422, "validation_error"),
        ({"code": "", "name": "X"}, 422, "validation_error"),
    ],
)
async def test_a_bad_warehouse_is_a_clear_error_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, operator: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    before = await row_counts(rt)

    response = await client.post("/admin/api/warehouses", json=body, headers=operator)

    the_error(response, status, code)
    assert await row_counts(rt) == before


# --- transfers ------------------------------------------------------------------------------------


async def test_an_operator_moves_stock_and_anyone_with_stock_read_sees_the_transfer(
    rt: Runtime, client: httpx.AsyncClient, operator: dict[str, str], support: dict[str, str]
) -> None:
    await add_backup(client, operator)
    sku = await stocked(rt, 20)

    response = await client.post(
        "/admin/api/transfers",
        json={"sku": sku.code, "from_warehouse": "main", "to_warehouse": "backup", "units": 7, "reason": "restock"},
        headers=operator,
    )

    assert response.status_code == 201, response.text
    moved = response.json()
    assert (moved["from_warehouse"], moved["to_warehouse"], moved["units"]) == ("main", "backup", 7)
    assert by_olga(moved["actor"])
    assert await stock_rows(client, support, sku) == {"main": (13, 13), "backup": (7, 7)}
    listed = await client.get("/admin/api/transfers", params={"warehouse": "backup"}, headers=support)
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()] == [moved["id"]]
    entry = await last_audit(rt)
    assert (entry.action, entry.actor, entry.target) == ("stock.transferred", moved["actor"], f"sku:{sku.code}")


async def test_support_may_not_move_stock(
    rt: Runtime, client: httpx.AsyncClient, operator: dict[str, str], support: dict[str, str]
) -> None:
    await add_backup(client, operator)
    sku = await stocked(rt, 20)
    before = await row_counts(rt)

    response = await client.post(
        "/admin/api/transfers",
        json={"sku": sku.id, "from_warehouse": "main", "to_warehouse": "backup", "units": 1, "reason": "x"},
        headers=support,
    )

    the_error(response, 403, "forbidden")
    assert await row_counts(rt) == before


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"to_warehouse": "nowhere"}, 404, "warehouse_not_found"),
        ({"from_warehouse": "nowhere"}, 404, "warehouse_not_found"),
        ({"units": -5}, 422, "validation_error"),
        ({"units": 0}, 422, "validation_error"),
        ({"to_warehouse": "main"}, 400, "same_warehouse"),
        ({"units": 21}, 409, "out_of_stock"),
        ({"reason": "   "}, 400, "reason_required"),
        ({"sku": "NO-SUCH-SKU"}, 404, "sku_not_found"),
    ],
)
async def test_a_bad_transfer_is_a_clear_error_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    operator: dict[str, str],
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await add_backup(client, operator)
    sku = await stocked(rt, 20)
    body = {"sku": sku.code, "from_warehouse": "main", "to_warehouse": "backup", "units": 5, "reason": "restock"}
    before, levels = await row_counts(rt), await stock_rows(client, operator, sku)

    response = await client.post("/admin/api/transfers", json=body | change, headers=operator)

    details = the_error(response, status, code)
    if code == "out_of_stock":
        assert details == {"sku_id": sku.id, "warehouse": "main", "wanted": 21, "available": 20}
    assert await row_counts(rt) == before
    assert await stock_rows(client, operator, sku) == levels


# --- refill rules ---------------------------------------------------------------------------------


async def test_an_operator_adds_lists_and_disables_refill_rules(
    rt: Runtime, client: httpx.AsyncClient, operator: dict[str, str], support: dict[str, str]
) -> None:
    await add_backup(client, operator)
    sku = await stocked(rt, 20)
    rule = {"sku": sku.code, "warehouse": "backup", "source_warehouse": "main", "threshold": 5, "refill_units": 10}

    added = await client.post("/admin/api/refill-rules", json=rule, headers=operator)
    assert added.status_code == 201, added.text
    rule_id = added.json()["id"]
    listed = await client.get("/admin/api/refill-rules", params={"sku": sku.code}, headers=support)
    refused = await client.post(f"/admin/api/refill-rules/{rule_id}/disable", headers=support)
    disabled = await client.post(f"/admin/api/refill-rules/{rule_id}/disable", headers=operator)

    assert listed.status_code == 200, listed.text
    assert listed.json() == [
        {
            "id": rule_id,
            "sku_id": sku.id,
            "warehouse": "backup",
            "source_warehouse": "main",
            "threshold": 5,
            "refill_units": 10,
            "active": True,
            "low_since": None,
        }
    ]
    the_error(refused, 403, "forbidden")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["active"] is False
    entry = await last_audit(rt)
    assert (entry.action, entry.target) == ("refill_rule.disabled", f"refill_rule:{rule_id}")
    assert by_olga(entry.actor)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"source_warehouse": "backup"}, 400, "same_warehouse"),
        ({"warehouse": "nowhere"}, 404, "warehouse_not_found"),
        ({"threshold": 0}, 422, "validation_error"),
        ({"refill_units": -1}, 422, "validation_error"),
    ],
)
async def test_a_bad_refill_rule_is_a_clear_error_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    operator: dict[str, str],
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await add_backup(client, operator)
    sku = await stocked(rt, 20)
    rule = {"sku": sku.code, "warehouse": "backup", "source_warehouse": "main", "threshold": 5, "refill_units": 10}
    before = await row_counts(rt)

    response = await client.post("/admin/api/refill-rules", json=rule | change, headers=operator)

    the_error(response, status, code)
    assert await row_counts(rt) == before


async def test_disabling_an_unknown_rule_is_not_found(client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    the_error(await client.post("/admin/api/refill-rules/404/disable", headers=operator), 404, "refill_rule_not_found")
