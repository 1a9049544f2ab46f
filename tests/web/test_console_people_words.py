"""The agent, user and own-account pages speak both languages fully: no message key shows as itself, no
`\\u` escape, and in Chinese no stored status, role or ledger kind shows as its raw English value.

Identifiers an integrator types (key ids, event type names, permission scopes, URLs) are set in monospace,
and a ledger memo is text stored as written: both are content, not words, and left out of the check.
"""

import re
from datetime import timedelta

import httpx
from tests.support.aftersale import given_agent_order
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user

from kaquan.channels import agents, callbacks
from kaquan.identity.permissions import Permission
from kaquan.runtime import Runtime
from kaquan.web.i18n_people import MESSAGES

PAGES = ("/admin/agents", "/admin/agents/acme", "/admin/users", "/admin/me")
KEY_PREFIXES = sorted({key.split(".", 1)[0] for key in MESSAGES["en"]} - {"nav"})
A_KEY = re.compile(rf"\b(?:{'|'.join(KEY_PREFIXES)})\.[a-z_]+(?:\.[a-z_]+)*\b")
RAW_VALUES = re.compile(
    r"\b(?:active|suspended|pending|delivered|failed|cancelled|live|rotating|revoked|topup|adjustment|refund|"
    r"owner|operator|finance|support|auditor|disabled)\b"
)
CONTENT = re.compile(r'<(\w+)[^>]*class="[^"]*\b(?:mono|content)\b[^"]*"[^>]*>.*?</\1>', re.S)


def visible_words(html: str) -> str:
    body = html.split("<main>", 1)[1].split("</main>", 1)[0]
    body = CONTENT.sub(" ", body)
    body = re.sub(r"<(?:script|style)\b.*?</(?:script|style)>", " ", body, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


async def given_everything_the_pages_show(rt: Runtime) -> None:
    """An agent with an order and its refund on the ledger, a live, a rotating and a revoked key, a
    callback with a delivery; users of every role, one disabled; a live and a revoked token."""
    await given_agent_order(rt, quantity=1)
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, "acme")
        rotating = await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor="t")
        await agents.rotate_key(
            rt.db, session, rt.keyring, agent.id, rotating.key_id, grace=timedelta(hours=1), actor="t"
        )
        revoked = await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor="t")
        await agents.revoke_key(rt.db, session, agent.id, revoked.key_id, actor="t")
        await agents.top_up(rt.db, session, agent.id, 500, reference="B-1", actor="t")
        await agents.refunds.refund_delivered(
            rt.db, session, agent_id=agent.id, out_order_no="A-1", reason="test", actor="t"
        )
        await callbacks.set_endpoint(
            rt.db, session, rt.keyring, agent_id=agent.id, url="https://93.184.216.34/k", allow_private=False, actor="t"
        )
        await callbacks.notify(session, agent_id=agent.id, event_type="order.delivered", data={"order": {}})
        await agents.update_agent(rt.db, session, agent.id, status="suspended", actor="t")
    for role in ("operator", "finance", "support", "auditor"):
        await given_user(rt, f"u-{role}", role)


async def with_tokens(console: Console) -> None:
    scope = {"name": "bi", "scopes": Permission.FINANCE_READ.value}
    assert (await console.post("/admin/me/tokens", scope)).status_code == 200
    assert (await console.post("/admin/me/tokens", scope | {"name": "old"})).status_code == 200
    page = await console.get("/admin/me")
    token_id = re.findall(r'data-token="(\d+)"', page.text)[-1]
    assert (await console.post(f"/admin/me/tokens/{token_id}/revoke")).status_code == 303


async def test_every_people_page_has_every_word_in_both_languages(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_everything_the_pages_show(rt)
    await given_user(rt, "alice", "owner")
    console = await console_sign_in(client)
    await with_tokens(console)
    sam = await given_user(rt, "sam", "support")
    assert (await console.post(f"/admin/users/{sam.id}/disable")).status_code == 303

    for lang in ("zh", "en"):
        client.cookies.set("lang", lang)
        for path in PAGES:
            page = await console.get(path)
            assert page.status_code == 200, (lang, path)
            words = visible_words(page.text)
            assert not A_KEY.findall(words), (lang, path, A_KEY.findall(words))
            assert "\\u" not in page.text, (lang, path)
            if lang == "zh":
                assert not RAW_VALUES.findall(words), (path, RAW_VALUES.findall(words))
    page = await console.get("/admin/agents/acme")
    assert "suspended" in page.text and "rotating" in page.text and "top-up" in page.text and "refund" in page.text
