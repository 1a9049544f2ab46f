"""After sale, one entry for every channel: an order is refunded the way its channel took the money.

Shop and flash-sale orders go back through their gateway (support asks, finance approves, the worker
refunds); marketplace orders reverse the marketplace's receivable; agent orders credit the agent's deposit.
What cannot be refunded is refused with its own code and changes nothing.
"""

import asyncio

import pytest
from tests.support.aftersale import (
    REASON,
    ask,
    audited,
    decide,
    events,
    given_agent_order,
    given_marketplace_order,
    given_shop_order,
    order_status,
    payment_of,
    redeem,
    refunds_of,
)
from tests.support.builders import given_sku_with_codes, place_order, stock_of
from tests.support.marketplace import account_balance
from tests.support.vouchers import given_voucher_sku, given_vouchers

from kaquan import ledger
from kaquan.channels import aftersale
from kaquan.kit.errors import BadInput, DomainError
from kaquan.payments.dev import DevGateway
from kaquan.payments.errors import RefundNotAllowed, RefundTooLarge
from kaquan.payments.gateway import RefundRequest, RefundResult
from kaquan.runtime import Runtime
from kaquan.worker import run_once

PRICE = 1990  # the builders' SKU price


# --- shop orders, through the gateway ----------------------------------------------------------------


async def test_a_full_refund_asked_by_support_waits_for_finance_then_goes_back_through_the_gateway(
    rt: Runtime,
) -> None:
    order = await given_shop_order(rt, quantity=2)

    asked = await ask(rt, order.number)
    assert (asked.route, asked.status, asked.amount_minor) == ("gateway", "awaiting_approval", 2 * PRICE)
    assert (await stock_of(rt, order.sku)).sold == 2  # nothing moves before finance approves
    assert asked.refund is not None

    approved = await decide(rt, asked.refund.refund_no)
    assert (approved.status, approved.approved_by) == ("requested", "finance-1")
    assert (await stock_of(rt, order.sku)).voided == 2  # the codes are taken back on approval

    await run_once(rt)

    [refund] = await refunds_of(rt)
    assert (refund.status, refund.provider_ref) == ("succeeded", f"dev-refund-{refund.refund_no}")
    payment = await payment_of(rt, order.number)
    assert (payment.status, payment.refunded_minor) == ("refunded", 2 * PRICE)
    assert await order_status(rt, order.number) == "refunded"
    [notice] = await events(rt, "order.refunded")
    assert (notice["number"], notice["amount_minor"], notice["refund_no"]) == (
        order.number,
        2 * PRICE,
        refund.refund_no,
    )
    assert (await audited(rt, "refund.requested"), await audited(rt, "refund.approved")) == (1, 1)


async def test_a_partial_refund_leaves_the_codes_with_the_buyer_and_the_order_delivered(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=2)

    asked = await ask(rt, order.number, 500, actor="finance-1", may_approve=True)
    assert asked.status == "requested"  # who may approve is not asked to approve their own
    await run_once(rt)

    assert [r.status for r in await refunds_of(rt)] == ["succeeded"]
    assert (await payment_of(rt, order.number)).refunded_minor == 500
    assert await order_status(rt, order.number) == "delivered"
    assert (await stock_of(rt, order.sku)).sold == 2


async def test_partial_refunds_add_up_to_what_was_paid_and_no_further(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)
    await ask(rt, order.number, 1000, may_approve=True)
    await ask(rt, order.number, 990, may_approve=True)

    with pytest.raises(RefundTooLarge) as refused:
        await ask(rt, order.number, 1, may_approve=True)

    assert (refused.value.status, refused.value.code) == (409, "refund_exceeds_remaining")
    assert refused.value.details["remaining_minor"] == 0


async def test_a_refund_larger_than_what_remains_is_refused_and_changes_nothing(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)
    await ask(rt, order.number, 1500)  # awaiting approval: it counts against what remains

    with pytest.raises(RefundTooLarge) as refused:
        await ask(rt, order.number, 491)

    assert refused.value.details == {"amount_minor": 491, "remaining_minor": 490, "currency": "CNY"}
    assert len(await refunds_of(rt)) == 1


@pytest.mark.parametrize("amount", [0, -100])
async def test_a_refund_of_nothing_or_less_is_bad_input(rt: Runtime, amount: int) -> None:
    order = await given_shop_order(rt, quantity=1)

    with pytest.raises(BadInput) as refused:
        await ask(rt, order.number, amount)

    assert refused.value.details["field"] == "amount_minor"
    assert await refunds_of(rt) == []


@pytest.mark.parametrize("reason", ["", "   ", "x" * 301])
async def test_a_refund_needs_a_reason(rt: Runtime, reason: str) -> None:
    order = await given_shop_order(rt, quantity=1)

    with pytest.raises(BadInput):
        await ask(rt, order.number, reason=reason)

    assert await refunds_of(rt) == []


async def test_an_unpaid_order_is_not_refunded(rt: Runtime) -> None:
    number, _, _ = await place_order(rt, await given_sku_with_codes(rt, 2))

    with pytest.raises(aftersale.OrderNotPaid) as refused:
        await ask(rt, number)

    assert (refused.value.status, refused.value.code) == (409, "order_not_paid")


async def test_a_refunded_order_is_not_refunded_again(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)
    await ask(rt, order.number, may_approve=True)
    await run_once(rt)

    with pytest.raises(aftersale.OrderAlreadyRefunded) as refused:
        await ask(rt, order.number, may_approve=True)

    assert (refused.value.status, refused.value.code) == (409, "order_already_refunded")


async def test_an_order_with_a_redeemed_code_is_refunded_only_in_part(rt: Runtime) -> None:
    sku = await given_voucher_sku(rt)
    await given_vouchers(rt, sku, 3, sold=False)
    order = await given_shop_order(rt, quantity=2, sku=sku)
    await redeem(rt, order.codes[0])

    with pytest.raises(aftersale.CodeRedeemed) as refused:
        await ask(rt, order.number)
    assert (refused.value.status, refused.value.code) == (409, "refund_code_redeemed")

    partial = await ask(rt, order.number, 5000, may_approve=True)
    assert partial.status == "requested"


async def test_approving_a_refund_twice_is_a_conflict(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)
    asked = await ask(rt, order.number)
    assert asked.refund is not None
    await decide(rt, asked.refund.refund_no)

    with pytest.raises(RefundNotAllowed) as refused:
        await decide(rt, asked.refund.refund_no)

    assert refused.value.status == 409


async def test_a_rejection_says_why_and_gives_the_amount_back_to_what_remains(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)
    asked = await ask(rt, order.number)
    assert asked.refund is not None

    with pytest.raises(BadInput):
        await decide(rt, asked.refund.refund_no, approve=False)
    rejected = await decide(rt, asked.refund.refund_no, approve=False, note="the code was used")

    assert (rejected.status, rejected.detail) == ("rejected", "the code was used")
    assert (await ask(rt, order.number, PRICE)).amount_minor == PRICE


async def test_with_four_eyes_nobody_approves_their_own_refund(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)

    asked = await ask(rt, order.number, actor="finance-1", may_approve=True, four_eyes=True)
    assert asked.status == "awaiting_approval" and asked.refund is not None
    with pytest.raises(aftersale.OwnRefund) as refused:
        await decide(rt, asked.refund.refund_no, actor="finance-1", four_eyes=True)
    assert (refused.value.status, refused.value.code) == (403, "refund_own_approval")

    assert (await decide(rt, asked.refund.refund_no, actor="finance-2", four_eyes=True)).status == "requested"


async def test_a_refund_the_gateway_refused_is_retried_under_the_same_number(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await given_shop_order(rt, quantity=1)

    async def refusing(self: DevGateway, request: RefundRequest) -> RefundResult:
        return RefundResult(status="failed", detail="insufficient merchant balance")

    monkeypatch.setattr(DevGateway, "refund", refusing)
    asked = await ask(rt, order.number, may_approve=True)
    await run_once(rt)
    [failed] = await refunds_of(rt)
    assert (failed.status, failed.detail) == ("failed", "insufficient merchant balance")

    monkeypatch.undo()
    assert asked.refund is not None
    async with rt.db.transaction() as session:
        assert (await aftersale.retry(rt.db, session, asked.refund.refund_no, actor="finance-1")).status == "requested"
    await run_once(rt)

    [done] = await refunds_of(rt)
    assert (done.refund_no, done.status, done.attempts) == (failed.refund_no, "succeeded", 2)
    assert await order_status(rt, order.number) == "refunded"


# --- at once: never more back than was paid ---------------------------------------------------------


async def _many_at_once(rt: Runtime, number: str, amounts: list[int]) -> list[object]:
    return list(
        await asyncio.gather(
            *(ask(rt, number, amount, actor=f"support-{i}") for i, amount in enumerate(amounts)),
            return_exceptions=True,
        )
    )


async def test_refunds_asked_at_once_never_add_up_to_more_than_was_paid(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=1)

    outcomes = await _many_at_once(rt, order.number, [600] * 6)

    taken = [o for o in outcomes if isinstance(o, aftersale.AfterSaleRefund)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert (len(taken), len(refused)) == (3, 3), outcomes
    assert {type(o) for o in refused} == {RefundTooLarge}
    assert sum(r.amount_minor for r in await refunds_of(rt)) == 1800


async def test_without_the_locks_refunds_asked_at_once_add_up_to_more_than_was_paid(rt: Runtime) -> None:
    """The control experiment for the test above: without row locks every request reads the same
    remainder. PostgreSQL only: SQLite serializes writers on its one write lock."""
    if not rt.db.is_postgresql:
        pytest.skip("SQLite serializes writers: there is no overlap to show")
    order = await given_shop_order(rt, quantity=1)

    with rt.db.unprotected():
        await _many_at_once(rt, order.number, [600] * 6)

    assert sum(r.amount_minor for r in await refunds_of(rt)) > PRICE


async def test_approvals_of_one_refund_at_once_approve_it_once(rt: Runtime) -> None:
    order = await given_shop_order(rt, quantity=2)
    asked = await ask(rt, order.number)
    assert asked.refund is not None

    outcomes = await asyncio.gather(
        *(decide(rt, asked.refund.refund_no, actor=f"finance-{i}") for i in range(4)), return_exceptions=True
    )
    await run_once(rt)

    assert sorted(type(o).__name__ for o in outcomes) == ["PaymentRefund"] + ["RefundNotAllowed"] * 3
    assert await audited(rt, "refund.approved") == 1
    assert (await payment_of(rt, order.number)).refunded_minor == 2 * PRICE
    assert (await stock_of(rt, order.sku)).voided == 2


# --- marketplace orders: the receivable reversed ----------------------------------------------------


async def test_a_marketplace_refund_voids_the_codes_and_reverses_the_receivable(rt: Runtime) -> None:
    order = await given_marketplace_order(rt, quantity=2, price_minor=1000)
    receivable = "receivable:marketplace:tmall:CNY"
    assert await account_balance(rt, receivable) == 1900  # 2000 less the 5 % fee

    done = await ask(rt, order.number, actor="finance-1", may_approve=True)

    assert (done.route, done.status, done.amount_minor, done.refund) == ("marketplace", "succeeded", 2000, None)
    assert await order_status(rt, order.number) == "refunded"
    assert (await stock_of(rt, order.sku)).voided == 2
    for account in (receivable, "sales:marketplace:tmall:CNY", "fees:marketplace:tmall:CNY"):
        assert await account_balance(rt, account) == 0, account
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok
    [notice] = await events(rt, "order.refunded")
    assert (notice["number"], notice["amount_minor"], notice["channel"]) == (order.number, 2000, "marketplace:tmall")
    assert await audited(rt, "marketplace_order.refunded") == 1
    await run_once(rt)  # the buyer's notice has a handler


async def test_a_marketplace_refund_is_of_the_whole_order_by_someone_who_may_approve(rt: Runtime) -> None:
    order = await given_marketplace_order(rt)

    with pytest.raises(aftersale.ApprovalRequired) as by_support:
        await ask(rt, order.number)
    with pytest.raises(aftersale.PartialRefundUnsupported) as partial:
        await ask(rt, order.number, 500, may_approve=True)

    assert (by_support.value.status, by_support.value.code) == (403, "refund_approval_required")
    assert (partial.value.status, partial.value.code) == (400, "partial_refund_unsupported")
    assert await order_status(rt, order.number) == "delivered"


async def test_a_marketplace_order_is_refunded_once(rt: Runtime) -> None:
    order = await given_marketplace_order(rt)
    outcomes = await asyncio.gather(
        *(ask(rt, order.number, may_approve=True, actor=f"finance-{i}") for i in range(3)), return_exceptions=True
    )

    assert sorted(type(o).__name__ for o in outcomes) == ["AfterSaleRefund"] + ["OrderAlreadyRefunded"] * 2
    assert await account_balance(rt, "receivable:marketplace:tmall:CNY") == 0
    assert await audited(rt, "marketplace_order.refunded") == 1


# --- agent orders: the deposit credited -------------------------------------------------------------


async def test_an_agent_order_is_refunded_to_the_deposit_from_the_same_entry(rt: Runtime) -> None:
    order = await given_agent_order(rt, quantity=2, deposit_minor=10_000)
    assert await account_balance(rt, "agent:acme") == 10_000 - 1600

    done = await ask(rt, order.number, actor="finance-1", may_approve=True, reason=REASON)

    assert (done.route, done.status, done.amount_minor) == ("agent", "succeeded", 1600)
    assert await account_balance(rt, "agent:acme") == 10_000
    assert (await stock_of(rt, order.sku)).voided == 2
    [notice] = await events(rt, "order.refunded")
    assert notice["number"] == order.number
    assert await audited(rt, "agent_order.refunded") == 1
