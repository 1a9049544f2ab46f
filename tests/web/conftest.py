"""Browser fixtures shared by the storefront and console browser tests."""

from tests.support.server import browser, chromium_path

__all__ = ["browser", "chromium_path"]
