"""The console's risk models page: every model's metrics on its later period and how the active and shadow
models scored recent decisions, in Chinese and English; roles without risk.read are refused."""

import httpx
from tests.support.console import console_sign_in
from tests.support.identity import given_user
from tests.support.risk_history import given_two_models

from kaquan.runtime import Runtime


async def test_an_operator_sees_each_model_and_the_score_distribution_in_either_language(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    await given_two_models(rt)
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
