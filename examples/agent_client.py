"""Buy one code through kaquan's open API, as an agent's system would.

Start a shop and give yourself an agent with a key (the secret is shown once):

    make run                                  # the demo shop on http://127.0.0.1:8000
    kaquan channel agent add acme --name "Acme Games" --currency CNY
    kaquan channel agent key acme             # prints the key id and the secret
    kaquan channel price api <SKU> 900        # put a SKU on the agents' price list
    kaquan channel agent topup acme 100000 --reference first-deposit

The agent needs a SKU on its price list and money on its balance (the admin API:
`POST /admin/api/channels/api/prices`, `POST /admin/api/agents/{agent_id}/topups`).
Then:

    export KAQUAN_URL=http://127.0.0.1:8000 KAQUAN_KEY_ID=kq_ak_… KAQUAN_SECRET=kq_sk_…
    .venv/bin/python examples/agent_client.py

It lists the products, places one order with a fresh out_order_no, prints the
codes masked but for their last four characters, and prints the balance.
docs/open-api.md explains the protocol.
"""

import os
import secrets
import sys
from datetime import UTC, datetime

from kaquan.client import AgentClient, ApiError


def masked(text: str) -> str:
    return "*" * max(len(text) - 4, 0) + text[-4:]


def main() -> int:
    try:
        url, key_id, secret = (os.environ[name] for name in ("KAQUAN_URL", "KAQUAN_KEY_ID", "KAQUAN_SECRET"))
    except KeyError as missing:
        print(f"set {missing.args[0]} (see the docstring of {__file__})", file=sys.stderr)
        return 2
    with AgentClient(url, key_id, secret) as kq:
        try:
            products = kq.products()
            for product in products:
                stock = f"{product.available} available" if product.in_stock else "out of stock"
                print(f"{product.sku:<20} {product.price_minor:>10} {product.currency}  {stock}  {product.name}")
            buyable = next((product for product in products if product.in_stock), None)
            if buyable is None:
                print("nothing on the price list is in stock", file=sys.stderr)
                return 1
            out_order_no = f"example-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
            order = kq.place_order(out_order_no, buyable.sku, 1)
            print(f"order {order.order_no} ({order.out_order_no}): {order.status}, {order.quantity} × {order.sku}")
            for code in order.codes:
                card = f"card {masked(code.card_no)}  " if code.card_no else ""
                print(f"  {card}secret {masked(code.secret)}  expires {code.expires_on or '-'}")
            balance = kq.balance()
            print(
                f"balance {balance.balance_minor} {balance.currency} (minor units), "
                f"available with credit {balance.available_minor}"
            )
        except ApiError as error:
            print(f"kaquan refused: {error.status} {error.code}: {error.message}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
