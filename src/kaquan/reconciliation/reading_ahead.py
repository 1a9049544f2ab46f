"""A statement's batches made on a thread while the previous one is stored.

On PostgreSQL the server stores a batch while a thread reads and converts the
next (polars parses without the GIL). On SQLite the rows are stored by a
thread that needs the GIL between rows: reading beside it would starve it, so
there the next batch is made only once the last one is stored.
"""

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

from kaquan.kit.db import Database

T = TypeVar("T")


async def made_ahead(db: Database, make: Callable[[], T | None]) -> AsyncGenerator[T, None]:
    """What `make()` returns, on a thread, until it returns None; use inside `contextlib.aclosing`."""
    overlap = db.copy_runs_beside_python
    upcoming = asyncio.ensure_future(asyncio.to_thread(make))
    try:
        while (made := await upcoming) is not None:
            if overlap:
                upcoming = asyncio.ensure_future(asyncio.to_thread(make))
            yield made
            if not overlap:
                upcoming = asyncio.ensure_future(asyncio.to_thread(make))
    finally:
        if not upcoming.done():
            await asyncio.wait([upcoming])
        if not upcoming.cancelled():
            upcoming.exception()  # retrieved: a second failure (a rejected file) must not be logged as unhandled
