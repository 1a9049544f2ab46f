"""Fixtures shared by the web tests: the browser (storefront and console browser tests), the flash sale,
and `caller_at`, a client from an address of its own."""

from tests.support.flash import flash, gate
from tests.support.http import caller_at
from tests.support.server import browser, chromium, chromium_path

__all__ = ["browser", "caller_at", "chromium", "chromium_path", "flash", "gate"]
