"""Callback tables: endpoints, deliveries, attempts."""
