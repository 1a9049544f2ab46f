"""Fixtures shared by the web tests: the browser (storefront and console browser tests) and the flash sale."""

from tests.support.flash import flash, gate
from tests.support.server import browser, chromium_path

__all__ = ["browser", "chromium_path", "flash", "gate"]
