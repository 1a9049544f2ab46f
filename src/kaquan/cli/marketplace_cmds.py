"""`kaquan channel marketplace …`: Marketplace stores: push secrets, price lists, order files."""

import csv
import os
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kaquan.channels import Channel, marketplace
from kaquan.channels import pricing as channels
from kaquan.cli.common import console, errors, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.output import JsonFlag, emit_json, money, show, table
from kaquan.kit.errors import BadInput
from kaquan.runtime import Runtime

marketplace_app = typer.Typer(help="Marketplace stores: push secrets, price lists, order files.", no_args_is_help=True)
ACTOR = "cli"
DELIVERY_COLUMNS = ("marketplace_order_id", "order_no", "card_no", "secret", "expires_on")
SOME_NOT_DELIVERED = 3
StoreArg = Annotated[str, typer.Argument(help="the store code: 1-20 characters of a-z 0-9 _ -")]


def _show_secret(intro: str, secret: str) -> None:
    console.print(intro, highlight=False)
    console.print(f"  push secret: {secret}", highlight=False, markup=False, soft_wrap=True)
    console.print("keep it safe; the store signs its pushes with it (X-Kq-Key = the store code)", highlight=False)


@marketplace_app.command("add")
def add(
    store: StoreArg,
    name: Annotated[str, typer.Option(help="the store's name as operators know it")],
    fee_bp: Annotated[
        int, typer.Option("--fee-bp", min=0, max=10_000, help="the marketplace's fee, basis points of each order")
    ] = 0,
) -> None:
    """Add a store (channel marketplace:STORE) with its fee; its push secret is shown this once."""

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            return await marketplace.add_store(
                rt.db, session, rt.keyring, store, name=name, fee_rate_bp=fee_bp, actor=ACTOR
            )

    secret = run(work)
    _show_secret(f"store {store} added: channel {marketplace.channel_of(store)}, fee {fee_bp / 100:.2f}%", secret)


@marketplace_app.command("secret")
def secret(store: StoreArg) -> None:
    """Show a store's current push secret again (recorded in the audit trail)."""

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            return await marketplace.reveal_secret(rt.db, session, rt.keyring, store, actor=ACTOR)

    _show_secret(f"store {store}:", run(work))


@marketplace_app.command("rotate")
def rotate(store: StoreArg, yes: YesFlag = False) -> None:
    """Replace a store's push secret; the old one stops working at once."""
    confirmed(f"replace store {store}'s push secret (the old one stops working at once)", yes=yes)

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            return await marketplace.rotate_secret(rt.db, session, rt.keyring, store, actor=ACTOR)

    _show_secret(f"store {store}: new push secret issued, the old one no longer works", run(work))


@marketplace_app.command("list")
def list_stores(as_json: JsonFlag = False) -> None:
    """Every marketplace store: name, fee and whether it sells."""

    async def work(rt: Runtime) -> list[Channel]:
        async with rt.db.read() as session:
            return await marketplace.list_stores(session)

    found = run(work)
    if as_json:
        emit_json(
            [
                {
                    "store": c.code.removeprefix(marketplace.CHANNEL_PREFIX),
                    "channel": c.code,
                    "name": c.name,
                    "fee_rate_bp": c.fee_rate_bp,
                    "active": c.active,
                }
                for c in found
            ]
        )
        return
    listed = table("store", "name", "fee", "active")
    for channel in found:
        listed.add_row(
            channel.code.removeprefix(marketplace.CHANNEL_PREFIX),
            channel.name,
            f"{channel.fee_rate_bp / 100:.2f}%",
            "yes" if channel.active else "no",
        )
    show(listed)


@marketplace_app.command("price")
def price(
    store: StoreArg,
    sku: Annotated[str, typer.Argument(help="SKU code or id")],
    price_minor: Annotated[int, typer.Argument(min=0, help="the price in minor units (fen, cents)")],
) -> None:
    """Put a SKU on the store's price list, or change its price there."""

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            channel = await marketplace.get_store(session, store)
            entry = await channels.set_price(rt.db, session, channel.code, sku, price_minor, actor=ACTOR)
            return money(entry.price_minor, entry.currency)

    console.print(f"{sku} sells at {run(work)} in store {store}", highlight=False, markup=False)


def _open_private(path: Path, *, replace: bool) -> TextIO:
    """A new file only its owner can read (the codes in it are plaintext)."""
    if replace:
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"{path} exists already; choose another --out or pass --force", field="out") from None
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _why_not(answer: marketplace.Delivered) -> str:
    wanted = answer.line.request
    if answer.outcome == "conflict":
        return (
            f"marketplace order {wanted.marketplace_order_id} was placed before (order {answer.order_no}) "
            "with a different sku, quantity or buyer; not delivered"
        )
    if answer.outcome == "out_of_stock":
        return f"out of stock: {wanted.quantity} x {wanted.sku} not available; nothing placed"
    return f"order {answer.order_no} is {answer.status}; it has no codes to deliver"


@marketplace_app.command("import")
def import_orders(
    store: StoreArg,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the marketplace's CSV")],
    out: Annotated[Path, typer.Option("--out", help="where to write DELIVERIES.csv (plaintext codes, mode 0600)")],
    force: Annotated[bool, typer.Option(help="replace the --out file if it exists")] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=5_000, help="orders per transaction")
    ] = marketplace.order_files.BATCH_SIZE,
) -> None:
    """Deliver a marketplace's order export: UTF-8 CSV, header marketplace_order_id,sku,quantity[,buyer].

    Every line is checked first: a bad line exits 1 naming each bad line, and nothing is placed.

    The codes go to --out as marketplace_order_id,order_no,card_no,secret,expires_on IN PLAINTEXT.

    That file is for uploading to the marketplace: delete it once uploaded.

    A line imported before is delivered again with the same codes.

    Exits 3 when some lines could not be delivered (each named by line: conflicts, out of stock).
    """
    data = file.read_bytes()

    async def work(rt: Runtime) -> list[marketplace.Delivered]:
        async with rt.db.read() as session:
            lines = await marketplace.order_files.check_order_file(
                session, store, data, max_per_order=rt.settings.max_per_order
            )
        with _open_private(out, replace=force) as sink:
            console.print(
                f"[bold yellow]warning[/]: {escape(str(out))} will hold the codes in plaintext; "
                "upload it to the marketplace, then delete it",
                highlight=False,
            )
            writer = csv.writer(sink)
            writer.writerow(DELIVERY_COLUMNS)
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                placing = bar.add_task("placing orders", total=len(lines))

                def write(done: list[marketplace.Delivered]) -> None:
                    for answer in done:
                        for code in answer.codes:
                            wanted = answer.line.request
                            writer.writerow(
                                (
                                    wanted.marketplace_order_id,
                                    answer.order_no,
                                    code.card_no or "",
                                    code.secret,
                                    code.expires_on or "",
                                )
                            )
                    sink.flush()
                    bar.advance(placing, len(done))

                return await marketplace.order_files.import_orders(
                    rt.db, rt.vault, store, lines, batch_size=batch_size, on_batch=write
                )

    answers = run(work)
    placed = sum(answer.outcome == "placed" for answer in answers)
    again = sum(answer.outcome == "replayed" and bool(answer.codes) for answer in answers)
    codes = sum(len(answer.codes) for answer in answers)
    console.print(
        f"{placed} order(s) placed, {again} delivered again; {codes} code(s) written to {out}",
        highlight=False,
        markup=False,
    )
    missed = [answer for answer in answers if not answer.codes]
    if missed:
        errors.print(f"{len(missed)} line(s) not delivered:", highlight=False)
        for answer in missed:
            errors.print(f"  line {answer.line.line_no}: {_why_not(answer)}", highlight=False, markup=False)
        raise typer.Exit(SOME_NOT_DELIVERED)
