"""`kaquan serve` hands uvicorn no trust of its own in forwarded headers, and `kaquan demo` says how to pay."""

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from tests.support.cli import Kaquan

from kaquan.cli import app as cli_app


def test_serve_leaves_forwarded_headers_and_access_logging_to_kaquan(
    kaquan: Kaquan, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))

    kaquan.ok("serve", "--port", "8123")

    [options] = started
    assert options["proxy_headers"] is False
    assert options["access_log"] is False
    assert options["server_header"] is False  # no `Server: uvicorn` for a prober


def test_serve_workers_give_each_process_time_to_import_kaquan_before_it_must_answer(
    kaquan: Kaquan, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))
    # serve hands these to its processes through the environment: set here, they are put back after the test
    monkeypatch.setenv("KAQUAN_SERVE_WORKERS", "1")
    monkeypatch.setenv("KAQUAN_SERVE_OUTBOX_WORKER", "1")

    kaquan.ok("serve", "--port", "8123", "--workers", "2")

    [options] = started
    assert options["workers"] == 2
    assert options["timeout_worker_healthcheck"] == cli_app.WORKER_START_S >= 30


def test_the_processes_of_serve_workers_leave_access_logging_to_kaquan(monkeypatch: pytest.MonkeyPatch) -> None:
    uvicorn_access = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(uvicorn_access, "propagate", True)  # as kit.logs.configure leaves it
    monkeypatch.setattr(uvicorn_access, "handlers", [])
    monkeypatch.setattr(cli_app, "create_app", lambda **options: FastAPI())

    cli_app.serve_app()

    assert not uvicorn_access.hasHandlers()  # uvicorn then writes no line of its own, nor builds one


def test_demo_says_the_dev_gateway_must_be_switched_on_to_pay(kaquan: Kaquan) -> None:
    out = kaquan.ok("demo")

    assert "KAQUAN_DEV_GATEWAY=1 KAQUAN_DEV_CONTACT_CODES=1 kaquan serve" in out


def test_serve_takes_its_port_from_the_option_or_kaquan_port(kaquan: Kaquan, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))

    by_default = kaquan.ok("serve")
    from_env = kaquan("serve", env={"KAQUAN_PORT": "8080"})
    from_option = kaquan.ok("serve", "--port", "8123")

    assert [options["port"] for options in started] == [8000, 8080, 8123]
    assert "shop on http://127.0.0.1:8000" in by_default
    assert from_env.exit_code == 0 and "shop on http://127.0.0.1:8080" in from_env.stdout
    assert "http://127.0.0.1:8123" in from_option
    assert kaquan("serve", "--port", "0").exit_code == 2


def test_make_run_serves_on_port_8000_unless_told_another() -> None:
    root = Path(__file__).resolve().parents[2]

    def planned(*args: str) -> str:
        # -n only prints the recipe: nothing is set up, loaded or served
        make = shutil.which("make")
        assert make is not None, "make is one of the two things kaquan needs"
        done = subprocess.run(  # noqa: S603 - our own Makefile, fixed arguments
            [make, "-n", "-C", str(root), "run", *args], capture_output=True, text=True, check=True
        )
        [serve] = [line for line in done.stdout.splitlines() if "kaquan serve" in line]
        return serve

    assert planned().endswith("kaquan serve --port 8000")
    assert planned("PORT=8080").endswith("kaquan serve --port 8080")
