"""`kaquan channel …`: Channels, price lists, agents and their keys."""

import typer

channel_app = typer.Typer(help="Channels, price lists, agents and their keys.", no_args_is_help=True)
