"""`kaquan flash …`: Flash-sale events: schedule, list, end."""

import typer

flash_app = typer.Typer(help="Flash-sale events: schedule, list, end.", no_args_is_help=True)
