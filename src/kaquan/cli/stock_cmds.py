"""`kaquan import`, `kaquan segment add` and `kaquan stock`."""

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from kaquan.catalog import service as catalog
from kaquan.cli import when
from kaquan.cli.common import console, run
from kaquan.cli.output import JsonFlag, emit_json, show, table
from kaquan.inventory import CodeSource, Stock, importing, stock
from kaquan.inventory import segments as serial_ranges
from kaquan.runtime import Runtime

segments = typer.Typer(help="Segment stock (号段): contiguous serial ranges.", no_args_is_help=True)
ACTOR = "cli"


def _date(value: str | None) -> date | None:
    return None if value is None else when.day(value, "--expires")


def import_codes(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the code file")],
    sku: Annotated[str, typer.Option(help="SKU code or id")],
    supplier: str = "",
    unit_cost: Annotated[int, typer.Option(min=0, help="unit cost in minor units")] = 0,
    expires: Annotated[
        str | None, typer.Option(help="expiry date of the batch: YYYY-MM-DD, or +1y, +90d from today")
    ] = None,
    warehouse: str = "main",
    layout: Annotated[str, typer.Option(help="auto, single, pair or csv")] = "auto",
    encoding: Annotated[str | None, typer.Option(help="force an encoding (default: UTF-8, UTF-8 BOM or GBK)")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="import the good lines and report the bad ones")] = False,
) -> None:
    """Import a batch of codes: one per line, `card_no,secret` lines, or CSV with a header."""
    meta = importing.BatchMeta(
        supplier=supplier,
        unit_cost_minor=unit_cost,
        expires_on=_date(expires),
        warehouse=warehouse,
        source=file.name,
    )

    async def work(rt: Runtime) -> importing.ImportResult:
        source = CodeSource.of_path(file)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def advance(step: importing.Advance) -> None:
                if step.phase not in tasks:
                    tasks[step.phase] = bar.add_task(_PHASES[step.phase], total=source.size)
                bar.update(
                    tasks[step.phase], completed=step.bytes_read, description=f"{_PHASES[step.phase]}: {step.codes}"
                )

            async with rt.db.transaction() as session:
                target = await catalog.get_sku(session, sku)
                return await importing.import_file(
                    rt.db,
                    session,
                    rt.vault,
                    target,
                    source,
                    meta,
                    actor=ACTOR,
                    layout=layout,
                    encoding=encoding,
                    skip_invalid=skip_invalid,
                    progress=advance,
                )

    result = run(work)
    console.print(f"read {result.imported + result.skipped_total} codes ({result.encoding}, {result.layout})")
    for problem in result.skipped:
        console.print(f"  skipped line {problem['line_no']}: {problem['reason']}", highlight=False, markup=False)
    if result.skipped_total > len(result.skipped):
        console.print(f"  … and {result.skipped_total - len(result.skipped)} more skipped", highlight=False)
    console.print(f"batch {result.batch_id}: {result.imported} codes imported")


_PHASES = {"checking": "checking", "storing": "sealing and storing"}


@segments.command("add")
def add_segment(
    sku: Annotated[str, typer.Option(help="SKU code or id (stock kind: segment)")],
    start: Annotated[int, typer.Option(help="first serial")],
    end: Annotated[int, typer.Option(help="last serial (inclusive)")],
    width: Annotated[int, typer.Option(help="digits of a serial, zero-padded")],
    prefix: str = "",
    supplier: str = "",
    unit_cost: Annotated[int, typer.Option(min=0, help="unit cost in minor units")] = 0,
    expires: str | None = None,
    warehouse: str = "main",
) -> None:
    """Add a contiguous serial range prefix+[start..end] as one segment."""
    meta = importing.BatchMeta(
        supplier=supplier, unit_cost_minor=unit_cost, expires_on=_date(expires), warehouse=warehouse
    )

    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            target = await catalog.get_sku(session, sku)
            batch = await serial_ranges.add_segment(
                rt.db,
                session,
                target,
                prefix=prefix,
                width=width,
                start=start,
                end=end,
                meta=meta,
                actor=ACTOR,
            )
            return batch.id

    console.print(f"segment batch {run(work)}: {end - start + 1} serials added")


def show_stock(
    sku: Annotated[str | None, typer.Option(help="SKU code or id")] = None, as_json: JsonFlag = False
) -> None:
    """Stock per SKU and warehouse: available, reserved, sold, voided."""

    async def work(rt: Runtime) -> tuple[list[Stock], dict[int, str]]:
        async with rt.db.read() as session:
            sku_id = (await catalog.get_sku(session, sku)).id if sku else None
            names = {s.id: s.code for s in await catalog.list_skus(session)}
            return await stock(session, sku_id=sku_id), names

    rows, names = run(work)
    if as_json:
        emit_json(
            [
                {
                    "sku": names.get(row.sku_id, str(row.sku_id)),
                    "sku_id": row.sku_id,
                    "warehouse": row.warehouse,
                    **{key: getattr(row, key) for key in _COUNTS},
                    "adds_up": row.adds_up,
                }
                for row in rows
            ]
        )
        return
    listed = table("SKU", "warehouse", *_COUNTS, "adds up")
    for row in rows:
        listed.add_row(
            names.get(row.sku_id, str(row.sku_id)),
            row.warehouse,
            *(str(getattr(row, key)) for key in _COUNTS),
            "yes" if row.adds_up else Text("NO", style="red"),
        )
    show(listed)


_COUNTS = ("imported", "available", "reserved", "sold", "redeemed", "voided")
