"""The one central inventory: code batches, segments, warehouses, claims and stock.

Tables (`models`): warehouses, batches, codes, reveals, segments and their ranges, refill rules,
stock transfers. Inside:

- `intake/`: code files read and imported as sealed batches, serial ranges added as segments;
- `claims/`: claiming stock for one order (`allocation`) or for a batch of orders (`handouts`);
- `lifecycle`: the one place a code's or range's status changes; `refunds` voids a refunded order's codes;
- `delivery`: opening the codes sold to an order; `vault`: sealing and opening secrets;
- `custody`: reveals and quarantine; `leaks`: tracing leaked codes back to their batch;
- `warehouses`: warehouses and transfers; `refills`: refill rules and the rebalance;
- `levels`: stock levels derived from the rows; `costing`: what the codes sold to an order cost;
- `errors`; `tasks`: the low-stock outbox handler (registered on import).

The public surface is what this module exports: the services other modules call as namespaces
(`inventory.allocation.reserve(...)`, `inventory.custody.reveal(...)`), the types and reads they
name as flat names. Other modules use only that.
"""

from kaquan.inventory import custody, leaks, refills, warehouses
from kaquan.inventory import tasks as _tasks  # noqa: F401  (registers the outbox handler)
from kaquan.inventory.claims import allocation, handouts
from kaquan.inventory.costing import cost_of_order, cost_of_orders
from kaquan.inventory.delivery import (
    DeliveredCode,
    DeliveredRange,
    Viewer,
    codes_handed_out,
    codes_of_order,
    codes_of_orders,
    ranges_of_order,
)
from kaquan.inventory.errors import ImportRejected, OutOfStock
from kaquan.inventory.intake import importing, segments
from kaquan.inventory.intake.parsing import CodeLine, CodeSource, LineProblem, ParsedFile, parse_code_file
from kaquan.inventory.levels import (
    Stock,
    available_by_sku,
    available_units,
    batches_of_sku,
    per_sku,
    stock,
    units_held,
)
from kaquan.inventory.refunds import locked_code_states, void_sold_codes
from kaquan.inventory.vault import Vault, count_batch_keys, open_vault, rewrap_batch_keys

__all__ = [
    "CodeLine",
    "CodeSource",
    "DeliveredCode",
    "DeliveredRange",
    "ImportRejected",
    "LineProblem",
    "OutOfStock",
    "ParsedFile",
    "Stock",
    "Vault",
    "Viewer",
    "allocation",
    "available_by_sku",
    "available_units",
    "batches_of_sku",
    "codes_handed_out",
    "codes_of_order",
    "codes_of_orders",
    "cost_of_order",
    "cost_of_orders",
    "count_batch_keys",
    "custody",
    "handouts",
    "importing",
    "leaks",
    "locked_code_states",
    "open_vault",
    "parse_code_file",
    "per_sku",
    "ranges_of_order",
    "refills",
    "rewrap_batch_keys",
    "segments",
    "stock",
    "units_held",
    "void_sold_codes",
    "warehouses",
]
