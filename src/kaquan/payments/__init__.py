"""Payment gateways, their signed callbacks, and refunds."""
