"""After sale in the console: support asks for a refund on the order page, finance approves it in its queue,
the order page shows payments and refunds in words; resend; refusals are pages, never changes."""

import httpx
from tests.support.aftersale import given_marketplace_order, given_shop_order, refunds_of
from tests.support.console import Console, console_sign_in
from tests.support.identity import given_user

from kaquan.runtime import Runtime
from kaquan.web.app import create_app
from kaquan.worker import run_once


async def signed_in(rt: Runtime, client: httpx.AsyncClient, username: str, role: str) -> Console:
    await given_user(rt, username, role)
    return await console_sign_in(client, username)


async def test_support_asks_finance_approves_and_the_order_page_tells_the_story(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=2)
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as one,
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as two,
    ):
        sam, fiona = await signed_in(rt, one, "sam", "support"), await signed_in(rt, two, "fiona", "finance")

        detail = await sam.get(f"/admin/orders/{order.number}")
        assert 'id="refund-form"' in detail.text and 'value="39.80"' in detail.text  # prefilled with what remains
        assert 'id="resend-form"' in detail.text
        assert order.codes[0] not in detail.text

        asked = await sam.post(f"/admin/orders/{order.number}/refund", {"amount": "10.00", "reason": "slow"})
        assert (asked.status_code, asked.headers["location"]) == (303, f"/admin/orders/{order.number}")
        assert "待审批" in (await sam.get(f"/admin/orders/{order.number}")).text
        assert (await sam.get("/admin/refunds")).status_code == 403

        queue = await fiona.get("/admin/refunds")
        [refund] = await refunds_of(rt)
        assert refund.refund_no in queue.text and "slow" in queue.text and "sam" in queue.text
        approved = await fiona.post(f"/admin/refunds/{refund.refund_no}/approve")
        assert (approved.status_code, approved.headers["location"]) == (303, "/admin/refunds")
        await run_once(rt)

        after = await sam.get(f"/admin/orders/{order.number}")
        assert "已退款" in after.text and 'value="29.80"' in after.text
        assert [(r.amount_minor, r.status, r.requested_by, r.approved_by) for r in await refunds_of(rt)] == [
            (1000, "succeeded", "sam", "fiona")
        ]


async def test_bad_amounts_and_missing_reasons_are_error_pages_that_change_nothing(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    order = await given_shop_order(rt, quantity=1)
    sam = await signed_in(rt, client, "sam", "support")

    for form in ({"amount": "abc", "reason": "x"}, {"amount": "0", "reason": "x"}, {"amount": "19.91", "reason": "x"}):
        refused = await sam.post(f"/admin/orders/{order.number}/refund", form)
        assert refused.status_code in (400, 409) and "<html" in refused.text, form
    refused = await sam.post(f"/admin/orders/{order.number}/refund", {"amount": "1.00", "reason": " "})
    assert refused.status_code == 400

    assert await refunds_of(rt) == []


async def test_a_form_without_the_csrf_token_is_refused(rt: Runtime, client: httpx.AsyncClient) -> None:
    order = await given_shop_order(rt, quantity=1)
    sam = await signed_in(rt, client, "sam", "support")
    sam.csrf = "forged"

    refused = await sam.post(f"/admin/orders/{order.number}/refund", {"reason": "x"})

    assert refused.status_code == 403 and await refunds_of(rt) == []


async def test_a_marketplace_order_offers_finance_a_whole_refund(rt: Runtime, client: httpx.AsyncClient) -> None:
    order = await given_marketplace_order(rt)
    fiona = await signed_in(rt, client, "fiona", "finance")

    detail = await fiona.get(f"/admin/orders/{order.number}")
    assert 'id="refund-form"' in detail.text and 'id="refund-amount"' not in detail.text
    done = await fiona.post(f"/admin/orders/{order.number}/refund", {"reason": "returned on Tmall"})

    assert done.status_code == 303
    assert "refunded" in (await fiona.get(f"/admin/orders/{order.number}")).text


async def test_support_resends_a_delivery_from_the_order_page(rt: Runtime, client: httpx.AsyncClient) -> None:
    order = await given_shop_order(rt, quantity=1)
    sam = await signed_in(rt, client, "sam", "support")

    sent = await sam.post(f"/admin/orders/{order.number}/resend")

    assert (sent.status_code, sent.headers["location"]) == (303, f"/admin/orders/{order.number}?resent=1")
    shown = await sam.get(sent.headers["location"])
    assert 'id="resent-notice"' in shown.text and order.codes[0] not in shown.text
