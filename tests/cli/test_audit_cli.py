"""`kaquan audit`, `kaquan keys` and `kaquan leaks`, driven as an operator drives them."""

import csv
import json
from pathlib import Path

from sqlalchemy import update
from tests.support.builders import random_codes
from tests.support.cli import Kaquan, code_file, given_catalog
from tests.support.loops import in_own_loop

from kaquan.audit.models import AuditEntry
from kaquan.kit.db import Database


def tamper(kaquan: Kaquan, entry_id: int) -> None:
    async def work() -> None:
        db = Database(kaquan.database_url)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(update(AuditEntry).where(AuditEntry.id == entry_id).values(actor="nobody"))
        finally:
            await db.dispose()

    in_own_loop(work)


def test_verify_passes_a_whole_chain_and_names_the_first_tampered_entry(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    kaquan.ok("import", code_file(tmp_path, *random_codes(5)), "--sku", "VIDEO-1M")

    intact = kaquan.ok("audit", "verify")
    assert "audit chain intact: 3 entries" in intact

    tamper(kaquan, 2)
    broken = kaquan.refused("audit", "verify")
    assert "broken at entry 2" in broken and "edited" in broken


def test_export_writes_every_entry_as_csv(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    out = tmp_path / "trail.csv"

    printed = kaquan.ok("audit", "export", str(out))
    only_skus = kaquan.ok("audit", "export", str(tmp_path / "skus.csv"), "--action", "sku.created")

    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0][:5] == ["id", "at", "actor", "action", "target"]
    assert [row[3] for row in rows[1:]] == ["product.created", "sku.created"]
    assert "2 audit entries written" in printed and "1 audit entries written" in only_skus
    assert kaquan("audit", "export", str(out), "--since", "yesterday").exit_code == 2


def test_leak_trace_reports_and_quarantines(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    codes = random_codes(4)
    kaquan.ok("import", code_file(tmp_path, *codes), "--sku", "VIDEO-1M", "--supplier", "Acme")
    leak = code_file(tmp_path, codes[0], "UNKNOWNCODE00000", "x,y,z,w", name="leak.txt")

    before = kaquan.state()
    report = json.loads(kaquan.ok("leaks", "trace", leak, "--json"))
    assert kaquan.state() == before
    assert [(f["line_no"], f["supplier"], f["status"]) for f in report["found"]] == [(1, "Acme", "available")]
    assert [u["line_no"] for u in report["unknown"]] == [2]
    assert [p["line_no"] for p in report["problems"]] == [3]
    assert codes[0] not in json.dumps(report)

    quarantined = kaquan.ok("leaks", "trace", leak, "--quarantine", "--reason", "sold on a forum", "--yes")
    assert "batch 1 quarantined: 4 unsold code(s) voided" in " ".join(quarantined.split())
    stock = kaquan.stock()[0]
    assert (stock.available, stock.voided, stock.adds_up) == (0, 4, True)
    assert "intact: 4 entries" in kaquan.ok("audit", "verify")


def test_keys_rotate_moves_everything_to_the_new_master_key(kaquan: Kaquan, tmp_path: Path) -> None:
    given_catalog(kaquan)
    kaquan.ok("import", code_file(tmp_path, *random_codes(3)), "--sku", "VIDEO-1M")
    old = (kaquan.var_dir / "master.key").read_text().strip()
    new = kaquan.ok("keys", "generate").strip()
    both: dict[str, str | None] = {"KAQUAN_MASTER_KEY": new, "KAQUAN_RETIRED_MASTER_KEYS": old}

    dry = kaquan("keys", "rotate", "--dry-run", env=both)
    rotated = kaquan("keys", "rotate", "--yes", env=both)
    again = kaquan("keys", "rotate", "--yes", env=both)

    assert dry.exit_code == 0 and "batch keys: 1 to re-wrap" in dry.stdout
    assert rotated.exit_code == 0 and "batch keys: 1 re-wrapped, 0 already" in rotated.stdout
    assert again.exit_code == 0 and "batch keys: 0 re-wrapped, 1 already" in again.stdout
    assert kaquan("stock", env={"KAQUAN_MASTER_KEY": new}).exit_code == 0
    refused = kaquan("stock", env={"KAQUAN_MASTER_KEY": old})
    assert refused.exit_code == 1 and "master_key_mismatch" in refused.stderr
    assert old not in refused.output and new not in refused.output
