"""A real kaquan server for browser tests, and the chromium that drives it.

The server is uvicorn in a thread on a free local port, over a fresh, migrated SQLite
file seeded with the demo catalog (plus whatever a test's `extra` seeding adds).
Without chromium the browser tests skip, unless KAQUAN_REQUIRE_BROWSER=1 makes that a failure.
"""

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from kaquan import demo
from kaquan import runtime as runtime_module
from kaquan.kit.config import Settings
from kaquan.kit.crypto import new_key
from kaquan.kit.db import Database
from kaquan.kit.migrate import upgrade
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
Seed = Callable[[Runtime], Awaitable[None]]


@contextmanager
def served(tmp_path: Path, extra: Seed | None = None, *, run_worker: bool = False, **overrides: Any) -> Iterator[str]:
    """A real kaquan server over a fresh database holding the demo catalog; yields its base URL.

    `overrides` are further settings (an SMTP server, say); `run_worker` runs the worker in the server too.
    """
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'kaquan.db'}",
        redis_url=None,
        master_key=base64.b64encode(new_key()).decode(),
        dev_gateway=True,
        **overrides,
    )

    async def prepare() -> None:
        db = Database(settings.resolved_database_url())
        await upgrade(db)
        rt = await runtime_module.start(settings, db=db)
        try:
            assert await demo.seed(rt)
            if extra is not None:
                await extra(rt)
        finally:
            await rt.close()

    asyncio.run(prepare())
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, run_worker=run_worker), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "the kaquan server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("KAQUAN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"KAQUAN_REQUIRE_BROWSER=1 but there is no chromium at {CHROMIUM}")
        pytest.skip(f"no chromium at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture
def browser(chromium_path: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
