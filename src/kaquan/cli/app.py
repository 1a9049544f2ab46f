"""The `kaquan` command."""

import asyncio
import logging
import os
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from kaquan.cli import admin_cmds, backup_cmds, bench, catalog_cmds, stock_cmds
from kaquan.cli.channel_cmds import channel_app
from kaquan.cli.common import console, errors, report, run, setup_logging
from kaquan.cli.custody_cmds import audit_app, keys_app, leaks_app
from kaquan.cli.flash_cmds import flash_app
from kaquan.cli.ledger_cmds import ledger_app
from kaquan.cli.mapping_cmds import mapping_app
from kaquan.cli.reconcile_cmds import reconcile_app
from kaquan.cli.risk_cmds import risk_app
from kaquan.cli.settlement_cmds import settlement_app
from kaquan.cli.voucher_cmds import app as vouchers
from kaquan.cli.warehouse_cmds import warehouse_app
from kaquan.demo import AgentCredentials, OwnerCredentials, create_demo_agent, create_owner, seed
from kaquan.flashsale import service as flash_events
from kaquan.identity import user_count
from kaquan.kit.config import get_settings
from kaquan.kit.db import Database, describe
from kaquan.kit.errors import DomainError
from kaquan.kit.migrate import upgrade
from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.worker import run_forever

app = typer.Typer(
    help="kaquan: one central inventory of digital codes, sold everywhere, never twice.", no_args_is_help=True
)
app.add_typer(catalog_cmds.products, name="product")
app.add_typer(catalog_cmds.skus, name="sku")
app.add_typer(catalog_cmds.catalog_app, name="catalog")
app.add_typer(stock_cmds.segments, name="segment")
app.add_typer(bench.bench, name="bench")
app.add_typer(admin_cmds.admins, name="admin")
app.add_typer(vouchers, name="vouchers")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(leaks_app, name="leaks")
app.add_typer(channel_app, name="channel")
app.add_typer(ledger_app, name="ledger")
reconcile_app.add_typer(mapping_app, name="mapping")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(settlement_app, name="settlement")
app.add_typer(warehouse_app, name="warehouse")
app.add_typer(flash_app, name="flash")
app.add_typer(risk_app, name="risk")
app.command("import")(stock_cmds.import_codes)
app.command("stock")(stock_cmds.show_stock)
app.command("backup")(backup_cmds.backup)
app.command("restore")(backup_cmds.restore)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = get_settings()

    async def work() -> None:
        db = Database(settings.resolved_database_url())
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    try:
        asyncio.run(work())
    except DomainError as exc:  # a bad URL, say: the one-line error, not a traceback
        report(exc)
        raise SystemExit(1) from None
    console.print(f"database {describe(settings.resolved_database_url())} is up to date")


@app.command()
def demo() -> None:
    """Load demo products and codes (once) and print how to get in."""

    async def work(rt: Runtime) -> tuple[bool, OwnerCredentials | None, AgentCredentials | None]:
        return await seed(rt), await create_owner(rt), await create_demo_agent(rt)

    created, owner, agent = run(work)
    console.print("demo data loaded" if created else "demo data already present")
    console.print(
        "to pay for demo orders, serve with the dev gateway (anyone with a pay link pays for free; trials only):"
        " KAQUAN_DEV_GATEWAY=1 KAQUAN_DEV_CONTACT_CODES=1 kaquan serve (as `make run` does)",
        highlight=False,
        soft_wrap=True,
    )
    if agent is not None:
        console.print(f"demo agent {agent.agent} for the open API (docs/open-api.md); shown once:", highlight=False)
        console.print(f"  KAQUAN_KEY_ID={agent.key_id}", highlight=False, soft_wrap=True)
        console.print(f"  KAQUAN_SECRET={agent.secret}", highlight=False, soft_wrap=True)
    if owner is None:
        console.print("an admin user exists already; its credentials were shown when it was created")
        return
    console.print("first owner created; these are shown once, keep them safe:", highlight=False)
    console.print(f"  username: {owner.username}", highlight=False, soft_wrap=True)
    console.print(f"  password: {owner.password}", highlight=False, soft_wrap=True)
    console.print(f"  API token: {owner.api_token}", highlight=False, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="KAQUAN_HOST", help="address to listen on")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="KAQUAN_PORT", min=1, max=65535, help="port to listen on (`make run PORT=8080`)")
    ] = 8000,
    worker: Annotated[bool, typer.Option(help="also run the outbox worker in this process")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="processes sharing the port; flash sales then need KAQUAN_REDIS_URL")
    ] = 1,
) -> None:
    """Run the shop, the admin API and the payment endpoints (migrating first)."""
    setup_logging()
    settings = get_settings()
    if workers > 1 and not settings.redis_url:
        # Each process would keep a flash-sale gate of its own and admit the whole allotment.
        unfinished = run(_unfinished_flash_sales)
        if unfinished:
            errors.print(
                f"error: {unfinished} flash-sale event(s) are scheduled or live; more than one worker needs"
                " KAQUAN_REDIS_URL for them (or serve with --workers 1)",
                highlight=False,
                soft_wrap=True,
            )
            raise SystemExit(2)
    if not run(_admin_count):  # also migrates and creates keys before serving
        console.print("no admin user yet: create the owner with `kaquan admin create --username <name>`")
    console.print(f"shop on http://{host}:{port} · database {describe(settings.resolved_database_url())}")
    if workers == 1:
        uvicorn.run(create_app(settings, run_worker=worker), host=host, port=port, log_level="info", **_UVICORN)
        return
    # The processes build their apps from the environment: without Redis they refuse flash-sale purchases.
    os.environ["KAQUAN_SERVE_WORKERS"] = str(workers)
    os.environ[_SERVE_OUTBOX_WORKER] = "1" if worker else "0"
    uvicorn.run(
        "kaquan.cli.app:serve_app",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=WORKER_START_S,
        host=host,
        port=port,
        log_level="info",
        **_UVICORN,
    )


_SERVE_OUTBOX_WORKER = "KAQUAN_SERVE_OUTBOX_WORKER"
# How long uvicorn's supervisor waits for a worker process to answer its ping. A new process imports all of
# kaquan before it can answer: on a busy machine longer than uvicorn's 5 s, and the supervisor then killed
# and restarted the workers, over and over, without one ever serving.
WORKER_START_S = 60
# kaquan logs each request itself (kaquan.access, secrets redacted, the client as KAQUAN_TRUSTED_PROXIES
# derives it); uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 on its own.
# uvicorn keeps its hands off logging (log_config None): every line goes through kit.logs' one format.
# No `Server: uvicorn` header: it tells a prober what to attack, and uvicorn checks every header of every answer.
_UVICORN: dict[str, Any] = {"proxy_headers": False, "access_log": False, "log_config": None, "server_header": False}


def serve_app() -> FastAPI:
    """The app each process of `kaquan serve --workers N` builds (uvicorn imports it by name)."""
    setup_logging()
    # uvicorn switched its access log off before this process set up logging, which routes uvicorn's loggers
    # to the root handler again: without this every request was logged twice, and uvicorn built its own
    # line's arguments for each answer even where its level dropped the line (bench flash's servers).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
    return create_app(run_worker=os.environ.get(_SERVE_OUTBOX_WORKER) == "1")


async def _unfinished_flash_sales(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return await flash_events.unfinished(session)


async def _admin_count(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return await user_count(session)


@app.command("worker")
def worker_command() -> None:
    """Run the outbox worker: notifications, refunds, expiring unpaid orders."""
    setup_logging()

    async def work(rt: Runtime) -> None:
        stop = asyncio.Event()
        try:
            await run_forever(rt, stop)
        except asyncio.CancelledError:
            stop.set()

    run(work)


def main() -> None:
    app()
