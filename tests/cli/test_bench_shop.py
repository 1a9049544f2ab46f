"""`kaquan bench shop`, run with tiny numbers: wrk's buyers against a real server process, one JSON line at the end."""

import json

import pytest
from tests.support.cli import Kaquan

from kaquan.bench.harness import free_port

KEYS = {
    "orders_per_s",
    "raw_sql_orders_per_s",
    "ratio_vs_raw_sql",
    "p50_ms",
    "p99_ms",
    "oversold",
    "duplicate_codes",
    "all_delivered",
    "errors_5xx",
    "timeouts",
    "max_rss_mb",
    "workers",
}


def test_a_small_storm_delivers_each_code_once_and_reports_one_json_line(kaquan: Kaquan) -> None:
    if not kaquan.database_url.startswith("postgresql"):
        pytest.skip("the benchmark runs on PostgreSQL (the SQLite refusal is the next test)")
    out = kaquan.ok("bench", "shop", "--codes", "12", "--buyers", "5", "--seconds", "30", "--raw-connections", "2")

    *shown, last = out.strip().splitlines()
    result = json.loads(last)
    assert set(result) >= KEYS
    # 12 codes, 5 buyers at a time, each buying one until none is left: every code delivered to one buyer.
    assert (result["delivered"], result["oversold"], result["duplicate_codes"]) == (12, 0, 0)
    assert result["all_delivered"] is True and result["stock_adds_up"] is True
    assert result["errors_5xx"] == 0  # (time-outs are a timing, which a test does not assert)
    assert result["sold_out_answers"] >= 1  # the buyer after the last code was told so
    assert result["orders_per_s"] > 0 and result["raw_sql_orders_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert any("ratio_vs_raw_sql" in line for line in shown)  # the human table comes first


def test_on_sqlite_it_is_refused_before_anything_is_written(kaquan: Kaquan) -> None:
    if kaquan.database_url.startswith("postgresql"):
        pytest.skip("the refusal is SQLite's")
    said = kaquan.refused("bench", "shop", exit_code=2)
    assert "runs on PostgreSQL" in said


def test_url_is_checked_before_anything_is_written(kaquan: Kaquan) -> None:
    if not kaquan.database_url.startswith("postgresql"):
        pytest.skip("the benchmark runs on PostgreSQL")
    nobody = f"http://127.0.0.1:{free_port()}"
    assert "without a path" in kaquan.refused("bench", "shop", "--url", f"{nobody}/shop", exit_code=2)
    assert "--profile and --workers" in kaquan.refused("bench", "shop", "--url", nobody, "--workers", "2", exit_code=2)
    # The server there signs nothing for the bench: the bench must know the dev gateway's secret it runs under.
    assert "KAQUAN_DEV_GATEWAY_SECRET" in kaquan.refused("bench", "shop", "--url", nobody, exit_code=2)

    kaquan.ok("stock")  # a first start: migrated, the keys made
    before = kaquan.state()
    said = kaquan("bench", "shop", "--url", nobody, env={"KAQUAN_DEV_GATEWAY_SECRET": "s" * 32})

    assert said.exit_code == 1 and "Traceback" not in said.output
    assert f"nothing at {nobody} answers GET /healthz" in said.stderr
    assert kaquan.state() == before
