"""The admin JSON API, through HTTP: catalog, stock imports, segments, stock levels, order facts.

Every endpoint wants the admin bearer token; every refusal comes in the one
error shape and changes nothing; no response ever carries a code secret.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import delete, select, update
from tests.support.builders import GivenSku, buy, given_segment_sku, place_order, random_codes
from tests.support.http import the_error
from tests.support.identity import row_counts

from kaquan.inventory.models import Code, Warehouse
from kaquan.runtime import Runtime
from kaquan.web import admin_api
from kaquan.web.app import create_app


def token_of(headers: dict[str, str]) -> str:
    """The owner's API token from the `admin_headers` fixture."""
    return headers["Authorization"].removeprefix("Bearer ")


async def stock_levels(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/admin/api/stock", headers=headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


@dataclass
class State:
    """Row counts and stock levels, taken before a refused request and compared after it."""

    counts: dict[str, int]
    stock: list[dict[str, Any]]


async def state(rt: Runtime, client: httpx.AsyncClient, headers: dict[str, str]) -> State:
    return State(await row_counts(rt), await stock_levels(client, headers))


async def create_product(client: httpx.AsyncClient, headers: dict[str, str], name: str = "Video membership") -> int:
    response = await client.post("/admin/api/products", json={"name": name, "kind": "membership"}, headers=headers)
    assert response.status_code == 201, response.text
    product_id: int = response.json()["id"]
    return product_id


def sku_body(product_id: int, code: str = "VIDEO-1M", **overrides: Any) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "code": code,
        "name": "Monthly",
        "face_value_minor": 2500,
        "price_minor": 1990,
        **overrides,
    }


async def create_sku(
    client: httpx.AsyncClient, headers: dict[str, str], code: str = "VIDEO-1M", **overrides: Any
) -> dict[str, Any]:
    product_id = await create_product(client, headers, name=f"Product {code}")
    response = await client.post("/admin/api/skus", json=sku_body(product_id, code, **overrides), headers=headers)
    assert response.status_code == 201, response.text
    sku: dict[str, Any] = response.json()
    return sku


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sku: str,
    content: bytes,
    *,
    filename: str = "codes.txt",
    **form: str,
) -> httpx.Response:
    return await client.post(
        f"/admin/api/skus/{sku}/batches",
        files={"file": (filename, content, "text/plain")},
        data=form,
        headers=headers,
    )


def file_of(*lines: str, encoding: str = "utf-8") -> bytes:
    return "\n".join(lines).encode(encoding)


# --- the bearer token ---------------------------------------------------------------------------

ADMIN_ENDPOINTS = {
    ("GET", "/admin/api/products"),
    ("POST", "/admin/api/products"),
    ("GET", "/admin/api/skus"),
    ("POST", "/admin/api/skus"),
    ("POST", "/admin/api/skus/{sku}/batches"),
    ("POST", "/admin/api/skus/{sku}/segments"),
    ("GET", "/admin/api/stock"),
    ("GET", "/admin/api/orders/{number}"),
}

# Each built from the owner's real token, so a near miss is tried, not just a random string.
WRONG_CREDENTIALS: dict[str, Callable[[str], dict[str, str]]] = {
    "missing": lambda token: {},
    "wrong-token": lambda token: {"Authorization": "Bearer not-the-admin-token"},
    "token-with-suffix": lambda token: {"Authorization": f"Bearer {token}x"},
    "token-prefix": lambda token: {"Authorization": f"Bearer {token[:-1]}"},
    "other-case": lambda token: {"Authorization": f"Bearer {token.upper()}"},
    "empty-bearer": lambda token: {"Authorization": "Bearer "},
    "no-scheme": lambda token: {"Authorization": token},
    "basic-scheme": lambda token: {"Authorization": "Basic " + base64.b64encode(f"admin:{token}".encode()).decode()},
    "token-scheme": lambda token: {"Authorization": f"Token {token}"},
    "other-header": lambda token: {"X-Admin-Token": token},
}


def test_every_admin_endpoint_is_listed_here_so_none_escapes_the_token_check(rt: Runtime) -> None:
    # Identity, custody and redemption routes are covered by tests/web/test_route_permissions.py.
    own = {route.path for route in admin_api.router.routes if isinstance(route, APIRoute)}
    paths = create_app(rt=rt).openapi()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() if path in own for method in operations}
    assert routes == ADMIN_ENDPOINTS


async def valid_requests(
    rt: Runtime, client: httpx.AsyncClient, headers: dict[str, str]
) -> dict[tuple[str, str], httpx.Request]:
    """One request per admin endpoint, each of which succeeds when it carries the token."""
    code_sku = await create_sku(client, headers, "CODES-1")
    await create_sku(client, headers, "SEGMENT-1", stock_kind="segment")
    bought = await buy(rt, await given_segment_sku(rt, start=1, end=5))
    assert bought.ok
    upload_file = {"file": ("codes.txt", file_of(*random_codes(3)), "text/plain")}
    segment = {"prefix": "VR", "width": 8, "start": 1, "end": 9}
    build = client.build_request
    requests = {
        ("GET", "/admin/api/products"): build("GET", "/admin/api/products"),
        ("POST", "/admin/api/products"): build("POST", "/admin/api/products", json={"name": "New", "kind": "voucher"}),
        ("GET", "/admin/api/skus"): build("GET", "/admin/api/skus"),
        ("POST", "/admin/api/skus"): build("POST", "/admin/api/skus", json=sku_body(code_sku["product_id"], "NEW-SKU")),
        ("POST", "/admin/api/skus/{sku}/batches"): build("POST", "/admin/api/skus/CODES-1/batches", files=upload_file),
        ("POST", "/admin/api/skus/{sku}/segments"): build("POST", "/admin/api/skus/SEGMENT-1/segments", json=segment),
        ("GET", "/admin/api/stock"): build("GET", "/admin/api/stock"),
        ("GET", "/admin/api/orders/{number}"): build("GET", f"/admin/api/orders/{bought.number}"),
    }
    assert set(requests) == ADMIN_ENDPOINTS
    return requests


@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS.values()), ids=list(WRONG_CREDENTIALS))
async def test_every_admin_endpoint_refuses_a_missing_or_wrong_token_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    credentials: Callable[[str], dict[str, str]],
) -> None:
    requests = await valid_requests(rt, client, admin_headers)
    before = await state(rt, client, admin_headers)

    for request in requests.values():
        assert "Authorization" not in request.headers
        request.headers.update(credentials(token_of(admin_headers)))
        response = await client.send(request)
        details = the_error(response, 401, "unauthorized")
        assert details == {}, (request.method, request.url)

    assert await state(rt, client, admin_headers) == before


async def test_the_right_token_opens_every_admin_endpoint_and_the_scheme_is_case_insensitive(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    requests = await valid_requests(rt, client, admin_headers)

    for request, scheme in zip(requests.values(), ["Bearer", "bearer", "BEARER"] * 3, strict=False):
        request.headers["Authorization"] = f"{scheme} {token_of(admin_headers)}"
        response = await client.send(request)
        assert response.status_code in (200, 201), (request.method, request.url, response.text)


async def test_a_refusal_for_a_browser_is_still_the_json_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/api/stock", headers={"Accept": "text/html"})

    the_error(response, 401, "unauthorized")


async def test_a_token_in_the_query_string_is_not_a_credential(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    token = token_of(admin_headers)
    response = await client.get("/admin/api/stock", params={"token": token, "access_token": token})

    the_error(response, 401, "unauthorized")


# --- products and SKUs --------------------------------------------------------------------------


async def test_a_product_is_created_and_listed(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        "/admin/api/products",
        json={"name": "游戏点卡 Game points", "kind": "game_points", "description": "100 点"},
        headers=admin_headers,
    )

    assert response.status_code == 201, response.text
    product = response.json()
    assert {k: product[k] for k in ("name", "kind", "description", "active")} == {
        "name": "游戏点卡 Game points",
        "kind": "game_points",
        "description": "100 点",
        "active": True,
    }
    listed = (await client.get("/admin/api/products", headers=admin_headers)).json()
    assert [p["id"] for p in listed] == [product["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "kind": "spaceship"},
        {"name": "", "kind": "voucher"},
        {"name": "X" * 201, "kind": "voucher"},
        {"kind": "voucher"},
        {"name": "X", "kind": "voucher", "price_minor": 100},
        [],
    ],
    ids=["unknown-kind", "empty-name", "name-too-long", "no-name", "unknown-field", "not-an-object"],
)
async def test_a_bad_product_is_refused_with_422_and_nothing_is_created(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], body: Any
) -> None:
    before = await state(rt, client, admin_headers)

    response = await client.post("/admin/api/products", json=body, headers=admin_headers)

    details = the_error(response, 422, "validation_error")
    assert details["problems"]
    assert await state(rt, client, admin_headers) == before


async def test_invalid_json_is_refused_with_422(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        "/admin/api/products",
        content=b'{"name": "X", "kind": ',
        headers={**admin_headers, "Content-Type": "application/json"},
    )

    the_error(response, 422, "validation_error")


async def test_a_sku_is_created_with_its_rule_and_listed(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    rule = {"min_length": 16, "max_length": 16, "alphabet": "upper_alnum"}

    sku = await create_sku(
        client, admin_headers, "VIDEO-1M", currency="USD", code_rule=rule, encrypt_card_no=True, max_per_order=5
    )

    assert {k: sku[k] for k in ("code", "currency", "price_minor", "face_value_minor", "stock_kind")} == {
        "code": "VIDEO-1M",
        "currency": "USD",
        "price_minor": 1990,
        "face_value_minor": 2500,
        "stock_kind": "codes",
    }
    assert (sku["encrypt_card_no"], sku["max_per_order"], sku["active"]) == (True, 5, True)
    assert {k: v for k, v in sku["code_rule"].items() if v not in (None, False)} == rule
    listed = (await client.get("/admin/api/skus", headers=admin_headers)).json()
    assert [s["code"] for s in listed] == ["VIDEO-1M"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "XXX"}, "currency"),
        ({"currency": "cny"}, "currency"),
        ({"currency": "YUAN"}, "currency"),
        ({"price_minor": -1}, "price_minor"),
        ({"face_value_minor": -100}, "face_value_minor"),
        ({"cost_minor": -1}, "cost_minor"),
        ({"price_minor": 19.9}, "price_minor"),
        ({"price_minor": 10**13}, "price_minor"),
        ({"max_per_order": 0}, "max_per_order"),
        ({"stock_kind": "boxes"}, "stock_kind"),
        ({"code": "has space"}, "code"),
        ({"code": "-leading-dash"}, "code"),
        ({"code": ""}, "code"),
        ({"code_rule": {"regex": "(unclosed"}}, "code_rule"),
        ({"code_rule": {"card_no_regex": "[a-"}}, "code_rule"),
        ({"code_rule": {"min_length": 10, "max_length": 5}}, "code_rule"),
        ({"code_rule": {"min_length": 0}}, "code_rule"),
        ({"code_rule": {"unknown": 1}}, "code_rule"),
    ],
    ids=[
        "unknown-currency",
        "lowercase-currency",
        "currency-too-long",
        "negative-price",
        "negative-face-value",
        "negative-cost",
        "fractional-price",
        "huge-price",
        "zero-max-per-order",
        "unknown-stock-kind",
        "space-in-code",
        "code-starts-with-dash",
        "empty-code",
        "invalid-regex",
        "invalid-card-regex",
        "lengths-reversed",
        "zero-min-length",
        "unknown-rule-field",
    ],
)
async def test_a_bad_sku_is_refused_with_422_naming_the_field_and_nothing_is_created(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], overrides: dict[str, Any], field: str
) -> None:
    product_id = await create_product(client, admin_headers)
    before = await state(rt, client, admin_headers)

    response = await client.post("/admin/api/skus", json=sku_body(product_id, **overrides), headers=admin_headers)

    details = the_error(response, 422, "validation_error")
    assert any(field in problem["field"] or field in problem["message"] for problem in details["problems"]), details
    assert await state(rt, client, admin_headers) == before


async def test_a_sku_code_already_taken_is_a_409_and_nothing_is_created(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    existing = await create_sku(client, admin_headers, "VIDEO-1M")
    before = await state(rt, client, admin_headers)

    response = await client.post(
        "/admin/api/skus", json=sku_body(existing["product_id"], "VIDEO-1M", price_minor=1), headers=admin_headers
    )

    details = the_error(response, 409, "sku_code_taken")
    assert details == {"sku_code": "VIDEO-1M"}
    assert await state(rt, client, admin_headers) == before
    listed = (await client.get("/admin/api/skus", headers=admin_headers)).json()
    assert [(s["code"], s["price_minor"]) for s in listed] == [("VIDEO-1M", 1990)]


async def test_a_sku_for_an_unknown_product_is_a_404_and_nothing_is_created(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = await state(rt, client, admin_headers)

    response = await client.post("/admin/api/skus", json=sku_body(4242), headers=admin_headers)

    assert the_error(response, 404, "product_not_found") == {"product_id": 4242}
    assert await state(rt, client, admin_headers) == before


async def test_a_sku_code_of_digits_only_is_refused_because_it_would_read_as_a_sku_id(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """URLs take a SKU code or id: a SKU coded "1" would have its uploads land in SKU id 1."""
    first = await create_sku(client, admin_headers, "GAME-100")
    before = await state(rt, client, admin_headers)

    response = await client.post(
        "/admin/api/skus", json=sku_body(first["product_id"], str(first["id"])), headers=admin_headers
    )

    the_error(response, 422, "validation_error")
    assert await state(rt, client, admin_headers) == before


# --- uploading a batch --------------------------------------------------------------------------


async def test_an_uploaded_file_becomes_one_batch_of_available_codes(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await create_sku(client, admin_headers, "VIDEO-1M")
    codes = random_codes(25)

    response = await upload(client, admin_headers, "VIDEO-1M", file_of(*codes), supplier="Acme", unit_cost_minor="800")

    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["batch_id"], int)
    assert {k: body[k] for k in ("imported", "skipped", "encoding", "layout")} == {
        "imported": 25,
        "skipped": [],
        "encoding": "utf-8",
        "layout": "single",
    }
    assert not [code for code in codes if code in response.text]
    assert await stock_levels(client, admin_headers) == [
        stock_row(sku["id"], imported=25, available=25),
    ]


async def test_a_sku_can_be_named_by_id_in_the_url(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await create_sku(client, admin_headers, "VIDEO-1M")

    response = await upload(client, admin_headers, str(sku["id"]), file_of(*random_codes(2)))

    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 2


async def test_an_uploaded_gbk_csv_with_a_chinese_header_is_read(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create_sku(client, admin_headers, "GAME-100", encrypt_card_no=True)
    rows = [f"G100{n:04d},{secret},2027-12-31" for n, secret in enumerate(random_codes(5))]

    response = await upload(client, admin_headers, "GAME-100", file_of("卡号,卡密,有效期", *rows, encoding="gbk"))

    assert response.status_code == 201, response.text
    assert {k: response.json()[k] for k in ("imported", "encoding", "layout")} == {
        "imported": 5,
        "encoding": "gb18030",
        "layout": "csv",
    }


async def test_a_file_with_bad_lines_is_refused_by_line_and_nothing_is_imported(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M", code_rule={"min_length": 16, "max_length": 16})
    good = random_codes(4)
    lines = [f"1001,{good[0]}", "1002", f"1003,{good[1]}", f"1004,{good[2]},extra", "1005,short", f"1001,{good[0]}"]
    before = await state(rt, client, admin_headers)

    response = await upload(client, admin_headers, "VIDEO-1M", file_of(*lines))

    details = the_error(response, 400, "import_rejected")
    assert [(p["line_no"], p["code"]) for p in details["problems"]] == [
        (2, "malformed_line"),
        (4, "too_many_fields"),
        (5, "format_rule"),
        (6, "duplicate_in_file"),
    ]
    assert details["problem_count"] == 4
    assert all(p["reason"] for p in details["problems"])
    assert not [code for code in good if code in response.text]
    assert await state(rt, client, admin_headers) == before


async def test_skip_invalid_imports_the_good_lines_and_reports_the_bad(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await create_sku(client, admin_headers, "VIDEO-1M", code_rule={"min_length": 16, "max_length": 16})
    good = random_codes(3)

    response = await upload(
        client, admin_headers, "VIDEO-1M", file_of(good[0], "short", good[1], "x,y", good[2]), skip_invalid="true"
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["imported"] == 3
    assert [(p["line_no"], p["code"]) for p in body["skipped"]] == [(2, "format_rule"), (4, "malformed_line")]
    assert await stock_levels(client, admin_headers) == [stock_row(sku["id"], imported=3, available=3)]


async def test_an_upload_of_many_bad_lines_lists_the_first_200_and_counts_them_all(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M", code_rule={"min_length": 16, "max_length": 16})
    good = random_codes(2)
    data = file_of(*good, *(f"short{n}" for n in range(5_000)))
    before = await state(rt, client, admin_headers)

    details = the_error(await upload(client, admin_headers, "VIDEO-1M", data), 400, "import_rejected")

    assert details["problem_count"] == 5_000
    assert [p["line_no"] for p in details["problems"]] == list(range(3, 203))
    assert await state(rt, client, admin_headers) == before

    response = await upload(client, admin_headers, "VIDEO-1M", data, skip_invalid="true")

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["imported"], body["skipped_total"], len(body["skipped"])) == (2, 5_000, 200)


async def test_a_file_already_imported_is_refused_as_duplicate_codes(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M")
    await create_sku(client, admin_headers, "VIDEO-3M")
    data = file_of(*random_codes(3))
    assert (await upload(client, admin_headers, "VIDEO-1M", data)).status_code == 201
    before = await state(rt, client, admin_headers)

    for sku in ("VIDEO-1M", "VIDEO-3M"):
        details = the_error(await upload(client, admin_headers, sku, data), 400, "import_rejected")
        assert [(p["line_no"], p["code"]) for p in details["problems"]] == [
            (1, "duplicate_code"),
            (2, "duplicate_code"),
            (3, "duplicate_code"),
        ]

    assert await state(rt, client, admin_headers) == before


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n  \n",
        "卡号,卡密\n".encode(),
        "ABCD-0001\nABCD-0002\n".encode("utf-16"),
        "ABCD-0001\nABCD-0002\n".encode("utf-16-le"),
        b"\x00\x01\x02\xff\xfe",
    ],
    ids=["empty", "blank-lines", "header-only", "utf-16", "utf-16-no-bom", "binary"],
)
async def test_a_file_without_readable_codes_is_refused_as_a_whole(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str], content: bytes
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M")
    before = await state(rt, client, admin_headers)

    response = await upload(client, admin_headers, "VIDEO-1M", content)

    the_error(response, 400, "import_file_invalid")
    assert await state(rt, client, admin_headers) == before


@pytest.mark.parametrize(
    ("sku", "form", "status", "code"),
    [
        ("NO-SUCH-SKU", {}, 404, "sku_not_found"),
        ("4242", {}, 404, "sku_not_found"),
        ("SEGMENT-1", {}, 400, "wrong_stock_kind"),
        ("VIDEO-1M", {"warehouse": "nowhere"}, 404, "warehouse_not_found"),
        ("VIDEO-1M", {"encoding": "klingon"}, 400, "import_file_invalid"),
        ("VIDEO-1M", {"unit_cost_minor": "-1"}, 422, "validation_error"),
        ("VIDEO-1M", {"unit_cost_minor": "abc"}, 422, "validation_error"),
        ("VIDEO-1M", {"expires_on": "2027-02-30"}, 422, "validation_error"),
        ("VIDEO-1M", {"layout": "xml"}, 422, "validation_error"),
        ("VIDEO-1M", {"skip_invalid": "perhaps"}, 422, "validation_error"),
        ("VIDEO-1M", {"supplier": "S" * 201}, 422, "validation_error"),
    ],
    ids=[
        "unknown-sku",
        "unknown-sku-id",
        "segment-sku",
        "unknown-warehouse",
        "unknown-encoding",
        "negative-cost",
        "cost-not-a-number",
        "impossible-date",
        "unknown-layout",
        "skip-invalid-not-a-bool",
        "supplier-too-long",
    ],
)
async def test_an_upload_with_bad_parameters_is_refused_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sku: str,
    form: dict[str, str],
    status: int,
    code: str,
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M")
    await create_sku(client, admin_headers, "SEGMENT-1", stock_kind="segment")
    codes = random_codes(3)
    before = await state(rt, client, admin_headers)

    response = await upload(client, admin_headers, sku, file_of(*codes), **form)

    the_error(response, status, code)
    assert not [c for c in codes if c in response.text]
    assert await state(rt, client, admin_headers) == before


async def test_an_upload_without_a_file_is_refused(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M")
    before = await state(rt, client, admin_headers)

    response = await client.post("/admin/api/skus/VIDEO-1M/batches", data={"supplier": "x"}, headers=admin_headers)

    details = the_error(response, 422, "validation_error")
    assert [p["field"] for p in details["problems"]] == ["body.file"]
    assert await state(rt, client, admin_headers) == before


# --- segments -----------------------------------------------------------------------------------


async def test_a_segment_is_added_as_one_batch(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    sku = await create_sku(client, admin_headers, "GIFT-50", stock_kind="segment")

    response = await client.post(
        "/admin/api/skus/GIFT-50/segments",
        json={"prefix": "GC", "width": 8, "start": 10_000_001, "end": 10_005_000, "supplier": "Issuer"},
        headers=admin_headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["quantity"] == 5000
    assert await stock_levels(client, admin_headers) == [stock_row(sku["id"], imported=5000, available=5000)]


@pytest.mark.parametrize(
    ("sku", "body", "status", "code"),
    [
        ("GIFT-50", {"prefix": "GC", "width": 8, "start": 150, "end": 250}, 409, "segment_overlap"),
        ("GIFT-50", {"prefix": "GC0", "width": 7, "start": 120, "end": 120}, 409, "segment_overlap"),
        ("GIFT-50", {"prefix": "GC", "width": 8, "start": 10, "end": 9}, 400, "bad_input"),
        ("GIFT-50", {"prefix": "GC", "width": 2, "start": 0, "end": 100}, 400, "bad_input"),
        ("GIFT-50", {"prefix": "G C", "width": 8, "start": 1, "end": 2}, 400, "bad_input"),
        ("GIFT-50", {"prefix": "GC", "width": 0, "start": 1, "end": 2}, 422, "validation_error"),
        ("GIFT-50", {"prefix": "GC", "width": 19, "start": 1, "end": 2}, 422, "validation_error"),
        ("GIFT-50", {"prefix": "GC", "width": 8, "start": -1, "end": 2}, 422, "validation_error"),
        ("GIFT-50", {"prefix": "GC", "width": 8, "start": 1}, 422, "validation_error"),
        (
            "GIFT-50",
            {"prefix": "GC", "width": 8, "start": 300, "end": 399, "warehouse": "nowhere"},
            404,
            "warehouse_not_found",
        ),
        ("VIDEO-1M", {"prefix": "GC", "width": 8, "start": 300, "end": 399}, 400, "wrong_stock_kind"),
        ("NO-SUCH-SKU", {"prefix": "GC", "width": 8, "start": 300, "end": 399}, 404, "sku_not_found"),
    ],
    ids=[
        "overlap",
        "overlap-in-another-form",
        "end-before-start",
        "end-wider-than-width",
        "space-in-prefix",
        "width-0",
        "width-19",
        "negative-start",
        "no-end",
        "unknown-warehouse",
        "code-sku",
        "unknown-sku",
    ],
)
async def test_a_bad_segment_is_refused_and_changes_nothing(
    rt: Runtime,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sku: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await create_sku(client, admin_headers, "GIFT-50", stock_kind="segment")
    await create_sku(client, admin_headers, "VIDEO-1M")
    first = await client.post(
        "/admin/api/skus/GIFT-50/segments",
        json={"prefix": "GC", "width": 8, "start": 100, "end": 199},
        headers=admin_headers,
    )
    assert first.status_code == 201, first.text
    before = await state(rt, client, admin_headers)

    response = await client.post(f"/admin/api/skus/{sku}/segments", json=body, headers=admin_headers)

    the_error(response, status, code)
    assert await state(rt, client, admin_headers) == before


# --- stock levels -------------------------------------------------------------------------------


def stock_row(sku_id: int, warehouse: str = "main", **units: int) -> dict[str, Any]:
    row: dict[str, Any] = {"sku_id": sku_id, "warehouse": warehouse}
    row |= {state: units.get(state, 0) for state in ("imported", "available", "reserved", "sold", "redeemed", "voided")}
    return row | {"adds_up": True}


async def test_stock_shows_every_state_per_sku_and_warehouse_and_adds_up(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    async with rt.db.transaction() as session:
        session.add(Warehouse(code="east", name="East"))
    video = await create_sku(client, admin_headers, "VIDEO-1M")
    game = await create_sku(client, admin_headers, "GAME-100")
    gift = await create_sku(client, admin_headers, "GIFT-50", stock_kind="segment", max_per_order=100)
    assert (await upload(client, admin_headers, "VIDEO-1M", file_of(*random_codes(10)))).status_code == 201
    assert (
        await upload(client, admin_headers, "GAME-100", file_of(*random_codes(4)), warehouse="east")
    ).status_code == 201
    segment = {"prefix": "GC", "width": 8, "start": 1, "end": 100}
    assert (
        await client.post("/admin/api/skus/GIFT-50/segments", json=segment, headers=admin_headers)
    ).status_code == 201

    skus = {s["code"]: s for s in (video, game, gift)}

    def given(code: str) -> GivenSku:
        return GivenSku(skus[code]["id"], code)

    assert (await buy(rt, given("VIDEO-1M"), 3)).ok
    await place_order(rt, given("VIDEO-1M"), 2)
    assert (await buy(rt, given("GIFT-50"), 30)).ok
    await place_order(rt, given("GIFT-50"), 5)
    async with rt.db.transaction() as session:
        voided = (await session.execute(select(Code.id).where(Code.sku_id == game["id"]).limit(1))).scalar_one()
        await session.execute(update(Code).where(Code.id == voided).values(status="voided"))

    rows = await stock_levels(client, admin_headers)

    assert rows == [
        stock_row(video["id"], imported=10, available=5, reserved=2, sold=3),
        stock_row(game["id"], "east", imported=4, available=3, voided=1),
        stock_row(gift["id"], imported=100, available=65, reserved=5, sold=30),
    ]
    only_gift = (await client.get("/admin/api/stock", params={"sku": "GIFT-50"}, headers=admin_headers)).json()
    assert only_gift == [rows[2]]
    by_id = (await client.get("/admin/api/stock", params={"sku": str(game["id"])}, headers=admin_headers)).json()
    assert by_id == [rows[1]]


async def test_stock_that_does_not_add_up_is_flagged(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """adds_up is computed, not asserted: a code row that vanished shows as a discrepancy."""
    sku = await create_sku(client, admin_headers, "VIDEO-1M")
    assert (await upload(client, admin_headers, "VIDEO-1M", file_of(*random_codes(3)))).status_code == 201
    async with rt.db.transaction() as session:
        gone = (await session.execute(select(Code.id).limit(1))).scalar_one()
        await session.execute(delete(Code).where(Code.id == gone))

    rows = await stock_levels(client, admin_headers)

    assert rows == [stock_row(sku["id"], imported=3, available=2) | {"adds_up": False}]


async def test_stock_of_an_unknown_sku_is_a_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.get("/admin/api/stock", params={"sku": "NO-SUCH-SKU"}, headers=admin_headers)

    the_error(response, 404, "sku_not_found")


async def test_stock_is_empty_before_anything_is_imported(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create_sku(client, admin_headers, "VIDEO-1M")

    assert await stock_levels(client, admin_headers) == []


# --- order facts --------------------------------------------------------------------------------


async def test_an_order_is_shown_to_the_admin_without_its_codes(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await create_sku(client, admin_headers, "GAME-100")
    pairs = [(f"G{n:04d}", secret) for n, secret in enumerate(random_codes(5))]
    assert (
        await upload(client, admin_headers, "GAME-100", file_of(*(f"{c},{s}" for c, s in pairs)))
    ).status_code == 201
    bought = await buy(rt, GivenSku(sku["id"], "GAME-100"), 2)
    assert bought.ok and len(bought.codes) == 2

    response = await client.get(f"/admin/api/orders/{bought.number}", headers=admin_headers)

    assert response.status_code == 200, response.text
    order = response.json()
    assert (order["number"], order["status"], order["quantity"], order["sku_id"]) == (
        bought.number,
        "delivered",
        2,
        sku["id"],
    )
    assert (order["codes"], order["serial_ranges"], order["lookup_secret"]) == ([], [], None)
    assert not [secret for secret in bought.codes if secret in response.text]
    assert bought.lookup_secret not in response.text


async def test_a_segment_order_is_shown_to_the_admin_without_its_serials(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_segment_sku(rt, start=10_000_001, end=10_000_100)
    bought = await buy(rt, sku, 3)
    assert bought.ok and len(bought.serials) == 3

    response = await client.get(f"/admin/api/orders/{bought.number}", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.json()["serial_ranges"] == []
    assert not [serial for serial in bought.serials if serial in response.text]


async def test_an_unknown_order_is_a_404(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.get("/admin/api/orders/NO-SUCH-ORDER", headers=admin_headers)

    the_error(response, 404, "order_not_found")
