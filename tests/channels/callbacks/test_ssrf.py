"""Callback URLs never point kaquan at its own network (SSRF), unless the operator allows private addresses."""

from ipaddress import ip_address

import pytest
from sqlalchemy import func, select

from kaquan.audit.models import AuditEntry
from kaquan.channels.callbacks import service as callbacks
from kaquan.channels.callbacks import ssrf
from kaquan.channels.callbacks.errors import CallbackUrlRefused
from kaquan.channels.callbacks.models import CallbackEndpoint
from kaquan.kit.crypto import KeyRing, new_key
from kaquan.kit.db import Database
from kaquan.kit.keys import StoredKey

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1 (loopback)"),
        ("http://127.9.9.9:8080/hook", "127.9.9.9 (loopback)"),
        ("http://[::1]/hook", "::1 (loopback)"),
        ("http://10.1.2.3/hook", "10.1.2.3 (private)"),
        ("http://172.16.0.5/hook", "172.16.0.5 (private)"),
        ("http://192.168.1.10/hook", "192.168.1.10 (private)"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local)"),
        ("http://[::ffff:127.0.0.1]/hook", "127.0.0.1 (loopback)"),
        ("http://[::ffff:a9fe:a9fe]/hook", "169.254.169.254 (link-local)"),
        ("http://[2002:7f00:1::]/hook", "127.0.0.1 (loopback)"),
        ("http://[64:ff9b::7f00:1]/hook", "(reserved)"),
        ("http://[fc00::1]/hook", "fc00::1 (private)"),
        ("http://[fe80::1]/hook", "fe80::1 (link-local)"),
        ("http://0.0.0.0/hook", "0.0.0.0 (unspecified)"),
        ("http://[::]/hook", ":: (unspecified)"),
        ("http://224.0.0.1/hook", "224.0.0.1 (multicast)"),
        ("http://[ff02::1]/hook", "ff02::1 (multicast)"),
        ("http://240.0.0.1/hook", "240.0.0.1 ("),
        ("http://100.64.0.1/hook", "100.64.0.1 (not globally routable)"),
        ("http://localhost:8080/hook", "(loopback)"),
        ("http://2130706433/hook", "127.0.0.1 (loopback)"),
        ("http://0x7f.1/hook", "127.0.0.1 (loopback)"),
    ],
)
async def test_non_public_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(CallbackUrlRefused, match="resolves to a non-public address") as refused:
        await ssrf.check(url, allow_private=False)

    assert reason in refused.value.reason
    assert refused.value.status == 422
    assert refused.value.code == "callback_url_refused"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("hooks.example.com/path", "only http and https"),
        ("http://agent:hunter2@example.com/hook", "must not carry credentials"),
        ("https://hunter2@example.com/hook", "must not carry credentials"),
        ("http:///hook", "has no host"),
        ("http://example.com:99999/hook", "port"),
        ("http://example.com:0/hook", "port"),
        ("http://exa mple.com/hook", "spaces or control characters"),
        ("http://example.com/\nhook", "spaces or control characters"),
        ("http://example.com/" + "a" * 2048, "longer than 2048"),
        ("http://bücher.example/hook", "must be ASCII"),
        ("http://does-not-exist.invalid/hook", "does not resolve"),
    ],
)
async def test_malformed_urls_are_refused_even_when_private_addresses_are_allowed(url: str, reason: str) -> None:
    with pytest.raises(CallbackUrlRefused, match=reason) as refused:
        await ssrf.check(url, allow_private=True)

    assert "hunter2" not in str(refused.value)
    assert "hunter2" not in str(refused.value.details)


async def test_a_refusal_names_the_host_but_never_the_query_that_may_hold_a_token() -> None:
    with pytest.raises(CallbackUrlRefused) as refused:
        await ssrf.check("http://10.0.0.1/hook?token=s3cr3t", allow_private=False)

    assert refused.value.details == {"reason": refused.value.reason, "host": "10.0.0.1"}
    assert "s3cr3t" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.0.0.1/hook"]
)
async def test_private_addresses_are_accepted_when_the_operator_allows_them(url: str) -> None:
    target = await ssrf.check(url, allow_private=True)

    assert target.url == url
    assert target.addresses
    assert all(ssrf.refusal(address) is not None for address in target.addresses)


async def test_public_addresses_are_accepted() -> None:
    for url, address in ((f"https://{PUBLIC_V4}/hook", PUBLIC_V4), (f"http://[{PUBLIC_V6}]:8080/hook", PUBLIC_V6)):
        target = await ssrf.check(url, allow_private=False)
        assert target.addresses == (ip_address(address),)


async def test_a_name_is_refused_when_any_of_its_addresses_is_private(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.example.com"] = [PUBLIC_V4, "10.0.0.7"]
    fake_dns["public.example.com"] = [PUBLIC_V4, PUBLIC_V6]

    with pytest.raises(CallbackUrlRefused, match=r"10\.0\.0\.7 \(private\)"):
        await ssrf.check("https://hooks.example.com/hook", allow_private=False)
    target = await ssrf.check("https://public.example.com/hook", allow_private=False)
    assert target.addresses == (ip_address(PUBLIC_V4), ip_address(PUBLIC_V6))


def test_a_pinned_request_connects_to_the_checked_address_and_still_names_the_host() -> None:
    target = ssrf.Target("https://Hooks.Example.com:8443/cb/in?agent=7", (ip_address(PUBLIC_V4), ip_address(PUBLIC_V6)))

    v4 = target.pinned(ip_address(PUBLIC_V4))
    assert v4.url == f"https://{PUBLIC_V4}:8443/cb/in?agent=7"
    assert v4.headers == {"host": "Hooks.Example.com:8443", "connection": "close"}
    assert v4.extensions == {"sni_hostname": "hooks.example.com"}
    assert target.pinned(ip_address(PUBLIC_V6)).url == f"https://[{PUBLIC_V6}]:8443/cb/in?agent=7"

    plain = ssrf.Target("http://hooks.example.com", (ip_address(PUBLIC_V4),)).pinned(ip_address(PUBLIC_V4))
    assert plain.url == f"http://{PUBLIC_V4}:80/"
    assert plain.headers["host"] == "hooks.example.com"
    assert plain.extensions == {}


async def test_a_refused_url_changes_nothing(db: Database) -> None:
    async def counts() -> tuple[int, int, int]:
        async with db.read() as session:
            return (
                (await session.execute(select(func.count()).select_from(CallbackEndpoint))).scalar_one(),
                (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one(),
                (await session.execute(select(func.count()).select_from(StoredKey))).scalar_one(),
            )

    before = await counts()
    with pytest.raises(CallbackUrlRefused, match="loopback"):
        async with db.transaction() as session:
            await callbacks.set_endpoint(
                db, session, KeyRing(new_key()), agent_id=1, url="http://127.0.0.1/hook", allow_private=False, actor="t"
            )

    assert await counts() == before
