"""`kaquan admin`: make admin users and API tokens from the server's shell (how the first owner is born).

A password never travels as an argument (it would sit in the shell history and
the process list): it comes from a prompt or, for scripts, standard input.
"""

import sys
from typing import Annotated

import typer

from kaquan import identity
from kaquan.cli.common import console, run
from kaquan.identity.permissions import ROLES, Permission
from kaquan.runtime import Runtime

admins = typer.Typer(help="Admin users and their API tokens.", no_args_is_help=True)
ACTOR = "cli"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


@admins.command("create")
def create(
    username: Annotated[str, typer.Option(help="lower-case letters, digits, . _ -")],
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")] = "owner",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
) -> None:
    """Create an admin user (the first one is usually the owner)."""
    password = _read_password(password_stdin)

    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            user = await identity.create_user(session, username, password, role, actor=ACTOR)
            return user.id

    user_id = run(work)
    console.print(f"admin user {username.strip().lower()} ({role}) created with id {user_id}", highlight=False)


@admins.command("token")
def token(
    username: Annotated[str, typer.Option(help="whose token")],
    name: Annotated[str, typer.Option(help="what the token is for")],
    scope: Annotated[
        list[Permission] | None, typer.Option(help="a permission the token carries (repeat); default: all of the role")
    ] = None,
    expires_days: Annotated[int, typer.Option(min=1, max=366, help="days until the token expires")] = 90,
) -> None:
    """Create an API token for a user and print it once; only its hash is kept."""

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            user = await identity.find_user(session, username)
            allowed = ROLES.get(user.role, frozenset())
            _, plaintext = await identity.create_token(
                session,
                user.id,
                name,
                list(scope) if scope else sorted(allowed),
                expires_in_days=expires_days,
                allowed=allowed,
                actor=ACTOR,
            )
            return plaintext

    plaintext = run(work)
    console.print(plaintext, highlight=False, soft_wrap=True)
