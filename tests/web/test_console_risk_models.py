"""The console's risk models page: every model's metrics on its later period and how the active and shadow
models scored recent decisions, in Chinese and English; roles without risk.read are refused."""

import httpx
from tests.support.console import console_sign_in
from tests.support.identity import given_user
from tests.support.risk_history import given_recorded, history

from kaquan.risk import RiskContext, learning
from kaquan.runtime import Runtime


async def given_models(rt: Runtime) -> None:
    """v1 active, v2 in shadow, and a few decisions both scored."""
    await given_recorded(rt.db, history(1200, seed=4))
    await learning.train(rt.db, [], actor="alice", seed=1)
    async with rt.db.transaction() as session:
        await learning.promote(session, 1, actor="alice")
    await learning.train(rt.db, [], actor="worker", seed=2)
    rt.risk.invalidate()
    for n in range(6):
        await rt.risk.decide(RiskContext("shop.order", ip=f"203.0.113.{n}", submit_ms=300 + n * 5000))
    await rt.risk.log.flush()


async def test_an_operator_sees_each_model_and_the_score_distribution_in_either_language(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_models(rt)
    await given_user(rt, "olga", "operator")
    console = await console_sign_in(client, "olga")
    page = await console.get("/admin/risk/models")
    assert page.status_code == 200
    assert 'data-version="2" data-status="shadow"' in page.text and 'data-version="1" data-status="active"' in page.text
    assert "影子运行" in page.text and "生效中" in page.text
    assert 'id="scores-active"' in page.text and 'id="scores-shadow"' in page.text
    assert "生效模型：最近 6 个决策" in page.text
    client.cookies.set("lang", "en")
    english = await console.get("/admin/risk/models")
    assert "Shadow model: the last 6 decisions" in english.text and "Precision" in english.text


async def test_without_models_the_page_says_how_to_train_one(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "olga", "operator")
    page = await (await console_sign_in(client, "olga")).get("/admin/risk/models")
    assert 'id="no-models"' in page.text and 'id="no-scores"' in page.text


async def test_finance_may_not_open_it(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_user(rt, "fiona", "finance")
    page = await (await console_sign_in(client, "fiona")).get("/admin/risk/models")
    assert page.status_code == 403
