"""Storefront browsing: the home page (categories, search, featured, best sellers), product pages, images."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kaquan.catalog import images as catalog_images
from kaquan.catalog.errors import ProductNotFound
from kaquan.kit.bounds import Int64
from kaquan.web import storefront
from kaquan.web.deps import RuntimeDep
from kaquan.web.pages import render
from kaquan.web.shop import client_token, remember_client

router = APIRouter()
MAX_QUERY = 100
IMAGE_CACHE = "public, max-age=31536000, immutable"  # an image id's pixels never change; a new upload is a new id


def _with_client(request: Request, page: Response) -> Response:
    token, new = client_token(request)
    if new:
        remember_client(page, request, token)
    return page


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, rt: RuntimeDep, q: str = "", category: str = "") -> Response:
    query = q.strip()[:MAX_QUERY]
    async with rt.db.read() as session:
        shown = await storefront.listings(session, low_stock=rt.settings.shop_low_stock)
    found = [listing for listing in shown if (not category or listing.product.category == category)]
    if query:
        found = [listing for listing in found if listing.matches(query)]
    browsing = not query and not category
    page = render(
        request,
        "index.html",
        {
            "query": query,
            "category": category,
            "categories": storefront.categories(shown),
            "featured": [listing for listing in shown if listing.product.featured] if browsing else [],
            "best": storefront.best_selling(shown) if browsing else [],
            "found": found,
            "browsing": browsing,
            "any_products": bool(shown),
            "payment_available": rt.gateway is not None,
        },
    )
    return _with_client(request, page)


@router.get("/products/{product_id}", response_class=HTMLResponse)
async def product_page(request: Request, rt: RuntimeDep, product_id: Int64) -> Response:
    async with rt.db.read() as session:
        shown = await storefront.listings(session, low_stock=rt.settings.shop_low_stock)
    listing = next((item for item in shown if item.product.id == product_id), None)
    if listing is None:
        raise ProductNotFound(product_id)
    chosen = next((offer for offer in listing.offers if offer.stock != "out"), None)
    page = render(
        request,
        "product.html",
        {
            "listing": listing,
            "product": listing.product,
            "chosen": chosen.sku.code if chosen else None,
            "idempotency_key": str(uuid.uuid4()),
            "shop_max_per_order": rt.settings.shop_max_per_order,
            "payment_available": rt.gateway is not None,
            "gateways": storefront.payment_gateways(),
            "widths": storefront.image_widths,
        },
    )
    return _with_client(request, page)


@router.get("/images/{image_id}/{width}.jpg", include_in_schema=False)
async def image(rt: RuntimeDep, image_id: Int64, width: Int64) -> Response:
    """A product picture at the stored width nearest above `width`; cached by browsers and proxies for a year."""
    async with rt.db.read() as session:
        file = await catalog_images.image_file(session, image_id, width)
    return Response(
        file.data,
        media_type=file.content_type,
        headers={"Cache-Control": IMAGE_CACHE, "X-Content-Type-Options": "nosniff"},
    )
