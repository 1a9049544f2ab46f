"""`kaquan bench …`: measured speed on the database named by KAQUAN_DATABASE_URL.

A thin shell over `kaquan.bench`: it parses the options, shows progress and the
human table, and ends with the benchmark's one JSON line.
"""

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kaquan.bench import agent, backup, flash, importing, pay, reconcile, risk, shop, wrk
from kaquan.cli.common import console, errors, run
from kaquan.kit.config import get_settings
from kaquan.runtime import Runtime

URL_HELP = (
    "send the load to the server at this http://host:port (a deployment behind its load balancer) instead of"
    " starting one; it must run on this command's database and Redis"
)

bench = typer.Typer(help="Benchmarks; each ends with one JSON line.", no_args_is_help=True)


def _progress(message: str) -> None:
    console.print(message)


@bench.command("import")
def bench_import(
    count: Annotated[int, typer.Option(min=1, help="how many codes to generate and import")] = 100_000,
) -> None:
    """Generate COUNT codes and import them as one batch through the real import path."""
    console.print(f"importing {count} generated codes …")
    print(json.dumps(run(lambda rt: importing.run(rt, count))))


@bench.command("agent")
def bench_agent(
    hot_orders: Annotated[int, typer.Option(min=1, help="orders from the one hot agent")] = 20_000,
    single_orders: Annotated[int, typer.Option(min=1, help="of those, sent one order per request")] = 3_000,
    many_orders: Annotated[int, typer.Option(min=1, help="orders spread over the many agents")] = 20_000,
    agent_count: Annotated[int, typer.Option("--agents", min=1, help="how many agents share the last phase")] = 50,
    batch: Annotated[int, typer.Option(min=1, max=200, help="orders per signed request")] = 200,
    in_flight: Annotated[int, typer.Option(min=1, help="batched requests in flight at once")] = 8,
    single_in_flight: Annotated[int, typer.Option(min=1, help="one-order requests in flight at once")] = 96,
    workers: Annotated[
        int, typer.Option(min=0, help="server processes apart from the load generator; 0: the app in process")
    ] = 2,
) -> None:
    """Signed open-API orders: one hot agent (one per request, then batched), then many agents."""
    options = agent.Options(
        hot_orders, single_orders, many_orders, agent_count, batch, in_flight, single_in_flight, workers
    )

    async def work(rt: Runtime) -> dict[str, object]:
        measured = await agent.run(rt, options, _progress)
        table = Table("phase", "orders", "refused", "seconds", "orders/s")
        for phase in measured.phases:
            table.add_row(
                phase.name, str(phase.orders), str(phase.refused), f"{phase.seconds:.2f}", f"{phase.per_s:.0f}"
            )
        console.print(table)
        return measured.summary

    print(json.dumps(run(work)))


@bench.command("pay")
def bench_pay(
    notifications: Annotated[int, typer.Option(min=1, help="paid trades whose notifications are processed")] = 2000,
    in_flight: Annotated[int, typer.Option(min=1, help="notifications processed at once")] = 32,
    gateway: Annotated[str, typer.Option(help="the simulated provider: alipay, wechatpay or stripe")] = "alipay",
) -> None:
    """Provider notifications end to end (verify, mark paid, deliver, book) against a provider's simulator."""

    async def work(rt: Runtime) -> dict[str, object]:
        result = await pay.run(rt, pay.Options(notifications, in_flight, gateway), _progress)
        table = Table("measure", "value", title=f"notifications from {result['gateway']} on {result['database']}")
        for key in ("notifications", "outcomes", "all_delivered_once", "notifications_per_s", "p50_ms", "p99_ms"):
            table.add_row(key, str(result[key]))
        table.add_row("signature check alone, per s", str(result["verify_only_per_s"]))
        console.print(table)
        return result

    print(json.dumps(run(work)))


@bench.command("flash")
def bench_flash(
    stock_units: Annotated[int, typer.Option("--stock", min=1, help="codes the event sells")] = 1000,
    buyers: Annotated[int, typer.Option(min=1, help="the storm's buyers, one purchase each")] = 10_000,
    connections: Annotated[int, typer.Option(min=1, help="wrk's connections to the server")] = 1000,
    workers: Annotated[int, typer.Option(min=1, help="server processes (more than one needs Redis)")] = 1,
    storm_seconds: Annotated[float, typer.Option(min=1, help="the longest the storm may take")] = 10.0,
    hammer_seconds: Annotated[float, typer.Option(min=1, help="late buyers keep asking this long")] = 5.0,
    pgbench_clients: Annotated[int, typer.Option(min=1, help="pgbench connections (default: 2 × cores)")] = 2
    * (os.cpu_count() or 1),
    compare_risk: Annotated[
        bool, typer.Option("--compare-risk", help="the storm again with risk control off (issue 15's cost)")
    ] = False,
    url: Annotated[str | None, typer.Option(help=URL_HELP + ", its flash throttle per address lifted")] = None,
) -> None:
    """A flash-sale storm and late buyers through wrk, the bare-ASGI and pgbench baselines; ends with one JSON line."""
    if workers > 1 and not get_settings().redis_url:
        errors.print("error: --workers above 1 needs KAQUAN_REDIS_URL (a gate shared by the processes)")
        raise SystemExit(2)
    if shutil.which(wrk.WRK) is None:
        errors.print(f"error: {wrk.MISSING}")
        raise SystemExit(2)
    options = flash.Options(
        stock_units, buyers, connections, workers, storm_seconds, hammer_seconds, pgbench_clients, compare_risk, url
    )
    if (reason := flash.unavailable(options)) is not None:
        errors.print(f"error: {reason}")
        raise SystemExit(2)

    async def work(rt: Runtime) -> dict[str, object]:
        measured = await flash.run(rt, options, _progress)
        console.print(_flash_table(measured))
        return measured

    print(json.dumps(run(work)))


def _flash_table(result: Mapping[str, object]) -> Table:
    table = Table("measure", "value", "target", title=f"flash sale on {result['db']} ({result['gate']} gate)")
    rows: list[tuple[str, object, str]] = [
        (
            "server processes (or --url) / load average",
            f"{result['workers'] or result['url']} / {result['load_average']}",
            "",
        ),
        ("storm buyers / codes", f"{result['storm_buyers']} / {result['stock']}", ""),
        ("sold (won answers, queued)", f"{result['sold']} ({result['won_answers']}, {result['queued_answers']})", ""),
        ("oversold", result["oversold"], "0"),
        ("codes sold twice", result["duplicate_codes"], "0"),
        ("stock adds up", result["stock_adds_up"], "true"),
        (
            "storm: first answer p50 / p99",
            f"{result['storm_first_answer_p50_ms']} / {result['storm_first_answer_p99_ms']} ms",
            "p99 ≤ 100 ms",
        ),
        ("storm: last order committed", f"{result['storm_last_order_committed_s']} s", "≤ 1 s"),
        ("orders/s", result["orders_per_s"], ""),
        (
            "pgbench single claim tps / batched codes/s",
            f"{result['pgbench_single_claim_tps']} / {result['pgbench_batched_codes_per_s']}",
            "",
        ),
        ("ratio vs pgbench single claim", result["ratio_vs_pgbench"], "≥ 1.0"),
        ("sold-out answers/s (p99)", f"{result['sold_out_answers_per_s']} ({result['sold_out_p99_ms']} ms)", "≥ 20000"),
        ("bare ASGI answers/s (p99)", f"{result['bare_asgi_answers_per_s']} ({result['bare_asgi_p99_ms']} ms)", ""),
        ("ratio vs bare ASGI", result["ratio_vs_bare_asgi"], "≥ 0.6"),
        ("time-outs / socket errors", f"{result['timeouts']} / {result['socket_errors']}", "0"),
        ("5xx / 4xx answers", f"{result['errors_5xx']} / {result['errors_4xx']}", "0"),
        ("max RSS per process", f"{result['max_rss_mb']} MB", "≤ 300 MB"),
    ]
    for name, value, target in rows:
        table.add_row(name, str(value), target)
    return table


@bench.command("shop")
def bench_shop(
    codes: Annotated[int, typer.Option(min=1, help="codes on sale; the storm ends when they are sold")] = 500,
    buyers: Annotated[int, typer.Option(min=1, help="buyers at once, each on a connection of wrk's")] = 200,
    workers: Annotated[int, typer.Option(min=1, help="server processes")] = 1,
    seconds: Annotated[float, typer.Option(min=1, help="the most the storm may take")] = 120.0,
    raw_connections: Annotated[int, typer.Option(min=1, help="connections of the raw-SQL baseline")] = 20,
    profile: Annotated[
        Path | None,
        typer.Option(
            help="write py-spy's profile of the server during the storm here (.svg: a flame graph; else raw stacks)"
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help=URL_HELP + " with the dev gateway under KAQUAN_DEV_GATEWAY_SECRET")
    ] = None,
) -> None:
    """The shop's sale path (order, signed payment notification, codes shown) under a storm; ends with one JSON line."""
    options = shop.Options(codes, buyers, workers, seconds, raw_connections, profile, url)
    if (reason := shop.unavailable(get_settings(), options)) is not None:
        errors.print(f"error: {reason}")
        raise SystemExit(2)

    async def work(rt: Runtime) -> dict[str, object]:
        result = await shop.run(rt, options, _progress)
        table = Table("measure", "value", "target", title=f"shop storm on {result['db']}")
        for key, target in (
            ("workers", ""),
            ("orders_per_s", ""),
            ("raw_sql_orders_per_s", ""),
            ("ratio_vs_raw_sql", "≥ 0.5"),
            ("p50_ms", ""),
            ("p99_ms", "≤ 250"),
            ("oversold", "0"),
            ("duplicate_codes", "0"),
            ("all_delivered", "true"),
            ("errors_5xx", "0"),
            ("timeouts", "0"),
            ("max_rss_mb", "≤ 300"),
            ("db_waits", ""),
        ):
            table.add_row(key, str(result[key]), target)
        console.print(table)
        return result

    print(json.dumps(run(work)))


@bench.command("reconcile")
def bench_reconcile(
    lines: Annotated[
        int, typer.Option(min=1000, help="lines of the WeChat Pay bill (about as many payments)")
    ] = 1_000_000,
) -> None:
    """Import and match a LINES-line WeChat Pay bill against as many payments; ends with one JSON line."""

    async def work(rt: Runtime) -> dict[str, object]:
        result = await reconcile.run(rt, lines, _progress)
        table = Table("measure", "value", title=f"reconciliation on {result['db']}")
        for key in ("lines", "payments", "import_s", "match_s", "total_s", "lines_per_s", "as_planted", "peak_rss_mib"):
            table.add_row(key, str(result[key]))
        console.print(table)
        return result

    print(json.dumps(run(work), ensure_ascii=False))


@bench.command("backup")
def bench_backup() -> None:
    """Time `kaquan backup` and `kaquan restore` of the configured database against a bare copy; one JSON line."""

    async def work(rt: Runtime) -> dict[str, object]:
        result = await backup.run(rt, _progress)
        table = Table("measure", "value", title=f"backup and restore of {result['db']}")
        for key, value in result.items():
            table.add_row(key, str(value))
        console.print(table)
        return result

    print(json.dumps(run(work), ensure_ascii=False))


@bench.command("risk")
def bench_risk(
    decisions: Annotated[int, typer.Option(min=100, help="decisions timed with and without the model")] = 20_000,
    history: Annotated[
        int, typer.Option(min=1000, help="synthetic labelled decisions the bench's model is trained on")
    ] = 20_000,
) -> None:
    """One risk decision's cost in process (p50/p99 µs of its own CPU time, and wall time), without and with a
    learned model scoring it (active and shadow)."""
    print(json.dumps(run(lambda rt: risk.run(rt, decisions, _progress, history=history))))
