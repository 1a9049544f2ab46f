"""The `kaquan` command."""

import asyncio
from typing import Annotated

import typer
import uvicorn

from kaquan.cli import bench, catalog_cmds, stock_cmds
from kaquan.cli.common import console, report, run, setup_logging
from kaquan.demo import seed
from kaquan.kit.config import get_settings
from kaquan.kit.db import Database, describe
from kaquan.kit.errors import DomainError
from kaquan.kit.migrate import upgrade
from kaquan.runtime import Runtime, admin_token
from kaquan.web.app import create_app
from kaquan.worker import run_forever

app = typer.Typer(
    help="kaquan: one central inventory of digital codes, sold everywhere, never twice.", no_args_is_help=True
)
app.add_typer(catalog_cmds.products, name="product")
app.add_typer(catalog_cmds.skus, name="sku")
app.add_typer(stock_cmds.segments, name="segment")
app.add_typer(bench.bench, name="bench")
app.command("import")(stock_cmds.import_codes)
app.command("stock")(stock_cmds.show_stock)


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

    async def work(rt: Runtime) -> bool:
        return await seed(rt)

    created = run(work)
    console.print("demo data loaded" if created else "demo data already present")
    _print_admin_token()


def _print_admin_token() -> None:
    settings = get_settings()
    console.print(
        f"admin API bearer token: [bold]{admin_token(settings)}[/] (kept in {settings.var_dir}/admin-token)",
        soft_wrap=True,
    )


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    worker: Annotated[bool, typer.Option(help="also run the outbox worker in this process")] = True,
) -> None:
    """Run the shop, the admin API and the payment endpoints (migrating first)."""
    setup_logging()
    settings = get_settings()
    run(lambda rt: asyncio.sleep(0))  # migrate and create keys before serving
    _print_admin_token()
    console.print(f"shop on http://{host}:{port} · database {describe(settings.resolved_database_url())}")
    uvicorn.run(create_app(settings, run_worker=worker), host=host, port=port, log_level="info")


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
