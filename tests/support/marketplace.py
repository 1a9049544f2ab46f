"""Marketplace stores in tests: a store with its push secret and price list, an order file imported, a balance."""

from tests.support.builders import GivenSku, given_codes, given_sku

from kaquan import ledger
from kaquan.channels import pricing as channels
from kaquan.channels.marketplace import order_files as marketplace_files
from kaquan.channels.marketplace import stores as marketplace
from kaquan.channels.marketplace.stores import Delivered
from kaquan.runtime import Runtime

STORE = "tmall"


async def given_store(rt: Runtime, store: str = STORE, *, fee_rate_bp: int = 500) -> str:
    """A store with its push secret (returned)."""
    async with rt.db.transaction() as session:
        return await marketplace.add_store(
            rt.db, session, rt.keyring, store, name=f"Store {store}", fee_rate_bp=fee_rate_bp, actor="test"
        )


async def given_store_price(rt: Runtime, sku: GivenSku, price_minor: int, store: str = STORE) -> None:
    async with rt.db.transaction() as session:
        await channels.set_price(rt.db, session, marketplace.channel_of(store), sku.code, price_minor, actor="test")


async def given_store_selling(
    rt: Runtime, codes: list[str], *, price_minor: int = 1000, fee_rate_bp: int = 500
) -> GivenSku:
    """The store `tmall` with a SKU on its price list, stocked with `codes`."""
    await given_store(rt, fee_rate_bp=fee_rate_bp)
    sku = await given_sku(rt)
    await given_codes(rt, sku, codes)
    await given_store_price(rt, sku, price_minor)
    return sku


def order_file(*rows: str, header: str = "marketplace_order_id,sku,quantity") -> bytes:
    return "\n".join((header, *rows)).encode()


async def import_file(rt: Runtime, data: bytes, store: str = STORE, *, batch_size: int = 200) -> list[Delivered]:
    async with rt.db.read() as session:
        lines = await marketplace_files.check_order_file(session, store, data, max_per_order=rt.settings.max_per_order)
    return await marketplace_files.import_orders(rt.db, rt.vault, store, lines, batch_size=batch_size)


async def account_balance(rt: Runtime, code: str) -> int:
    async with rt.db.read() as session:
        account = await ledger.account_by_code(session, code)
        return 0 if account is None else (await ledger.balance(session, account.id)).balance_minor
