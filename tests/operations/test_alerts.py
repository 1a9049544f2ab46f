"""Operator alerts: what used to be only log lines (low stock, refills, a disabled callback endpoint, a stalled
worker) reaches the operator by e-mail (a real SMTP server) and a signed webhook, through the outbox, once per
condition per interval, in the operators' language."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.alerting import alerts_to
from tests.support.builders import GivenSku, given_codes, given_sku, random_codes
from tests.support.callback_receiver import Receiver
from tests.support.callbacks import given_endpoint, notify
from tests.support.smtp import Mailbox, mailbox
from tests.support.warehouses import given_warehouse

from kaquan.channels.callbacks import sender
from kaquan.inventory import refills
from kaquan.kit import alerts, clock, outbox
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.operations import beat
from kaquan.operations.alert_messages import alert_text
from kaquan.runtime import Runtime

OPERATORS = "ops@shop.test, boss@shop.test"


@pytest.fixture
def settings(settings: Settings, smtp: Mailbox, hook: Receiver) -> Settings:
    return alerts_to(settings, smtp, hook, operators=OPERATORS)


async def given_refill(rt: Runtime, *, in_main: int) -> GivenSku:
    """A SKU with `in_main` codes in main and a rule refilling an empty second warehouse from main; rebalanced."""
    sku = await given_sku(rt)
    if in_main:
        await given_codes(rt, sku, random_codes(in_main))
    second = await given_warehouse(rt)
    async with rt.db.transaction() as session:
        await refills.add_rule(rt.db, session, sku.id, second, 1, threshold=5, refill_units=10, actor="alice")
    await refills.rebalance(rt.db)
    return sku


async def worker_passes(db: Database, count: int = 2) -> None:
    for _ in range(count):  # the low-stock event raises the alert; the next pass sends it
        await outbox.run_due(db)


def webhook_bodies(hook: Receiver) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in hook.requests]


async def test_a_refill_is_mailed_and_posted_once_per_interval(
    rt: Runtime, smtp: Mailbox, hook: Receiver, settings: Settings
) -> None:
    sku = await given_refill(rt, in_main=50)
    await worker_passes(rt.db)

    [mail] = smtp.wait_for(1)
    assert mail["To"] == "ops@shop.test, boss@shop.test"
    assert mail["Subject"] == f"[{settings.notify_shop_name}] 已自动补货：SKU {sku.id} 从 main 调拨 10 件到 backup"
    assert "补货规则" in mail.get_content()
    [body] = webhook_bodies(hook)
    assert (body["kind"], body["facts"]["sku_id"], body["subject"]) == ("refill", sku.id, mail["Subject"])
    assert hook.bad_signatures == [] and hook.accepted == [body["id"]]

    async with rt.db.transaction() as session:  # the same condition again within the hour: nothing new
        again = await alerts.raise_alert(rt.db, session, "refill", f"sku:{sku.id}:warehouse:backup", body["facts"])
    clock.travel(settings.alert_interval_minutes * 60)
    async with rt.db.transaction() as session:
        later = await alerts.raise_alert(rt.db, session, "refill", f"sku:{sku.id}:warehouse:backup", body["facts"])
    await worker_passes(rt.db, 1)

    assert (again, later) == (False, True)
    assert len(smtp.wait_for(2)) == 2 and len(hook.requests) == 2


async def test_stock_with_nothing_left_to_move_is_a_low_stock_alert_in_english_when_asked(
    rt: Runtime, smtp: Mailbox, settings: Settings
) -> None:
    settings.alert_language = "en"
    sku = await given_refill(rt, in_main=0)
    await worker_passes(rt.db)

    [mail] = smtp.wait_for(1)
    assert mail["Subject"].endswith(f"Low stock: SKU {sku.id} has 0 left in warehouse backup")
    assert "Import new codes or change the refill rule." in mail.get_content()


async def test_an_alert_the_mail_server_refused_is_sent_when_it_is_back(
    rt: Runtime, hook: Receiver, settings: Settings
) -> None:
    with mailbox(up=False) as down:
        down.point(settings)
        await given_refill(rt, in_main=50)
        await worker_passes(rt.db)
        assert len(hook.requests) == 1, "the webhook does not wait for the mail"

        down.start()
        clock.travel(60)
        await worker_passes(rt.db, 1)

        [mail] = down.wait_for(1)
        assert "SKU" in mail["Subject"]
        assert len(hook.requests) == 1, "the webhook was not sent again with the retried mail"


async def test_a_disabled_callback_endpoint_is_alerted(
    rt: Runtime, smtp: Mailbox, receiver_gone: Receiver, http: httpx.AsyncClient
) -> None:
    await given_endpoint(rt.db, rt.keyring, receiver_gone, 11)
    await notify(rt.db, 11, count=2)
    await sender.deliver_due(rt.db, rt.keyring, client=http, timeout_s=5, allow_private=True)
    await worker_passes(rt.db, 1)

    [mail] = smtp.wait_for(1)
    assert mail["Subject"].endswith("代理商 11 的回调地址已停用")
    assert "410 Gone" in mail.get_content() and "条待发送回调已取消" in mail.get_content()


@pytest.fixture
async def receiver_gone() -> AsyncIterator[Receiver]:
    gone = Receiver(answer=lambda _path: "gone")
    await gone.start()
    yield gone
    await gone.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_a_stalled_worker_is_alerted_by_the_probe_that_notices_once(
    rt: Runtime, client: httpx.AsyncClient, smtp: Mailbox, hook: Receiver, settings: Settings
) -> None:
    assert (await client.get("/readyz")).status_code == 503  # no worker ever ran: a new install, no alert
    await beat(rt.db)
    clock.travel(settings.ready_worker_max_age_s + 30)

    probes = [(await client.get("/readyz")).status_code for _ in range(3)]

    assert probes == [503, 503, 503]
    [mail] = smtp.wait_for(1)
    assert "后台任务进程已停止响应" in mail["Subject"] and "150 秒" in mail["Subject"]
    assert [body["kind"] for body in webhook_bodies(hook)] == ["worker_stale"]


async def test_without_a_channel_nothing_is_recorded_or_queued(db: Database) -> None:
    alerts.configure(alerts.Routing())
    async with db.transaction() as session:
        raised = await alerts.raise_alert(db, session, "low_stock", "sku:1:warehouse:main", {})
        pending = await outbox.pending_count(session)
        recorded = await session.scalar(select(func.count()).select_from(alerts.OperatorAlert))
    assert (raised, pending, recorded) == (False, 0, 0)


FACTS = {
    "sku_id": 3,
    "warehouse": "backup",
    "available": 0,
    "threshold": 5,
    "moved": 10,
    "source_warehouse": "main",
    "rule_id": 1,
    "agent_id": 7,
    "cancelled": 2,
    "age_s": 300,
    "max_age_s": 120,
    "version": 4,
    "reason": "a node is neither a leaf nor a split",
}


@pytest.mark.parametrize("kind", alerts.KINDS)
def test_every_alert_has_its_words_in_chinese_and_english(kind: str) -> None:
    chinese, english = alert_text(kind, FACTS, "zh", shop="卡券"), alert_text(kind, FACTS, "en", shop="kaquan")

    assert chinese.subject.startswith("[卡券] ") and english.subject.startswith("[kaquan] ")
    assert chinese.text != english.text
    assert "{" not in chinese.text + english.text + chinese.subject + english.subject
