"""The one central inventory: code batches, segments, warehouses, claims and stock.

Tables (`models`): warehouses, batches, codes, reveals, segments and their ranges, refill rules,
stock transfers. What other modules use:

- `intake/`: code files read and imported as sealed batches, serial ranges added as segments;
- `claims/`: claiming stock for one order (`allocation`) or for a batch of orders (`handouts`);
- `lifecycle`: the one place a code's or range's status changes; `refunds` voids a refunded order's codes;
- `delivery`: opening the codes sold to an order; `vault`: sealing and opening secrets;
- `custody`: reveals and quarantine; `leaks`: tracing leaked codes back to their batch;
- `warehouses`: warehouses and transfers; `refills`: refill rules and the rebalance;
- `stock`: stock derived from the rows; `errors`; `tasks`: the low-stock outbox handler.
"""
