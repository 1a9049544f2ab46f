"""`kaquan warehouse …`: Warehouses, refill rules and stock transfers."""

import typer

warehouse_app = typer.Typer(help="Warehouses, refill rules and stock transfers.", no_args_is_help=True)
