"""`kaquan bench agent`."""

import typer


def register(bench: typer.Typer) -> None:
    """Add this benchmark's command to `kaquan bench`."""
