"""How the CLI shows things: money as money, tables that survive a pipe, and `--json` for scripts.

A table printed to a terminal wraps its cells to the terminal's width (never an
ellipsis: every column folds); printed to a pipe or a file it takes the width it
needs, so `kaquan stock | grep VIDEO` sees whole lines. `--json` prints one JSON
document on standard output; every amount in it is `{"amount_minor": 1990,
"currency": "CNY"}`, except where a command prints the admin API's own objects
(`sku list`, `flash list`, `flash show`: `*_minor` integers beside `currency`).
"""

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from kaquan.cli.common import console
from kaquan.kit.config import get_settings
from kaquan.kit.money import display

_UNBOUNDED = 100_000
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of a table")]


def money(minor: int | None, currency: str) -> str:
    """`¥1,000.00`, `US$12.50`, `JP¥1,200`: as a person reads it; `-` for no amount."""
    return "-" if minor is None else display(minor, currency)


def money_json(minor: int | None, currency: str) -> dict[str, Any] | None:
    """An amount for `--json`: integer minor units and the currency, never a float."""
    return None if minor is None else {"amount_minor": minor, "currency": currency}


def local_time(moment: datetime | None) -> str:
    """A time in the merchant's zone (KAQUAN_TIMEZONE) with its offset: `2026-12-06 20:00:00 +08:00`."""
    if moment is None:
        return "-"
    shown = moment.astimezone(get_settings().zone())
    return f"{shown:%Y-%m-%d %H:%M:%S} {shown.isoformat()[-6:]}"


class PlainTable(Table):
    """A table whose string cells are shown as they are: a name like `VIP [年卡]` is text, not Rich markup."""

    def add_row(
        self, *renderables: RenderableType | None, style: StyleType | None = None, end_section: bool = False
    ) -> None:
        cells = [Text(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


def table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells fold onto more lines rather than lose characters."""
    made = PlainTable(title=None if title is None else Text(title))
    for header in headers:
        made.add_column(header, overflow="fold")
    return made


def show(rendered: Table) -> None:
    """Print a table: to the terminal's width on a terminal, at its full natural width anywhere else."""
    if console.is_terminal:
        console.print(rendered)
        return
    natural = console.measure(rendered, options=console.options.update_width(_UNBOUNDED)).maximum
    if rendered.title is not None:  # the title wraps, too, when it is wider than the table
        natural = max(natural, cell_len(str(rendered.title)))
    Console(file=console.file, width=max(natural, 1), force_terminal=False).print(rendered)


def emit_json(data: Any) -> None:
    """One JSON document on standard output, UTF-8 as is (中文 stays readable), no colours."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
