"""Commands that destroy something or move money ask first, or take `--yes`.

On a terminal the operator is asked; a script (no terminal on standard input)
must say `--yes`, or the command refuses with exit code 2 and changes nothing:
a pipeline never quarantines a batch or refunds an order by accident.
"""

import sys
from typing import Annotated

import typer

from kaquan.cli.common import errors

REFUSED_EXIT = 2
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="do it without asking (for scripts)")]


def confirmed(action: str, *, yes: bool) -> None:
    """Return when the operator agreed to `action` (or passed --yes); otherwise exit, having changed nothing."""
    if yes:
        return
    if not sys.stdin.isatty():
        errors.print(
            f"refused: {action} needs confirmation; no terminal to ask on, so pass --yes. Nothing was changed.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise SystemExit(REFUSED_EXIT)
    if not typer.confirm(f"{action}?", default=False, err=True):
        errors.print("not confirmed; nothing was changed", highlight=False, markup=False)
        raise SystemExit(REFUSED_EXIT)
