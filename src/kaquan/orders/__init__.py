"""Orders: idempotent creation, server-side pricing, one lifecycle, delivery and lookup."""
