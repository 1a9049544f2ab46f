"""`kaquan serve` hands uvicorn no trust of its own in forwarded headers, and `kaquan demo` says how to pay."""

from typing import Any

import pytest
import uvicorn
from tests.support.cli import Kaquan


def test_serve_leaves_forwarded_headers_and_access_logging_to_kaquan(
    kaquan: Kaquan, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))

    kaquan.ok("serve", "--port", "8123")

    [options] = started
    assert options["proxy_headers"] is False
    assert options["access_log"] is False


def test_demo_says_the_dev_gateway_must_be_switched_on_to_pay(kaquan: Kaquan) -> None:
    out = kaquan.ok("demo")

    assert "KAQUAN_DEV_GATEWAY=1 KAQUAN_DEV_CONTACT_CODES=1 kaquan serve" in out
