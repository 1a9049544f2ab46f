"""`kaquan bench flash`, run with tiny numbers: a real server process, real HTTP buyers, one JSON line at the end."""

import json

import pytest
from tests.support.cli import Kaquan

KEYS = {
    "db",
    "gate",
    "buyers",
    "stock",
    "sold",
    "oversold",
    "duplicate_codes",
    "stock_adds_up",
    "orders_per_s",
    "sold_out_answers_per_s",
    "p50_ms",
    "p99_ms",
    "errors_5xx",
    "max_rss_mb",
    "raw_sql_claims_per_s",
    "ratio_vs_raw_sql",
}


def test_a_small_flash_sale_sells_each_code_once_and_reports_one_json_line(kaquan: Kaquan) -> None:
    out = kaquan.ok(
        "bench",
        "flash",
        "--stock",
        "20",
        "--buyers",
        "30",
        "--seconds",
        "30",
        "--hammer-seconds",
        "0.5",
        "--raw-claims",
        "20",
    )

    *shown, last = out.strip().splitlines()
    result = json.loads(last)
    assert set(result) >= KEYS
    assert (result["buyers"], result["stock"], result["gate"]) == (30, 20, "memory")
    # 30 buyers for 20 codes, one each: the sale sells out, every code to one buyer.
    assert (result["sold"], result["won_answers"], result["oversold"], result["duplicate_codes"]) == (20, 20, 0, 0)
    assert result["stock_adds_up"] is True
    assert (result["errors_5xx"], result["unanswered"], result["broken_connections"]) == (0, 0, 0)
    assert result["sold_out_answers_per_s"] > 0
    assert result["orders_per_s"] > 0 and result["raw_sql_claims_per_s"] > 0
    assert result["ratio_vs_raw_sql"] == pytest.approx(result["orders_per_s"] / result["raw_sql_claims_per_s"], rel=0.1)
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["max_rss_mb"] > 0
    assert any("sold-out answers/s" in line for line in shown)  # the human table comes first
    # The event was ended: what it still held (nothing: it sold out) is back, and the stock adds up.
    assert all(row.adds_up for row in kaquan.stock())


def test_several_workers_without_redis_are_refused(kaquan: Kaquan) -> None:
    refused = kaquan.refused("bench", "flash", "--workers", "2", exit_code=2)

    assert "--workers above 1 needs KAQUAN_REDIS_URL" in refused
