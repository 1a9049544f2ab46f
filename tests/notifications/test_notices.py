"""Delivery and refund notices: sent by the worker through the outbox, once per event, in the buyer's language.

A real SMTP server (aiosmtpd) receives the mails and a real HTTP receiver plays
the SMS webhook. A notice links to the order page and never carries the codes.
"""

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import select
from tests.support.aftersale import ask
from tests.support.callback_receiver import Answer, Receiver
from tests.support.notices import given_delivered, notices_sent
from tests.support.smtp import Mailbox, mailbox

from kaquan.channels.callbacks.signing import new_secret
from kaquan.kit import clock, outbox
from kaquan.kit.outbox import OutboxEvent
from kaquan.runtime import Runtime
from kaquan.worker import run_once


@pytest.fixture
def box(rt: Runtime) -> Iterator[Mailbox]:
    with mailbox() as running:
        running.point(rt.settings)
        yield running


@pytest.fixture
async def sms(rt: Runtime) -> AsyncIterator[Receiver]:
    secret = new_secret()
    receiver = Receiver(secrets={"/sms": secret})
    await receiver.start()
    rt.settings.sms_webhook_url = receiver.url("/sms")
    rt.settings.sms_webhook_secret = secret
    rt.settings.sms_webhook_allow_private = True  # the receiver is on 127.0.0.1
    yield receiver
    await receiver.stop()


async def waiting(rt: Runtime, topic: str) -> list[OutboxEvent]:
    async with rt.db.read() as session:
        stmt = select(OutboxEvent).where(OutboxEvent.topic == topic, OutboxEvent.done_at.is_(None))
        return list((await session.execute(stmt)).scalars())


async def test_a_delivery_is_mailed_once_in_chinese_with_a_link_and_never_the_codes(rt: Runtime, box: Mailbox) -> None:
    order = await given_delivered(rt, buyer_contact="ann@example.com", lang="zh", quantity=2)

    await run_once(rt)
    await run_once(rt)  # a second pass finds nothing more to send

    [mail] = box.wait_for(1)
    assert mail["To"] == "ann@example.com"
    assert mail["Subject"] == f"kaquan 卡券商城：您的订单 {order.number} 已发货"
    body = mail.get_content()
    assert f"{rt.settings.public_url}/orders/{order.number}" in body
    assert "× 2" in body and "本邮件不包含卡密" in body
    assert len(order.codes) == 2 and not any(code in body or code in mail["Subject"] for code in order.codes)
    assert mail["Message-ID"] == f"<delivered.{order.id}@localhost>"
    assert await notices_sent(rt) == [(f"delivered:{order.id}", "email")]


async def test_the_notice_speaks_the_language_the_buyer_ordered_in(rt: Runtime, box: Mailbox) -> None:
    order = await given_delivered(rt, buyer_contact="ann@example.com", lang="en")

    await run_once(rt)

    [mail] = box.wait_for(1)
    assert mail["Subject"] == f"kaquan 卡券商城: your order {order.number} is ready"
    assert "For your safety the codes are not in this message" in mail.get_content()


async def test_one_event_run_twice_or_queued_twice_sends_one_mail(rt: Runtime, box: Mailbox) -> None:
    order = await given_delivered(rt, buyer_contact="ann@example.com")
    await run_once(rt)
    async with rt.db.transaction() as session:  # the same event again, as a duplicate write would queue it
        await outbox.enqueue(session, "order.delivered", {"order_id": order.id, "number": order.number})
        await outbox.mark_all_due(session)

    await run_once(rt)
    await run_once(rt)

    assert len(box.wait_for(2, timeout_s=0.5)) == 1
    assert await waiting(rt, "order.delivered") == []


async def test_support_resending_a_delivery_sends_a_second_mail(rt: Runtime, box: Mailbox) -> None:
    from kaquan.orders.resend import resend_delivery

    order = await given_delivered(rt, buyer_contact="ann@example.com")
    await run_once(rt)
    async with rt.db.transaction() as session:
        await resend_delivery(session, rt.limiter, order.number, actor="support-1", per_hour=3)

    await run_once(rt)
    await run_once(rt)

    mails = box.wait_for(2)
    assert len(mails) == 2 and mails[0]["Message-ID"] != mails[1]["Message-ID"]
    assert [channel for _, channel in await notices_sent(rt)] == ["email", "email"]


async def test_a_guest_who_typed_an_email_address_hears_of_a_refund(rt: Runtime, box: Mailbox) -> None:
    order = await given_delivered(rt, contact="Bob@Example.com", lang="zh")
    await run_once(rt)

    await ask(rt, order.number, 500, actor="finance-1", may_approve=True)
    await run_once(rt)
    await run_once(rt)

    delivered, refunded = box.wait_for(2)
    assert delivered["To"] == refunded["To"] == "bob@example.com"
    assert refunded["Subject"] == f"kaquan 卡券商城：订单 {order.number} 已退款 ¥5.00"
    assert "款项将原路退回" in refunded.get_content()


async def test_with_the_smtp_server_down_the_notice_waits_and_goes_out_once_it_is_back(rt: Runtime) -> None:
    with mailbox(up=False) as box:
        box.point(rt.settings)
        order = await given_delivered(rt, buyer_contact="ann@example.com")

        await run_once(rt)
        [event] = await waiting(rt, "order.delivered")
        assert event.attempts == 1 and event.last_error is not None and "Connection" in event.last_error
        assert event.due_at > clock.now()
        assert await notices_sent(rt) == []  # a failed send is not recorded as sent

        await run_once(rt)  # not due yet: nothing is tried
        assert (await waiting(rt, "order.delivered"))[0].attempts == 1

        box.start()
        clock.travel(outbox.backoff(1).total_seconds() + 1)
        await run_once(rt)

        [mail] = box.wait_for(1)
    assert order.number in mail["Subject"]
    assert await waiting(rt, "order.delivered") == []


async def test_no_smtp_server_configured_sends_nothing_and_finishes_the_event(rt: Runtime) -> None:
    await given_delivered(rt, buyer_contact="ann@example.com")

    await run_once(rt)

    assert await notices_sent(rt) == []
    assert await waiting(rt, "order.delivered") == []


async def test_a_verified_phone_hears_by_the_sms_webhook_signed(rt: Runtime, sms: Receiver) -> None:
    order = await given_delivered(rt, buyer_contact="+8613800138000", lang="zh")

    await run_once(rt)
    await run_once(rt)

    [request] = sms.requests
    assert sms.bad_signatures == [] and sms.accepted == [f"delivered:{order.id}"]
    body = json.loads(request.body)
    assert body["to"] == "+8613800138000" and body["kind"] == "delivered" and body["order"] == order.number
    assert order.number in body["text"] and f"/orders/{order.number}" in body["text"]
    assert not any(code in request.body.decode() for code in order.codes)


async def test_a_typed_phone_number_is_never_texted(rt: Runtime, sms: Receiver) -> None:
    await given_delivered(rt, contact="13800138000")

    await run_once(rt)

    assert sms.requests == [] and await notices_sent(rt) == []


async def test_the_sms_webhook_on_a_private_address_is_refused_unless_allowed(rt: Runtime, sms: Receiver) -> None:
    rt.settings.sms_webhook_allow_private = False
    order = await given_delivered(rt, buyer_contact="+8613800138000")

    await run_once(rt)

    assert sms.requests == []
    [event] = await waiting(rt, "order.delivered")
    assert event.last_error is not None and "127.0.0.1 (loopback)" in event.last_error

    rt.settings.sms_webhook_allow_private = True
    clock.travel(outbox.backoff(1).total_seconds() + 1)
    await run_once(rt)
    assert sms.accepted == [f"delivered:{order.id}"]


async def test_a_webhook_that_fails_is_asked_again_later(rt: Runtime, sms: Receiver) -> None:
    answers: Iterator[Answer] = iter(["error", "ok"])
    sms.answer = lambda _path: next(answers)
    order = await given_delivered(rt, buyer_contact="+8613800138000")

    await run_once(rt)
    assert [r.answer for r in sms.requests] == ["error"] and await notices_sent(rt) == []

    clock.travel(outbox.backoff(1).total_seconds() + 1)
    await run_once(rt)

    assert sms.accepted == [f"delivered:{order.id}"]
    assert await notices_sent(rt) == [(f"delivered:{order.id}", "sms")]
