"""对账 in the admin API: finance uploads the provider's own bill, matches the day, works off what differs;
every bad input is refused with the one error shape and a machine code, and changes nothing."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.support.identity import HeadersFor, error_code
from tests.support.reconciling import WechatShop, wechat_shop

from kaquan.runtime import Runtime

API = "/admin/api/reconciliation"


@pytest.fixture
async def shop(rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path) as shop:
        yield shop


def upload(data: bytes, source: str = "wechatpay", name: str = "bill.csv") -> dict[str, object]:
    return {"files": {"file": (name, data, "text/csv")}, "data": {"source": source}}


async def test_finance_uploads_the_bill_matches_the_day_and_resolves_what_differs(
    shop: WechatShop, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    finance = await headers_for("finance")
    billed = await shop.paid(1990)
    bill = shop.simulation.provider.bill(billed.day)
    unbilled = await shop.paid(4500)  # paid after the bill was downloaded: the bill does not show it

    stored = await client.post(f"{API}/statements", headers=finance, **upload(bill))  # type: ignore[arg-type]
    assert stored.status_code == 201, stored.text
    assert {k: stored.json()[k] for k in ("lines_read", "lines_new", "already_imported")} == {
        "lines_read": 1,
        "lines_new": 1,
        "already_imported": False,
    }
    again = await client.post(f"{API}/statements", headers=finance, **upload(bill))  # type: ignore[arg-type]
    assert again.json()["already_imported"] is True and again.json()["statement_id"] == stored.json()["statement_id"]
    listed = await client.get(f"{API}/statements", headers=finance)
    assert [s["id"] for s in listed.json()["statements"]] == [stored.json()["statement_id"]]

    matched = await client.post(
        f"{API}/match", headers=finance, json={"source": "wechatpay", "first_day": str(billed.day)}
    )
    assert matched.status_code == 200, matched.text
    assert matched.json()["counts"]["matched"] == 1 and matched.json()["differences"] == 1

    worklist = (await client.get(f"{API}/differences", headers=finance)).json()
    assert [(i["class"], i["record_ref"], i["expected_minor"]) for i in worklist["items"]] == [
        ("missing_in_statement", unbilled.token, 4500)
    ]
    assert worklist["items"][0]["class_words"] == "对账单缺失 missing in the statement"
    item = worklist["items"][0]["id"]
    only_fees = await client.get(f"{API}/differences", headers=finance, params={"class": "fee_mismatch"})
    assert only_fees.json()["items"] == []
    everything = await client.get(f"{API}/differences", headers=finance, params=[("state", "auto"), ("state", "open")])
    assert len(everything.json()["items"]) == 1  # the matched pair is counted, but kept apart from the worklist

    exported = await client.get(f"{API}/differences.csv", headers=finance)
    assert exported.headers["content-type"].startswith("text/csv")
    text = exported.content.decode("utf-8")
    assert text.startswith("\ufeff编号 id,")
    assert "¥45.00" in text and unbilled.token in text

    noted = await client.post(f"{API}/differences/{item}/annotate", headers=finance, json={"note": "问过微信支付"})
    assert noted.json()["state"] == "annotated" and noted.json()["note"] == "问过微信支付"
    resolved = await client.post(
        f"{API}/differences/{item}/resolve", headers=finance, json={"resolution": "write_off", "note": "差额核销"}
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["state"] == "resolved" and resolved.json()["ledger_reference"]
    same = await client.post(f"{API}/differences/{item}/resolve", headers=finance, json={"resolution": "write_off"})
    assert same.json()["ledger_reference"] == resolved.json()["ledger_reference"]
    other = await client.post(f"{API}/differences/{item}/resolve", headers=finance, json={"resolution": "no_action"})
    assert (other.status_code, error_code(other)) == (409, "reconciliation_already_resolved")
    assert await shop.books_problems() == []


async def test_a_rejected_file_names_its_line_and_column_and_imports_nothing(
    shop: WechatShop, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    finance = await headers_for("finance")
    billed = await shop.paid(1990)
    bill = shop.simulation.provider.bill(billed.day).replace(b"`19.90", b"`19.9x", 1)

    refused = await client.post(f"{API}/statements", headers=finance, **upload(bill))  # type: ignore[arg-type]

    assert (refused.status_code, error_code(refused)) == (422, "statement_rejected")
    details = refused.json()["error"]["details"]
    assert details["line"] == 2 and details["column"]
    assert (await client.get(f"{API}/statements", headers=finance)).json()["statements"] == []
    not_a_bill = await client.post(f"{API}/statements", headers=finance, **upload(b"hello,world\n1,2\n"))  # type: ignore[arg-type]
    assert (not_a_bill.status_code, error_code(not_a_bill)) == (422, "statement_rejected")


async def test_every_route_refuses_who_may_not_and_what_is_not(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    finance, auditor, support = await headers_for("finance"), await headers_for("auditor"), await headers_for("support")
    bill = b"\xef\xbb\xbf\xe4\xba\xa4\xe6\x98\x93\xe6\x97\xb6\xe9\x97\xb4\n"

    assert (await client.post(f"{API}/statements", **upload(bill))).status_code == 401  # type: ignore[arg-type]
    no_right = await client.post(f"{API}/statements", headers=auditor, **upload(bill))  # type: ignore[arg-type]
    assert (no_right.status_code, error_code(no_right)) == (403, "forbidden")
    assert (await client.get(f"{API}/differences", headers=support)).status_code == 403
    assert (await client.get(f"{API}/differences", headers=auditor)).status_code == 200
    for path, body in (
        ("/match", {"source": "wechatpay", "first_day": "2026-12-01"}),
        ("/differences/1/annotate", {"note": "x"}),
        ("/differences/1/resolve", {"resolution": "no_action"}),
    ):
        refused = await client.post(f"{API}{path}", headers=auditor, json=body)
        assert refused.status_code == 403, path
    assert (await client.put(f"{API}/mappings/bank", headers=auditor, json={"name": "bank"})).status_code == 403

    wrong = await client.post(f"{API}/statements", headers=finance, **upload(bill, source="paypal"))  # type: ignore[arg-type]
    assert (wrong.status_code, error_code(wrong)) == (400, "reconciliation_unknown_source")
    wrong_match = await client.post(
        f"{API}/match", headers=finance, json={"source": "paypal", "first_day": "2026-12-01"}
    )
    assert (wrong_match.status_code, error_code(wrong_match)) == (400, "reconciliation_unknown_source")
    backwards = await client.post(
        f"{API}/match",
        headers=finance,
        json={"source": "wechatpay", "first_day": "2026-12-02", "last_day": "2026-12-01"},
    )
    assert backwards.status_code == 400
    assert (await client.post(f"{API}/match", headers=finance, json={"source": "wechatpay"})).status_code == 422
    missing = await client.post(f"{API}/differences/999/resolve", headers=finance, json={"resolution": "no_action"})
    assert (missing.status_code, error_code(missing)) == (404, "reconciliation_difference_not_found")
    assert (await client.get(f"{API}/differences/999", headers=finance)).status_code == 404
    unknown = await client.post(f"{API}/differences/1/resolve", headers=finance, json={"resolution": "forgive"})
    assert unknown.status_code == 422
    assert (await client.post(f"{API}/differences/1/annotate", headers=finance, json={"note": ""})).status_code == 422
    assert (await client.get(f"{API}/differences", headers=finance, params={"class": "lost"})).status_code == 422
    assert (await client.get(f"{API}/differences", headers=finance, params={"limit": 0})).status_code == 422
    assert (await client.get(f"{API}/differences/0", headers=finance)).status_code == 422
    assert (await client.get(f"{API}/statements", headers=finance)).json()["statements"] == []


async def test_finance_saves_a_column_mapping_once_and_reads_it_back(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    finance = await headers_for("finance")
    mapping = {"identity": "流水号", "merchant_ref": "订单号", "amount": "金额", "occurred_at": "时间"}

    saved = await client.put(f"{API}/mappings/bank-cmb", headers=finance, json=mapping)
    assert saved.status_code == 200, saved.text
    assert saved.json()["mapping"].items() >= {**mapping, "name": "bank-cmb", "amount_unit": "yuan"}.items()
    changed = await client.put(f"{API}/mappings/bank-cmb", headers=finance, json={**mapping, "amount": "发生额"})
    assert changed.json()["mapping"]["amount"] == "发生额"
    assert [m["name"] for m in (await client.get(f"{API}/mappings", headers=finance)).json()] == ["bank-cmb"]
    assert (await client.get(f"{API}/mappings/bank-cmb", headers=finance)).json()["mapping"]["amount"] == "发生额"

    other_name = await client.put(f"{API}/mappings/bank", headers=finance, json={**mapping, "name": "cmb"})
    assert (other_name.status_code, error_code(other_name)) == (400, "bad_input")
    bad_name = await client.put(f"{API}/mappings/Bank%20CMB", headers=finance, json=mapping)
    assert bad_name.status_code == 400
    not_object = await client.put(f"{API}/mappings/bank", headers=finance, json=["a"])
    assert not_object.status_code == 422
    unknown_key = await client.put(f"{API}/mappings/bank", headers=finance, json={**mapping, "colour": "red"})
    assert (unknown_key.status_code, error_code(unknown_key)) == (422, "statement_mapping_invalid")
    assert unknown_key.json()["error"]["details"] == {"key": "colour"}
    no_amount = {key: value for key, value in mapping.items() if key != "amount"}
    assert (await client.put(f"{API}/mappings/bank", headers=finance, json=no_amount)).status_code == 422
    absent = await client.get(f"{API}/mappings/nothing", headers=finance)
    assert (absent.status_code, error_code(absent)) == (404, "reconciliation_mapping_not_found")


async def test_a_generic_statement_imports_through_its_saved_mapping(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    finance = await headers_for("finance")
    mapping = {"identity": "流水号", "merchant_ref": "订单号", "amount": "金额", "occurred_at": "时间"}
    csv = "流水号,订单号,金额,时间\nB1,KQ1,19.90,2026-12-01 10:00:00\nB2,KQ2,-5.00,2026-12-01 11:00:00\n".encode()

    unsaved = await client.post(f"{API}/statements", headers=finance, **upload(csv, source="generic:bank"))  # type: ignore[arg-type]
    assert (unsaved.status_code, error_code(unsaved)) == (404, "reconciliation_mapping_not_found")
    await client.put(f"{API}/mappings/bank", headers=finance, json=mapping)
    stored = await client.post(f"{API}/statements", headers=finance, **upload(csv, source="generic:bank"))  # type: ignore[arg-type]
    assert stored.status_code == 201, stored.text
    assert (stored.json()["source"], stored.json()["lines_new"]) == ("generic:bank", 2)
    no_store = await client.post(f"{API}/statements", headers=finance, **upload(csv, source="marketplace:nowhere"))  # type: ignore[arg-type]
    assert (no_store.status_code, error_code(no_store)) == (404, "marketplace_store_not_found")
    for source in ("generic:", "bank", "marketplace", "GENERIC:bank"):
        refused = await client.post(f"{API}/statements", headers=finance, **upload(csv, source=source))  # type: ignore[arg-type]
        assert (refused.status_code, error_code(refused)) == (400, "reconciliation_unknown_source"), source
