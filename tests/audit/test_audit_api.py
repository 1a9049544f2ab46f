"""The audit trail over HTTP: filtered, paged, exported as CSV."""

import csv
import io

import httpx

from kaquan.audit import service as audit
from kaquan.audit.models import AuditEntry
from kaquan.kit import clock
from kaquan.runtime import Runtime


async def given_trail(rt: Runtime) -> list[int]:
    """Seven entries (after whatever the runtime's start recorded); returns their ids in order."""
    ids = []
    for n in range(7):
        clock.travel(60)
        async with rt.db.transaction() as session:
            entry = await audit.record(
                session,
                "alice" if n % 2 else "bob",
                "batch.imported" if n < 4 else "codes.revealed",
                target=f"batch:{n}" if n < 4 else f"order:K{n}",
                after={"n": n},
                ip="10.0.0.1",
            )
            ids.append(entry.id)
    return ids


async def test_the_trail_filters_by_actor_action_target_and_time(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    mine = await given_trail(rt)
    async with rt.db.read() as session:
        third = (await audit.search(session, audit.AuditFilter(target="batch:2")))[0]

    def ids(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        return [mine.index(e["id"]) + 1 for e in response.json()["entries"] if e["id"] in mine]

    get = client.get
    assert ids(await get("/admin/api/audit", headers=admin_headers)) == [7, 6, 5, 4, 3, 2, 1]
    assert ids(await get("/admin/api/audit", params={"actor": "alice"}, headers=admin_headers)) == [6, 4, 2]
    assert ids(await get("/admin/api/audit", params={"action": "codes.revealed"}, headers=admin_headers)) == [7, 6, 5]
    assert ids(await get("/admin/api/audit", params={"target": "batch:2"}, headers=admin_headers)) == [3]
    assert ids(await get("/admin/api/audit", params={"target": "order:*"}, headers=admin_headers)) == [7, 6, 5]
    since = third.at.isoformat()
    assert ids(await get("/admin/api/audit", params={"since": since}, headers=admin_headers)) == [7, 6, 5, 4, 3]
    assert ids(await get("/admin/api/audit", params={"until": since}, headers=admin_headers)) == [2, 1]


async def test_the_trail_pages_newest_first(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    mine = await given_trail(rt)

    first = (await client.get("/admin/api/audit", params={"limit": 3}, headers=admin_headers)).json()
    second = (
        await client.get(
            "/admin/api/audit", params={"limit": 3, "before_id": first["next_before_id"]}, headers=admin_headers
        )
    ).json()
    last = (
        await client.get(
            "/admin/api/audit", params={"limit": 3, "before_id": second["next_before_id"]}, headers=admin_headers
        )
    ).json()

    assert [e["id"] for e in first["entries"]] == mine[6:3:-1]
    assert [e["id"] for e in second["entries"]] == mine[3:0:-1]
    assert next(e["id"] for e in last["entries"]) == mine[0]
    assert first["entries"][0]["prev_hash"] == first["entries"][1]["hash"]


async def test_a_naive_time_or_bad_limit_is_refused(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    naive = await client.get("/admin/api/audit", params={"since": "2026-01-01T00:00:00"}, headers=admin_headers)
    too_many = await client.get("/admin/api/audit", params={"limit": 501}, headers=admin_headers)

    assert naive.status_code == 400 and naive.json()["error"]["code"] == "bad_input"
    assert too_many.status_code == 422


async def test_the_trail_exports_as_csv_oldest_first_and_spreadsheet_safe(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    mine = await given_trail(rt)

    response = await client.get("/admin/api/audit.csv", params={"actor": "bob"}, headers=admin_headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == list(audit.CSV_COLUMNS)
    assert [int(row[0]) for row in rows[1:]] == mine[0::2]
    assert all(len(row[-1]) == 64 for row in rows[1:])


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_defused() -> None:
    entry = AuditEntry(
        id=1, at=clock.now(), actor="=HYPERLINK(x)", action="a", target="@b", before=None, after=None, ip=None
    )
    entry.prev_hash = entry.hash = "0" * 64

    assert audit.csv_row(entry)[2:5] == ["'=HYPERLINK(x)", "a", "'@b"]


async def test_the_trail_needs_a_token(rt: Runtime, client: httpx.AsyncClient) -> None:
    for path in ("/admin/api/audit", "/admin/api/audit.csv"):
        assert (await client.get(path)).status_code == 401
