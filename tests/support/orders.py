"""Orders in tests: one placed through the service, as the shop places it, unpaid."""

import secrets

from tests.support.builders import TEST_CLIENT, GivenSku

from kaquan.orders import service as orders
from kaquan.runtime import Runtime


async def place(
    rt: Runtime,
    sku: GivenSku,
    quantity: int = 1,
    *,
    key: str | None = None,
    channel: str = "shop",
    contact: str = "",
    client: str = TEST_CLIENT,
) -> orders.Placed:
    async with rt.db.transaction() as session:
        return await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(
                sku=sku.id,
                quantity=quantity,
                idempotency_key=key or secrets.token_hex(8),
                client_token=client,
                channel=channel,
                contact=contact,
            ),
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )
