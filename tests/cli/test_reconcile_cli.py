"""`kaquan reconcile …`: a WeChat Pay bill imported, matched and worked off from the command line."""

from pathlib import Path

from tests.support.cli import Kaquan, one_line
from tests.support.statements import wechat_bill, wechat_payment, wechat_refund


def bill_file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_a_bill_is_imported_once_matched_and_its_differences_resolved(kaquan: Kaquan, tmp_path: Path) -> None:
    rows = [
        wechat_payment(1, fen=1990, fee=12),
        wechat_payment(2, fen=5000, fee=30),
        wechat_refund(3, fen=990, fee_back=6),
    ]
    bill = bill_file(tmp_path, "bill.csv", wechat_bill(rows))

    first = one_line(kaquan.ok("reconcile", "import", bill, "--source", "wechatpay"))
    again = one_line(kaquan.ok("reconcile", "import", bill, "--source", "wechatpay"))

    assert "3 lines read 读取, 3 new 新增, 0 already stored 已存在, 0 repeated in the file" in first
    assert "already imported 已导入过" in again
    matched = one_line(kaquan.ok("reconcile", "match", "--source", "wechatpay", "--from", "2026-12-05"))
    assert "missing_in_kaquan 2" in matched and "refund_missing_in_kaquan 1" in matched
    assert "3 difference(s)" in matched

    export = tmp_path / "differences.csv"
    listed = kaquan.ok("reconcile", "differences", "--class", "missing_in_kaquan", "--csv", str(export))
    assert "2 item(s)" in listed and "¥19.90" in listed
    assert export.read_bytes().startswith("\ufeff编号,业务日期".encode())

    resolved = one_line(
        kaquan.ok("reconcile", "resolve", "1", "--resolution", "accept_statement", "--note", "查明", "--yes")
    )
    assert "resolved as accept_statement; ledger adjustment:reconciliation:1" in resolved
    assert "ledger balanced" in kaquan.ok("ledger", "check")
    assert "1 item(s)" in kaquan.ok("reconcile", "differences", "--class", "missing_in_kaquan")


def test_a_rejected_bill_names_line_and_column_exits_2_and_imports_nothing(kaquan: Kaquan, tmp_path: Path) -> None:
    good = bill_file(tmp_path, "good.csv", wechat_bill([wechat_payment(1)]))
    kaquan.ok("reconcile", "import", good, "--source", "wechatpay")
    broken = wechat_bill([wechat_payment(2), wechat_payment(3) | {"应结订单金额": "12.3x"}])
    bad = bill_file(tmp_path, "bad.csv", broken)

    said = one_line(kaquan.refused("reconcile", "import", bad, "--source", "wechatpay", exit_code=2))

    assert "line 3" in said and "应结订单金额" in said
    assert "nothing was imported" in said


def test_a_bill_for_another_merchant_is_refused(kaquan: Kaquan, tmp_path: Path) -> None:
    good = bill_file(tmp_path, "good.csv", wechat_bill([wechat_payment(1)]))
    kaquan.ok("reconcile", "import", good, "--source", "wechatpay")
    theirs = bill_file(tmp_path, "theirs.csv", wechat_bill([wechat_payment(2)]))

    said = one_line(kaquan.refused("reconcile", "import", theirs, "--source", "wechatpay", "--account", "1900000999"))

    assert "statement_wrong_account" in said
