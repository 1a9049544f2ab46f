"""`kaquan reconcile mapping …`: finance saves a generic source's column mapping once, then imports its files."""

import json
from pathlib import Path

from tests.support.cli import Kaquan, one_line

MAPPING = {"identity": "流水号", "merchant_ref": "订单号", "amount": "金额", "occurred_at": "时间"}
STATEMENT = "流水号,订单号,金额,时间\nB1,KQ1,19.90,2026-12-01 10:00:00\nB2,KQ2,-5.00,2026-12-01 11:00:00\n"


def test_a_saved_mapping_reads_its_sources_files(kaquan: Kaquan, tmp_path: Path) -> None:
    mapping = tmp_path / "bank.json"
    mapping.write_text(json.dumps(MAPPING, ensure_ascii=False), encoding="utf-8")
    statement = tmp_path / "bank.csv"
    statement.write_text(STATEMENT, encoding="utf-8")
    assert "流水号" not in kaquan.ok("reconcile", "mapping", "list")

    unsaved = one_line(kaquan.refused("reconcile", "import", str(statement), "--source", "generic:bank"))
    assert "no saved mapping 'bank'" in unsaved
    saved = one_line(kaquan.ok("reconcile", "mapping", "save", "bank", str(mapping)))
    assert "import with --source generic:bank" in saved
    assert "流水号" in kaquan.ok("reconcile", "mapping", "list")

    imported = one_line(kaquan.ok("reconcile", "import", str(statement), "--source", "generic:bank"))
    assert "(generic:bank" in imported and "2 new 新增" in imported


def test_a_mapping_that_cannot_read_any_file_is_refused_naming_its_key(kaquan: Kaquan, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**MAPPING, "amount_unit": "jiao"}), encoding="utf-8")
    kaquan.ok("reconcile", "mapping", "list")

    said = one_line(kaquan.refused("reconcile", "mapping", "save", "bank", str(wrong)))

    assert "amount_unit" in said
    bad_name = one_line(kaquan.refused("reconcile", "mapping", "save", "Bank CMB", str(wrong)))
    assert "mapping's name" in bad_name
