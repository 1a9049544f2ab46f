"""Verifying a buyer's contact by a one-time code: what passes, what is refused, and what is never stored.

A code is 6 digits, lives 10 minutes, survives 5 wrong guesses, and replaces any
earlier code of its contact; asking again is throttled per contact and per address.
Refusals change nothing. Codes and contacts are stored only as keyed digests.
"""

import json
import logging
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.buyers import sent_code
from tests.support.smtp import mailbox

from kaquan.buyers import tasks
from kaquan.buyers.contacts import normalize
from kaquan.buyers.models import ContactCode
from kaquan.buyers.service import Started
from kaquan.kit import clock, outbox
from kaquan.kit.errors import DomainError
from kaquan.kit.outbox import OutboxEvent
from kaquan.runtime import Runtime


@pytest.fixture(autouse=True)
def _codes_to_the_log(rt: Runtime) -> None:
    rt.settings.dev_contact_codes = True


async def start(rt: Runtime, contact: str, *, ip: str | None = "203.0.113.5") -> Started:
    async with rt.db.transaction() as session:
        return await rt.buyers.start(rt.db, session, contact, ip=ip)


async def refused_start(rt: Runtime, contact: str, *, ip: str | None = "203.0.113.5") -> DomainError:
    with pytest.raises(DomainError) as caught:
        await start(rt, contact, ip=ip)
    return caught.value


async def refused_confirm(rt: Runtime, contact: str, code: str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await rt.buyers.confirm(rt.db, contact, code)
    return caught.value


async def codes_stored(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(ContactCode))).scalar_one())


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 (138) 0013-8000", "+8613800138000"),
        ("0086 138 0013 8000", "+8613800138000"),
        ("+1 415.555.0100", "+14155550100"),
    ],
)
def test_contacts_are_normalized_so_one_person_is_one_contact(typed: str, normal: str) -> None:
    assert normalize(typed, country_code="86").value == normal


@pytest.mark.parametrize("bad", ["ann", "ann@", "@example.com", "ann@example", "+12", "call me", "+0123456789"])
async def test_what_is_not_a_contact_is_refused_and_nothing_is_stored(rt: Runtime, bad: str) -> None:
    assert (await refused_start(rt, bad)).code == "invalid_contact"
    assert await codes_stored(rt) == 0


async def test_the_code_sent_proves_the_contact_and_the_token_names_it_normalized(rt: Runtime) -> None:
    started = await start(rt, " Ann@Example.COM")
    to, code = await sent_code(rt)

    token = await rt.buyers.confirm(rt.db, "ann@example.com", code)

    assert (started.contact, started.channel, to) == ("ann@example.com", "dev", "ann@example.com")
    assert timedelta(minutes=9) < started.expires_at - clock.now() <= timedelta(minutes=10)
    assert len(code) == 6 and code.isdigit()
    assert token.contact == "ann@example.com"
    assert rt.buyers.verified_contact(token.token) == "ann@example.com"
    assert (await refused_confirm(rt, "ann@example.com", code)).code == "code_expired"  # used once only


async def test_neither_the_code_nor_the_contact_is_stored_in_the_clear(rt: Runtime) -> None:
    await start(rt, "ann@example.com")
    _, code = await sent_code(rt)

    async with rt.db.read() as session:
        row = (await session.execute(select(ContactCode))).scalar_one()
        payload = (await session.execute(select(OutboxEvent.payload))).scalar_one()
    stored = f"{row.contact_digest} {row.code_hash.hex()} {payload}"
    assert "ann@example.com" not in stored and code not in stored


async def test_a_wrong_code_is_counted_and_the_fifth_burns_the_code(rt: Runtime) -> None:
    await start(rt, "+8613800138000")
    _, code = await sent_code(rt)

    first = await refused_confirm(rt, "+86 138 0013 8000", wrong(code))
    rest = [await refused_confirm(rt, "+8613800138000", wrong(code)) for _ in range(4)]
    right_too_late = await refused_confirm(rt, "+8613800138000", code)

    assert (first.code, first.details["attempts_left"]) == ("code_wrong", 4)
    assert [e.code for e in rest] == ["code_wrong"] * 3 + ["too_many_attempts"]
    assert right_too_late.code == "too_many_attempts"


async def test_a_code_expires_after_ten_minutes(rt: Runtime) -> None:
    await start(rt, "ann@example.com")
    _, code = await sent_code(rt)
    clock.travel(10 * 60)

    assert (await refused_confirm(rt, "ann@example.com", code)).code == "code_expired"


async def test_a_code_for_another_contact_or_none_at_all_proves_nothing(rt: Runtime) -> None:
    await start(rt, "ann@example.com")
    _, code = await sent_code(rt)

    assert (await refused_confirm(rt, "bob@example.com", code)).code == "code_expired"


async def test_asking_again_is_throttled_per_contact_and_a_new_code_replaces_the_old(rt: Runtime) -> None:
    await start(rt, "ann@example.com")
    _, old = await sent_code(rt)

    too_soon = await refused_start(rt, "ANN@example.com", ip="198.51.100.7")
    assert too_soon.code == "rate_limited"
    assert 0 < too_soon.details["retry_after"] <= 60
    assert await codes_stored(rt) == 1
    clock.travel(61)
    await start(rt, "ann@example.com")
    _, new = await sent_code(rt)

    assert (await refused_confirm(rt, "ann@example.com", old)).code in {"code_wrong", "code_expired"}
    assert (await rt.buyers.confirm(rt.db, "ann@example.com", new)).contact == "ann@example.com"


async def test_a_contact_gets_at_most_five_codes_an_hour(rt: Runtime) -> None:
    for _ in range(5):
        await start(rt, "ann@example.com")
        clock.travel(61)

    sixth = await refused_start(rt, "ann@example.com")

    assert sixth.code == "rate_limited"
    assert 0 < sixth.details["retry_after"] <= 3600
    assert await codes_stored(rt) == 5


async def test_an_address_gets_a_limited_number_of_codes_whatever_contacts_it_names(rt: Runtime) -> None:
    rt.settings.buyer_codes_per_ip_per_hour = 3
    for n in range(3):
        await start(rt, f"buyer-{n}@example.com")

    fourth = await refused_start(rt, "buyer-3@example.com")
    elsewhere = await start(rt, "buyer-3@example.com", ip="198.51.100.7")

    assert fourth.code == "rate_limited"
    assert elsewhere.contact == "buyer-3@example.com"


async def test_without_a_channel_for_the_contact_nothing_is_sent_or_stored(rt: Runtime) -> None:
    rt.settings.dev_contact_codes = False
    rt.settings.smtp_host = "smtp.example.com"

    phone = await refused_start(rt, "+8613800138000")

    assert (phone.code, phone.details["kind"]) == ("contact_channel_unavailable", "phone")
    assert await codes_stored(rt) == 0
    assert (await start(rt, "ann@example.com")).channel == "email"


async def test_a_token_expires_and_a_forged_one_proves_nothing(rt: Runtime) -> None:
    await start(rt, "ann@example.com")
    _, code = await sent_code(rt)
    token = (await rt.buyers.confirm(rt.db, "ann@example.com", code)).token
    body, tag = token.rsplit(".", 1)

    assert rt.buyers.verified_contact(f"{body}.{tag[:-2]}AA") is None
    assert rt.buyers.verified_contact("kqb1.e30.x") is None
    clock.travel(24 * 3600)
    assert rt.buyers.verified_contact(token) is None


# --- delivery by the worker --------------------------------------------------------------------


async def test_the_worker_sends_an_email_code_by_smtp(rt: Runtime) -> None:
    with mailbox() as box:
        box.point(rt.settings)
        await start(rt, "ann@example.com")
        _, code = await sent_code(rt)

        assert await outbox.run_due(rt.db) == 1

        [message] = box.wait_for(1)
    assert message["To"] == "ann@example.com"
    assert code in message.get_content()


async def test_the_worker_sends_a_phone_code_to_the_sms_webhook(rt: Runtime) -> None:
    rt.settings.sms_webhook_url, rt.settings.sms_webhook_token = "https://sms.example.com/send", "hook-secret"
    received: list[httpx.Request] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    tasks.install(tasks.CodeSender(rt.buyers, transport=httpx.MockTransport(webhook)))
    await start(rt, "+8613800138000")
    _, code = await sent_code(rt)

    assert await outbox.run_due(rt.db) == 1

    [request] = received
    assert request.headers["Authorization"] == "Bearer hook-secret"
    sent = json.loads(request.read())
    assert sent["to"] == "+8613800138000"
    assert code in sent["text"]


async def test_in_dev_mode_the_worker_prints_the_code_loudly(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kaquan.buyers")
    await start(rt, "ann@example.com")
    _, code = await sent_code(rt)

    assert await outbox.run_due(rt.db) == 1

    assert any("DEV CONTACT CODE" in r.getMessage() and code in r.getMessage() for r in caplog.records)


async def test_a_code_that_expired_before_the_worker_ran_is_not_sent(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kaquan.buyers")
    await start(rt, "ann@example.com")
    _, code = await sent_code(rt)
    clock.travel(11 * 60)

    assert await outbox.run_due(rt.db) == 1

    assert not any(code in r.getMessage() for r in caplog.records)
