"""What the shop's home and product pages show, gathered from the catalog, stock and orders' public functions."""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import images as catalog_images
from kaquan.catalog import service as catalog
from kaquan.inventory import available_by_sku
from kaquan.orders import service as orders
from kaquan.payments import service as payments

BEST_SELLERS = 4


def stock_level(available: int, low: int) -> str:
    """What a buyer is told about stock: `in`, `low` or `out`; never the count, which helps only scalpers."""
    if available <= 0:
        return "out"
    return "low" if available <= low else "in"


@dataclass(frozen=True)
class Offer:
    """One SKU as the shop offers it."""

    sku: catalog.Sku
    stock: str


@dataclass
class Listing:
    """A product with its SKUs on sale, their stock levels and its pictures."""

    product: catalog.Product
    offers: list[Offer] = field(default_factory=list)
    images: list[catalog_images.ProductImage] = field(default_factory=list)
    sold: int = 0

    @property
    def stock(self) -> str:
        levels = {offer.stock for offer in self.offers}
        return next((level for level in ("in", "low") if level in levels), "out")

    @property
    def cheapest(self) -> catalog.Sku | None:
        return min((offer.sku for offer in self.offers), key=lambda sku: sku.price_minor, default=None)

    def matches(self, query: str) -> bool:
        words = query.casefold().split()
        haystack = " ".join(
            [self.product.name, self.product.category]
            + [o.sku.name for o in self.offers]
            + [o.sku.code for o in self.offers]
        ).casefold()
        return all(word in haystack for word in words)


async def listings(session: AsyncSession, *, low_stock: int) -> list[Listing]:
    """Every product on sale that has a SKU on sale, in the shop's order."""
    skus = await catalog.list_skus(session, active_only=True)
    available = await available_by_sku(session)
    by_product: dict[int, Listing] = {}
    for product in await catalog.shop_products(session):
        by_product[product.id] = Listing(product)
    for sku in skus:
        if sku.product_id in by_product:
            by_product[sku.product_id].offers.append(Offer(sku, stock_level(available.get(sku.id, 0), low_stock)))
    shown = [listing for listing in by_product.values() if listing.offers]
    pictures = await catalog_images.images_of(session, [listing.product.id for listing in shown])
    sku_product = {sku.id: sku.product_id for sku in skus}
    for sku_id, units in await orders.best_sellers(session, limit=50):
        product_id = sku_product.get(sku_id)
        if product_id in by_product:
            by_product[product_id].sold += units
    for listing in shown:
        listing.images = pictures.get(listing.product.id, [])
    return shown


def best_selling(shown: list[Listing]) -> list[Listing]:
    return sorted((listing for listing in shown if listing.sold), key=lambda listing: -listing.sold)[:BEST_SELLERS]


def categories(shown: list[Listing]) -> list[str]:
    """The categories in the order their first product appears."""
    return list(dict.fromkeys(listing.product.category for listing in shown if listing.product.category))


def payment_gateways() -> list[str]:
    """The gateways this shop takes money through, in order (for their marks on the product page)."""
    return list(dict.fromkeys(option.gateway for option in payments.offered_methods()))


def image_widths(image: catalog_images.ProductImage) -> list[int]:
    return catalog_images.widths_of(image)
