"""The one central inventory: code batches, segments, warehouses, claims and stock."""
