"""`kaquan bench flash`, run with tiny numbers: a real server process, wrk's buyers, the baselines, one JSON line."""

import json
import shutil

import pytest
from tests.support.cli import Kaquan

from kaquan.bench.harness import free_port
from kaquan.bench.pgbench import libpq_url

KEYS = {
    "sold_out_answers_per_s",
    "bare_asgi_answers_per_s",
    "ratio_vs_bare_asgi",
    "storm_first_answer_p99_ms",
    "storm_last_order_committed_s",
    "storm_server_cpu_ms_per_order",
    "orders_per_s",
    "pgbench_single_claim_tps",
    "ratio_vs_pgbench",
    "timeouts",
    "sold_out_timeouts",
    "bare_asgi_timeouts",
    "errors_5xx",
    "oversold",
    "duplicate_codes",
    "stock_adds_up",
    "max_rss_mb",
    "workers",
    "load_average",
    "tickets_polled",
    "won_by_ticket",
    "tickets_unanswered",
}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_a_small_flash_sale_sells_each_code_once_and_reports_one_json_line(kaquan: Kaquan) -> None:
    out = kaquan.ok(
        "bench",
        "flash",
        "--stock",
        "20",
        "--buyers",
        "60",
        "--connections",
        "10",
        "--storm-seconds",
        "2",
        "--hammer-seconds",
        "1",
    )

    *shown, last = out.strip().splitlines()
    result = json.loads(last)
    assert set(result) >= KEYS
    assert (result["stock"], result["workers"], result["gate"]) == (20, 1, "memory")
    # More buyers than codes, one each: the sale sells out, every code to one buyer, nothing twice.
    assert (result["sold"], result["oversold"], result["duplicate_codes"]) == (20, 0, 0)
    assert result["stock_adds_up"] is True
    assert (result["errors_5xx"], result["errors_4xx"]) == (0, 0)
    # wrk stops at --buyers answers: a winner still waiting for its batch then is sold to, never told.
    assert result["storm_buyers"] >= 20 and 0 < result["won_answers"] + result["won_by_ticket"] <= result["sold"]
    # Every ticket the storm was given is polled until it is answered.
    assert result["tickets_polled"] == result["queued_answers"] and result["tickets_unanswered"] == 0
    assert result["sold_out_answers_per_s"] > 0 and result["bare_asgi_answers_per_s"] > 0
    assert result["storm_last_order_committed_s"] > 0 and result["orders_per_s"] > 0
    assert result["storm_server_cpu_ms_per_order"] > 0  # the bench's own server: its CPU is read from /proc
    if str(result["db"]).startswith("postgresql"):
        assert result["pgbench_single_claim_tps"] > 0 and result["pgbench_batched_codes_per_s"] > 0
        assert result["ratio_vs_pgbench"] == pytest.approx(
            result["orders_per_s"] / result["pgbench_single_claim_tps"], abs=0.01
        )
    else:
        assert result["pgbench_single_claim_tps"] is None  # SQLite: pgbench has no database to measure
    assert result["max_rss_mb"] > 0
    assert any("sold-out answers/s" in line for line in shown)  # the human table comes first
    # The event was ended: what it still held (nothing: it sold out) is back, and the stock adds up.
    assert all(row.adds_up for row in kaquan.stock())


def test_several_workers_without_redis_are_refused(kaquan: Kaquan) -> None:
    refused = kaquan.refused("bench", "flash", "--workers", "2", exit_code=2)

    assert "--workers above 1 needs KAQUAN_REDIS_URL" in refused


def test_url_takes_no_options_of_the_benchs_own_server(kaquan: Kaquan) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = kaquan.refused("bench", "flash", "--url", nobody, "--compare-risk", exit_code=2)
    assert "not one at --url" in refused
    assert "http://host:port" in kaquan.refused("bench", "flash", "--url", "https://example.com", exit_code=2)


def test_pgbench_reads_a_url_with_several_hosts_as_libpq_does() -> None:
    # A primary and its replica, as deploy/cluster/ names them; libpq picks the one that takes writes.
    url = "postgresql+asyncpg://kaquan:pw@/kaquan?host=db1:5432&host=db2:5433&target_session_attrs=read-write"
    assert libpq_url(url) == "postgresql://kaquan:pw@db1:5432,db2:5433/kaquan?target_session_attrs=read-write"
    assert libpq_url("postgresql+asyncpg://kaquan@db1:5432/kaquan") == "postgresql://kaquan@db1:5432/kaquan"
