"""对账 in the console over HTTP: finance imports a WeChat Pay bill, sees the differences in words and yuan,
annotates and resolves one, exports the worklist for Excel; who may not, may not; a rejected file says where."""

import httpx
from tests.support.console import console_sign_in
from tests.support.identity import given_user
from tests.support.statements import MERCHANT, wechat_bill, wechat_payment

from kaquan.runtime import Runtime

PAGE = "/admin/reconciliation"


def bill() -> bytes:
    return wechat_bill(
        [wechat_payment(1, fen=1990, fee=12), wechat_payment(2, fen=5000, fee=30, at="2026-12-05 23:50:00")]
    )


async def test_finance_imports_a_bill_and_works_off_its_differences(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "fiona", "finance")
    finance = await console_sign_in(client, "fiona")

    empty = await finance.get(PAGE)
    assert empty.status_code == 200 and 'id="no-differences"' in empty.text and "导入对账单" in empty.text
    imported = await finance.post(
        f"{PAGE}/statements", {"source": "wechatpay"}, files={"file": ("wx.csv", bill(), "text/csv")}
    )
    assert imported.status_code == 200, imported.text
    assert "读取 2 行，新增 2 行" in imported.text
    again = await finance.post(
        f"{PAGE}/statements", {"source": "wechatpay"}, files={"file": ("wx.csv", bill(), "text/csv")}
    )
    assert "已导入过" in again.text

    matched = await finance.post(f"{PAGE}/match", {"source": "wechatpay", "first_day": "2026-12-05"})
    assert "2 笔差异待处理" in matched.text
    worklist = await finance.get(f"{PAGE}?source=wechatpay&class=missing_in_kaquan")
    assert worklist.text.count('data-class="missing_in_kaquan"') == 2
    assert "系统缺失" in worklist.text and "¥19.90" in worklist.text and "¥50.00" in worklist.text
    assert "2026-12-05 23:50:00" in worklist.text  # Beijing time, as printed on the bill
    first = worklist.text.split('id="item-')[1].split('"')[0]

    noted = await finance.post(f"{PAGE}/differences/{first}/annotate", {"note": "问过微信支付", "back": PAGE})
    assert (noted.status_code, noted.headers["location"]) == (303, PAGE)
    resolved = await finance.post(f"{PAGE}/differences/{first}/resolve", {"resolution": "accept_statement"})
    assert resolved.status_code == 303
    listing = await finance.get(f"{PAGE}?state=resolved")
    assert f'id="item-{first}"' in listing.text and "以对账单为准" in listing.text and "问过微信支付" in listing.text
    twice = await finance.post(f"{PAGE}/differences/{first}/resolve", {"resolution": "write_off"})
    assert twice.status_code == 409 and "reconciliation_already_resolved" in twice.text

    exported = await finance.get(f"{PAGE}/differences.csv?state=all")
    assert exported.content.startswith("\ufeff编号 id,".encode())
    assert "系统缺失 missing in kaquan" in exported.text and "¥19.90" in exported.text

    client.cookies.set("lang", "en")
    english = await finance.get(f"{PAGE}?state=all")
    assert "Import a statement" in english.text and "missing in kaquan" in english.text


async def test_a_rejected_file_shows_its_line_and_column_and_imports_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_user(rt, "fiona", "finance")
    finance = await console_sign_in(client, "fiona")
    broken = wechat_bill([wechat_payment(1), wechat_payment(2) | {"应结订单金额": "12.3x"}])

    refused = await finance.post(
        f"{PAGE}/statements", {"source": "wechatpay"}, files={"file": ("wx.csv", broken, "text/csv")}
    )

    assert refused.status_code == 200
    assert 'id="import-rejected"' in refused.text and "第 3 行，应结订单金额 列" in refused.text
    assert 'id="statements"' not in refused.text
    other = await finance.post(
        f"{PAGE}/statements",
        {"source": "wechatpay"},
        files={"file": ("wx.csv", bill().replace(MERCHANT.encode(), b"1900000999"), "text/csv")},
    )
    assert other.status_code == 200  # no merchant configured: any account's bill is taken
    unknown = await finance.post(
        f"{PAGE}/statements", {"source": "paypal"}, files={"file": ("x.csv", b"a\n", "text/csv")}
    )
    assert unknown.status_code == 400 and "reconciliation_unknown_source" in unknown.text
    bad_day = await finance.post(f"{PAGE}/match", {"source": "wechatpay", "first_day": "yesterday"})
    assert bad_day.status_code == 400
    bad_filter = await finance.get(f"{PAGE}?class=lost")
    assert bad_filter.status_code == 400


async def test_who_may_only_read_sees_no_actions_and_is_refused_them(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "fiona", "finance")
    await given_user(rt, "audrey", "auditor")
    finance = await console_sign_in(client, "fiona")
    await finance.post(f"{PAGE}/statements", {"source": "wechatpay"}, files={"file": ("wx.csv", bill(), "text/csv")})
    await finance.post(f"{PAGE}/match", {"source": "wechatpay", "first_day": "2026-12-05"})
    await client.post("/admin/logout", data={"csrf_token": finance.csrf}, headers={"Accept": "text/html"})

    auditor = await console_sign_in(client, "audrey")
    seen = await auditor.get(PAGE)
    assert seen.status_code == 200 and 'id="worklist"' in seen.text
    assert "upload-form" not in seen.text and "/resolve" not in seen.text
    refused = await auditor.post(f"{PAGE}/differences/1/resolve", {"resolution": "no_action"})
    assert refused.status_code == 403
    upload = await auditor.post(
        f"{PAGE}/statements", {"source": "wechatpay"}, files={"file": ("wx.csv", bill(), "text/csv")}
    )
    assert upload.status_code == 403
