"""`kaquan settlement`, driven as finance drives it: a rule, a run, confirmation, exports, the check."""

from pathlib import Path

from openpyxl import load_workbook
from pypdf import PdfReader
from tests.support.cli import Kaquan, one_line


def given_agent(kaquan: Kaquan) -> None:
    kaquan.ok("channel", "agent", "add", "A001", "--name", "代理商甲")
    kaquan.ok(
        "settlement", "rules", "set", "agent:A001", "--cycle", "monthly", "--tiers", "1000000:100,5000000:200",
        "--minimum-payout", "20000", "--hold-days", "3", "--effective-from", "2026-01-01",
    )  # fmt: skip


def test_finance_sets_a_rule_runs_confirms_and_exports_a_statement(kaquan: Kaquan, tmp_path: Path) -> None:
    given_agent(kaquan)

    drafted = one_line(
        kaquan.ok("settlement", "run", "--counterparty", "agent:A001", "--period", "2026-11-01..2026-11-30")
    )
    confirmed = one_line(kaquan.ok("settlement", "confirm", "1", "--yes"))
    again = one_line(kaquan.ok("settlement", "confirm", "1", "--yes"))

    assert "结算单 statement 1" in drafted and "draft" in drafted
    assert "confirmed" in confirmed and "posted to the ledger" in confirmed
    assert "confirmed already: nothing posted" in again
    for fmt in ("csv", "xlsx", "pdf"):
        kaquan.ok("settlement", "export", "1", "--format", fmt, "--out", str(tmp_path / f"s.{fmt}"))
    assert (
        (tmp_path / "s.csv").read_bytes().startswith(b"\xef\xbb\xbf\xe7\xbb\x93\xe7\xae\x97\xe5\x8d\x95")
    )  # BOM 结算单
    assert load_workbook(tmp_path / "s.xlsx").sheetnames == ["结算单", "明细"]
    assert "期末余额" in PdfReader(tmp_path / "s.pdf").pages[0].extract_text()
    assert "1 confirmed statement(s)" in one_line(kaquan.ok("settlement", "check"))
    assert "settlement statements agree with the ledger: 1 confirmed" in one_line(kaquan.ok("ledger", "check"))
    listed = one_line(kaquan.ok("settlement", "list"))
    assert "agent:A001" in listed and "confirmed" in listed


def test_bad_input_names_its_problem_and_changes_nothing(kaquan: Kaquan) -> None:
    given_agent(kaquan)

    refusals = {
        ("settlement", "rules", "set", "agent:A001", "--fee-bp", "-1", "--effective-from", "2026-02-01"): (
            "invalid_settlement_rule"
        ),
        ("settlement", "rules", "set", "agent:A001", "--tiers", "5000000:200,1000000:100"): "strictly ascending",
        ("settlement", "rules", "set", "agent:A001", "--tiers", "ten:1"): "THRESHOLD_FEN:RATE_BP",
        ("settlement", "rules", "set", "agent:NOBODY"): "unknown_counterparty",
        ("settlement", "run", "--counterparty", "agent:A001", "--period", "2026-11-30..2026-11-01"): "invalid_period",
        ("settlement", "run", "--counterparty", "agent:A001", "--period", "2099-01-01..2099-01-31"): "not ended",
        ("settlement", "run", "--counterparty", "marketplace:none", "--period", "2026-11-01"): "unknown_counterparty",
        ("settlement", "confirm", "99", "--yes"): "statement_not_found",
        ("settlement", "export", "99", "--out", "x.csv"): "statement_not_found",
    }
    for args, expected in refusals.items():
        assert expected in one_line(kaquan.refused(*args)), args
