"""Every response carries the security headers; pages run no inline script; the access log keeps no
secrets; X-Forwarded-For and X-Forwarded-Proto are believed only from the proxies named in the settings."""

import logging
import re
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from tests.support.builders import given_sku_with_codes, place_order
from tests.support.console import console_sign_in
from tests.support.http import BROWSER
from tests.support.identity import given_user

from kaquan import runtime as runtime_module
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.runtime import Runtime
from kaquan.web import security
from kaquan.web.app import create_app

TEMPLATES = Path(security.__file__).parent / "templates"
PROXY = "10.0.0.2"
TRUSTED_PROXIES = "10.0.0.0/24, 192.0.2.7"


@pytest.fixture
async def behind_proxy(db: Database, settings: Settings) -> AsyncIterator[Runtime]:
    """The shop behind a reverse proxy at 10.0.0.0/24 (and one at 192.0.2.7)."""
    update = {"trusted_proxies": TRUSTED_PROXIES}
    runtime = await runtime_module.start(settings.model_copy(update=update), db=db)
    yield runtime
    await runtime.agent_orders.close()
    await runtime.flash.close()


def client_from(rt: Runtime, peer: str, *, base_url: str = "http://shop.test") -> httpx.AsyncClient:
    """A client whose TCP connection comes from `peer`."""
    app = create_app(rt=rt)

    async def boom() -> None:
        raise RuntimeError("an unexpected failure")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    csp = {part.split()[0]: part.split()[1:] for part in headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "unsafe-eval" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert len(headers.get_list("referrer-policy")) == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/lookup", 200),
        ("GET", "/admin/login", 200),
        ("GET", "/static/style.css", 200),
        ("GET", "/static/console.js", 200),
        ("GET", "/openapi.json", 200),
        ("POST", "/api/orders/lookup", 422),
        ("GET", "/admin/api/audit", 401),
        ("GET", "/no/such/page", 404),
        ("GET", "/static/nothing.css", 404),
        ("GET", "/boom", 500),
    ],
)
async def test_every_kind_of_response_carries_the_security_headers(
    rt: Runtime, method: str, path: str, status: int
) -> None:
    async with client_from(rt, "203.0.113.9") as client:
        response = await client.request(method, path, headers=BROWSER if path != "/boom" else {})

    assert response.status_code == status
    assert_security_headers(response)
    assert "strict-transport-security" not in response.headers


async def test_the_order_page_says_no_referrer_once(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 1)
    response = await client.post(
        "/orders", data={"sku": sku.code, "quantity": "1", "idempotency_key": "k"}, follow_redirects=True
    )

    assert response.url.path.startswith("/orders/")
    assert_security_headers(response)


async def test_the_api_docs_page_runs_swagger_ui_from_the_shop_itself_with_no_inline_script(rt: Runtime) -> None:
    async with client_from(rt, "203.0.113.9") as client:
        docs = await client.get("/docs")
        assets = [await client.get(src) for src in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', docs.text)]

    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == security.CSP
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', docs.text))  # nothing from elsewhere
    assert inline_code(docs.text) == []
    assert len(assets) == 2
    assert all(asset.status_code == 200 and asset.content for asset in assets)


async def test_hsts_only_when_the_request_arrived_over_tls(behind_proxy: Runtime) -> None:
    https = {"X-Forwarded-Proto": "https"}
    async with client_from(behind_proxy, "203.0.113.9", base_url="https://shop.test") as direct_tls:
        over_tls = await direct_tls.get("/")
    async with client_from(behind_proxy, "203.0.113.9") as stranger:
        spoofed = await stranger.get("/", headers=https)
        plain = await stranger.get("/")
    async with client_from(behind_proxy, PROXY) as proxy:
        proxied_tls = await proxy.get("/", headers=https)
        proxied_plain = await proxy.get("/", headers={"X-Forwarded-Proto": "http"})

    assert over_tls.headers["strict-transport-security"] == "max-age=31536000"
    assert proxied_tls.headers["strict-transport-security"] == "max-age=31536000"
    for response in (spoofed, plain, proxied_plain):
        assert "strict-transport-security" not in response.headers


# --- no inline script -------------------------------------------------------------------------------


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline <script>, <style>, on*= handlers, style= attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower() for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on") or name == "style"]
        self.found += [
            f"{tag} javascript: URL" for _, value in attrs if (value or "").strip().startswith("javascript:")
        ]


def inline_code(text: str) -> list[str]:
    parser = InlineCode()
    parser.feed(text)
    return parser.found


def templates() -> Iterator[Path]:
    yield from sorted(TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("template", list(templates()), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_holds_inline_script_or_style(template: Path) -> None:
    assert inline_code(template.read_text()) == []


async def test_rendered_shop_and_console_pages_hold_no_inline_script(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 2)
    number, secret, token = await place_order(rt, sku)
    await given_user(rt, "alice", "owner")
    client.cookies.set(f"kqo_{number}", secret, path=f"/orders/{number}")
    pages = [
        await client.get(path, headers=BROWSER)
        for path in ("/", "/lookup", f"/orders/{number}", f"/pay/dev/{token}", "/no/such/page", "/admin/login")
    ]
    console = await console_sign_in(client)
    for path in ("/admin/", "/admin/orders?q=x", f"/admin/orders/{number}", "/admin/products", "/admin/audit"):
        pages.append(await console.get(path))
    pages.append(await console.get("/admin/redeem"))

    for page in pages:
        assert page.headers["content-type"].startswith("text/html"), page.url
        assert inline_code(page.text) == [], page.url


# --- the client's address -------------------------------------------------------------------------------


def scope_from(peer: str, **headers: str) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 5000),
        "scheme": "http",
        "headers": [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # a stranger's XFF proves nothing
        (PROXY, "198.51.100.1", "198.51.100.1"),  # our proxy names the client
        (PROXY, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # what the client wrote itself is skipped
        (PROXY, "6.6.6.6, 198.51.100.1, 192.0.2.7", "198.51.100.1"),  # through two of our proxies
        (PROXY, "10.0.0.9, 192.0.2.7", "10.0.0.9"),  # only our own hops: the farthest one
        (PROXY, "", PROXY),  # a proxy that sent no XFF
        (PROXY, "not-an-ip, 192.0.2.7", "192.0.2.7"),  # garbage: the last hop we can vouch for
        ("203.0.113.9", "", "203.0.113.9"),
    ],
)
def test_x_forwarded_for_counts_only_from_a_trusted_proxy_rightmost_untrusted_hop(
    peer: str, forwarded_for: str, client: str
) -> None:
    headers = {"x_forwarded_for": forwarded_for} if forwarded_for else {}
    networks = Settings(trusted_proxies=TRUSTED_PROXIES).trusted_proxy_networks()
    assert security.client_address(scope_from(peer, **headers), networks) == client


def test_without_trusted_proxies_no_forwarded_header_counts() -> None:
    scope = scope_from("127.0.0.1", x_forwarded_for="198.51.100.1", x_forwarded_proto="https")

    assert Settings().trusted_proxies == ""
    assert security.client_address(scope, ()) == "127.0.0.1"
    assert not security.arrived_over_tls(scope, ())


def test_a_bad_trusted_proxies_setting_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/24, my-proxy")


async def test_varying_x_forwarded_for_does_not_escape_the_lookup_throttle(rt: Runtime) -> None:
    async with client_from(rt, "203.0.113.9") as client:
        answers = [
            await client.post(
                "/api/orders/lookup",
                json={"number": "K0000", "secret": "wrong"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            for i in range(rt.settings.lookup_per_minute + 1)
        ]

    assert [a.status_code for a in answers[:-1]] == [404] * rt.settings.lookup_per_minute
    assert answers[-1].status_code == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_lookup_budget(behind_proxy: Runtime) -> None:
    budget = behind_proxy.settings.lookup_per_minute
    async with client_from(behind_proxy, PROXY) as proxy:
        first = [
            await proxy.post(
                "/api/orders/lookup",
                json={"number": "K0000", "secret": "x"},
                headers={"X-Forwarded-For": "198.51.100.1"},
            )
            for _ in range(budget + 1)
        ]
        other = await proxy.post(
            "/api/orders/lookup", json={"number": "K0000", "secret": "x"}, headers={"X-Forwarded-For": "198.51.100.2"}
        )

    assert first[-1].status_code == 429
    assert other.status_code == 404


# --- the access log ---------------------------------------------------------------------------------


async def test_the_access_log_shows_no_pay_token_ticket_secret_or_searched_contact(
    rt: Runtime, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    sku = await given_sku_with_codes(rt, 1)
    number, secret, token = await place_order(rt, sku)
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)
    ticket = "tk_" + "a" * 30

    with caplog.at_level(logging.INFO, logger="kaquan.access"):
        await client.get(f"/pay/dev/{token}")
        await client.post(f"/pay/dev/{token}")
        await client.get(f"/api/flash/tickets/{ticket}")
        await client.get(f"/lookup?number={number}&secret={secret}")
        await console.get("/admin/orders?q=ann%40example.com")
        await client.get("/admin/api/audit?target=buyer%40example.com&limit=5")

    lines = [record.getMessage() for record in caplog.records if record.name == "kaquan.access"]
    assert len(lines) == 6
    logged = "\n".join(lines)
    for secret_value in (token, ticket, secret, "ann", "example.com"):
        assert secret_value not in logged
    assert '"GET /pay/dev/***" 200' in logged
    assert '"POST /pay/dev/***" 303' in logged
    assert "/api/flash/tickets/***" in logged
    assert "/lookup?number=***&secret=***" in logged
    assert "/admin/orders?q=***" in logged
    assert "/admin/api/audit?target=***&limit=5" in logged
    assert lines[0].startswith("127.0.0.1 ")


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/pay/dev/SECRET-TOKEN", "/pay/dev/***"),
        ("/pay/stripe/SECRET-TOKEN/return", "/pay/stripe/***/return"),
        ("/api/flash/tickets/7.abc.def", "/api/flash/tickets/***"),
        ("/api/flash/7/purchase", "/api/flash/7/purchase"),
        ("/payments/dev/notify", "/payments/dev/notify"),
        ("/shop/pay/dev/x", "/shop/pay/dev/x"),
    ],
)
def test_the_access_log_hides_exactly_the_secret_path_segments(path: str, shown: str) -> None:
    assert security.redacted_target(path, "") == shown


def test_uvicorns_own_access_log_is_redacted_too() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/pay/dev/SECRET-TOKEN?contact=a%40b.c", "1.1", 200),
        None,
    )

    assert security.UVICORN_FILTER.filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /pay/dev/***?contact=*** HTTP/1.1" 200'
