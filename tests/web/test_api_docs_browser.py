"""/docs in a real browser with no way out: Swagger UI comes from kaquan itself and shows the API's operations.

Every request the page makes to another origin is refused and recorded, as on a
machine with no internet; the page must still draw its operations.
"""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route
from tests.support.server import served

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(tmp_path_factory.mktemp("docs")) as url:
        yield url


def test_the_api_docs_draw_every_operation_offline(shop_url: str, browser: Browser, tmp_path: Path) -> None:
    ours = urlsplit(shop_url).netloc
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
            return
        elsewhere.append(route.request.url)
        route.abort()

    page = browser.new_page()
    page.route("**/*", offline)
    page.goto(f"{shop_url}/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    operations = page.locator(".opblock").count()
    page.screenshot(path=str(tmp_path / "docs.png"))
    page.close()

    assert elsewhere == []
    assert operations > 50  # the shop's, the admin API's and the open API's routes
