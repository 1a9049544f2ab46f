"""Shared CLI plumbing: run a coroutine against a started runtime, print domain errors plainly."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from rich.console import Console

from kaquan import runtime as runtime_module
from kaquan.cli import when
from kaquan.kit import logs
from kaquan.kit.config import get_settings
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.kit.migrate import upgrade
from kaquan.runtime import Runtime

T = TypeVar("T")
console = Console()
errors = Console(stderr=True)


def setup_logging(level: int = logging.INFO) -> None:
    logs.configure(level)


def report(exc: DomainError) -> None:
    """A domain error as the operator should read it: the message, then one line per problem."""
    errors.print(f"[bold red]error[/] ({exc.code}): {exc.message}", highlight=False, markup=True)
    for problem in exc.details.get("problems", []):
        errors.print(
            f"  line {problem['line_no']}: {problem['reason']} [{problem['code']}]",
            highlight=False,
            markup=False,
        )
    shown = len(exc.details.get("problems", []))
    total = exc.details.get("problem_count", shown)
    if total > shown:
        errors.print(f"  … and {total - shown} more", highlight=False)


def run(work: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Start a runtime (migrating first), run `work`, close; domain errors exit 1 with a clear message."""

    async def main() -> T:
        settings = get_settings()
        if migrate:
            db = Database(settings.resolved_database_url())
            await upgrade(db)
            await db.dispose()
        rt = await runtime_module.start(settings)
        try:
            return await work(rt)
        finally:
            await rt.close()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        report(exc)
        raise SystemExit(1) from None


def aware_time(value: str | None, name: str) -> datetime | None:
    """An aware time from an option (None when not given): ISO 8601 with its zone, `now` or `+2h`-style."""
    return None if value is None else when.moment(value, name)
