"""A real kaquan server for browser tests, and the chromium that drives it.

The server is uvicorn in a thread on a free local port, over a fresh, migrated SQLite file (a copy
of one migrated once per test process) seeded with the demo catalog (plus whatever a test's `extra` seeding adds).
Without chromium the browser tests skip, unless KAQUAN_REQUIRE_BROWSER=1 makes that a failure.
"""

import atexit
import base64
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright
from tests.support.loops import in_own_loop

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


@cache
def _migrated_template() -> Path:
    """A migrated SQLite file, made once per test process: every served database starts as a copy of it
    (migrating takes a second or two, per server)."""
    folder = Path(tempfile.mkdtemp(prefix="kaquan-served-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "template.db"

    async def migrate() -> None:
        db = Database(f"sqlite:///{path}")
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    in_own_loop(migrate)  # the module's chromium (Playwright's sync API) runs a loop here
    return path


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

    shutil.copyfile(_migrated_template(), tmp_path / "kaquan.db")

    async def prepare() -> None:
        db = Database(settings.resolved_database_url())
        rt = await runtime_module.start(settings, db=db)
        try:
            assert await demo.seed(rt)
            if extra is not None:
                await extra(rt)
        finally:
            await rt.close()

    in_own_loop(prepare)
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


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One chromium for a test module's browser tests: starting Playwright and chromium takes a second or so."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser(chromium_path: Path, chromium: Browser) -> Iterator[Browser]:
    """The module's chromium with nothing open: what a test opens (its contexts, and their pages) is closed after it."""
    assert chromium.contexts == []
    yield chromium
    for context in chromium.contexts:
        context.close()
