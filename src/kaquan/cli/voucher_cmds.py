"""`kaquan vouchers generate`: issue the merchant's own voucher codes, written once to a private file."""

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kaquan.catalog import service as catalog
from kaquan.cli import when
from kaquan.cli.common import console, errors, run
from kaquan.inventory import importing
from kaquan.redemption import vouchers
from kaquan.runtime import Runtime

app = typer.Typer(help="Vouchers the merchant issues itself (自发券) and redeems (核销).", no_args_is_help=True)
ACTOR = "cli"


def _date(value: str | None) -> date | None:
    return None if value is None else when.day(value, "--expires")


def _create_private(path: Path) -> TextIO:
    """Open a new file only its owner can read; never overwrite (the codes in an old file may be live)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise typer.BadParameter(f"{path} exists; choose a new file", param_hint="--out") from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot create {path}: {exc.strerror}", param_hint="--out") from None
    os.fchmod(fd, 0o600)  # whatever the umask said
    return os.fdopen(fd, "w", encoding="ascii", newline="\n")


@app.command("generate")
def generate(
    sku: Annotated[str, typer.Option(help="SKU code or id (a voucher product, stocked by code)")],
    count: Annotated[int, typer.Option(min=1, max=vouchers.MAX_PER_BATCH, help="how many codes to issue")],
    out: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False, help="new file for the plaintext codes (mode 0600; default: vouchers-SKU-TIME.txt)"
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="expiry date of the vouchers: YYYY-MM-DD, or +1y, +90d from today")
    ] = None,
    warehouse: str = "main",
) -> None:
    """Issue COUNT new voucher codes of ≥ 80 bits each, sealed in the inventory and written once to OUT."""
    meta = importing.BatchMeta(
        supplier="self-issued", source="generated", expires_on=_date(expires), warehouse=warehouse
    )
    path = out or Path(f"vouchers-{sku}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt")
    handle = _create_private(path)

    async def work(rt: Runtime) -> int:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            sealing = bar.add_task("generating, sealing and storing", total=count)
            async with rt.db.transaction() as session:
                target = await catalog.get_sku(session, sku)
                batch = await vouchers.generate(
                    rt.db,
                    session,
                    rt.vault,
                    target,
                    count,
                    actor=ACTOR,
                    meta=meta,
                    progress=lambda step: bar.update(sealing, completed=step.codes),
                )
                # Written and synced before the commit: committed codes nobody holds would be lost stock.
                handle.writelines(vouchers.display(code) + "\n" for code in batch.codes)
                handle.flush()
                os.fsync(handle.fileno())
                return batch.batch_id

    try:
        batch_id = run(work)
    except BaseException:
        handle.close()
        path.unlink(missing_ok=True)
        errors.print(f"nothing issued; {path} removed", highlight=False, markup=False)
        raise
    handle.close()
    console.print(
        f"batch {batch_id}: {count} vouchers issued for SKU {sku}, written to {path} (mode 0600). "
        "This file is the only plaintext copy: hand it over and delete it.",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
