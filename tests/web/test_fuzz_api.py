"""Property-based fuzzing of every operation the published OpenAPI document describes (schemathesis).

Each operation gets generated requests, valid and invalid by its schema, sent in process
to the app: admin routes with an owner's token, open API routes signed by an agent's key.
Every answer must be no server error, and must match what the document says of its
status, content type and schema (every JSON answer names its model: tests/web/test_openapi_document.py).

Deterministic (`derandomize`): the same requests every run, so a failure is reproducible
and never flaky; raise KAQUAN_FUZZ_EXAMPLES to search further by hand.
"""

import asyncio
import os
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from tests.support.agents import given_agent
from tests.support.builders import given_sku_with_codes

from kaquan.client.wire import Credentials
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

# One app for every operation (FastAPI prepares its routes on an app's first requests); each test gives it its runtime.
APP = create_app()
SCHEMA = schemathesis.openapi.from_dict(APP.openapi())
OPERATIONS = {found.ok().label: found.ok() for found in SCHEMA.get_all_operations() if isinstance(found, Ok)}
EXAMPLES = int(os.environ.get("KAQUAN_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
BASE_URL = "http://shop.test"
Operation = APIOperation[Any, Any, Any, Any]


def test_every_route_is_fuzzed() -> None:
    paths = {label.partition(" ")[2] for label in OPERATIONS}
    assert {"/api/orders", "/api/flash/{event_id}", "/open/v1/orders", "/admin/api/skus"} <= paths
    assert len(OPERATIONS) > 100


@pytest.mark.parametrize("label", sorted(OPERATIONS))
async def test_no_server_errors_and_answers_match_the_schema(
    label: str, rt: Runtime, admin_headers: dict[str, str]
) -> None:
    operation = OPERATIONS[label]
    APP.state.runtime = rt
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url=BASE_URL)
    await given_sku_with_codes(rt, 3)  # SKU 1 exists: a generated id or code may find it
    signer = None
    if operation.path.startswith("/open/"):
        agent = await given_agent(rt)
        signer = Credentials(agent.key_id, agent.secret)
    loop = asyncio.get_running_loop()

    def send(case: Case[Operation]) -> httpx.Response:
        prepared = requests.Request(**case.as_transport_kwargs(base_url=BASE_URL, headers=admin_headers)).prepare()
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        assert body is None or isinstance(body, bytes)
        headers = {name: str(value) for name, value in prepared.headers.items()}
        request = client.build_request(
            prepared.method or "GET", prepared.url or BASE_URL, headers=headers, content=body
        )
        if signer is not None:
            signer.sign(request)
        return asyncio.run_coroutine_threadsafe(client.send(request), loop).result()

    cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case[Operation]) -> None:
        case.validate_response(send(case), checks=CHECKS)

    # Hypothesis drives the cases from a thread; the requests run on this test's loop, next to the database.
    async with client:
        await asyncio.to_thread(fuzz)
