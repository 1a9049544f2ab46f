"""The admin API for the shop's product pages: page fields and pictures, behind catalog permissions."""

import httpx
from tests.support.builders import given_sku
from tests.support.http import BROWSER, the_error
from tests.support.identity import HeadersFor, row_counts
from tests.support.images import exif_of, photo

from kaquan.runtime import Runtime


async def test_an_operator_sets_what_the_product_page_shows(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    operator = await headers_for("operator")
    sku = await given_sku(rt)
    body = {"category": "影音会员", "usage": "打开 App 输入卡密", "validity": "一年", "featured": True, "sort_order": 3}

    answer = await client.patch(f"/admin/api/products/{sku.product_id}", json=body, headers=operator)
    page = await client.get(f"/products/{sku.product_id}", headers=BROWSER)

    assert answer.status_code == 200, answer.text
    assert {key: answer.json()[key] for key in body} == body
    assert "打开 App 输入卡密" in page.text and "影音会员" in page.text


async def test_updating_an_unknown_product_or_with_bad_fields_is_refused(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku(rt)

    the_error(
        await client.patch("/admin/api/products/999999", json={"featured": True}, headers=admin_headers),
        404,
        "product_not_found",
    )
    the_error(
        await client.patch(f"/admin/api/products/{sku.product_id}", json={"colour": "red"}, headers=admin_headers),
        422,
        "validation_error",
    )
    the_error(
        await client.patch(f"/admin/api/products/{sku.product_id}", json={"name": ""}, headers=admin_headers),
        422,
        "validation_error",
    )


async def test_an_uploaded_picture_is_served_without_its_exif(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku(rt)

    answer = await client.post(
        f"/admin/api/products/{sku.product_id}/images",
        files={"file": ("phone.jpg", photo(1600, 1200), "image/jpeg")},
        headers=admin_headers,
    )
    image = answer.json()
    listed = await client.get(f"/admin/api/products/{sku.product_id}/images", headers=admin_headers)
    served = await client.get(f"/images/{image['id']}/640.jpg")

    assert answer.status_code == 201, answer.text
    assert (image["width"], image["height"], image["position"]) == (1600, 1200, 1)
    assert listed.json() == [image]
    assert served.status_code == 200 and exif_of(served.content) == {}


async def test_what_is_not_a_picture_or_too_large_is_refused_with_a_clear_code_and_stores_nothing(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sku = await given_sku(rt)
    url = f"/admin/api/products/{sku.product_id}/images"
    before = await row_counts(rt)

    text = await client.post(url, files={"file": ("codes.txt", b"not a picture", "text/plain")}, headers=admin_headers)
    svg = await client.post(
        url,
        files={"file": ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")},
        headers=admin_headers,
    )
    huge = await client.post(
        url, files={"file": ("big.jpg", b"\xff\xd8" + b"\x00" * (9 * 2**20), "image/jpeg")}, headers=admin_headers
    )

    the_error(text, 415, "image_not_accepted")
    the_error(svg, 415, "image_not_accepted")
    the_error(huge, 413, "image_too_large")
    assert await row_counts(rt) == before


async def test_pictures_need_the_catalog_write_permission(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    support = await headers_for("support")
    sku = await given_sku(rt)

    upload = await client.post(
        f"/admin/api/products/{sku.product_id}/images",
        files={"file": ("p.jpg", photo(), "image/jpeg")},
        headers=support,
    )
    anonymous = await client.post(
        f"/admin/api/products/{sku.product_id}/images", files={"file": ("p.jpg", photo(), "image/jpeg")}
    )
    patch = await client.patch(f"/admin/api/products/{sku.product_id}", json={"featured": True}, headers=support)

    the_error(upload, 403, "forbidden")
    the_error(anonymous, 401, "unauthorized")
    the_error(patch, 403, "forbidden")


async def test_a_removed_picture_is_gone(rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    sku = await given_sku(rt)
    added = await client.post(
        f"/admin/api/products/{sku.product_id}/images",
        files={"file": ("p.png", photo(kind="PNG", exif=False), "image/png")},
        headers=admin_headers,
    )
    image_id = added.json()["id"]

    removed = await client.delete(f"/admin/api/images/{image_id}", headers=admin_headers)
    again = await client.delete(f"/admin/api/images/{image_id}", headers=admin_headers)

    assert removed.status_code == 204
    the_error(again, 404, "image_not_found")
    assert (await client.get(f"/images/{image_id}/320.jpg")).status_code == 404
