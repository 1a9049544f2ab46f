"""`kaquan ledger …`: The ledger: check that it balances, read an account's entries."""

import typer

ledger_app = typer.Typer(help="The ledger: check that it balances, read an account's entries.", no_args_is_help=True)
