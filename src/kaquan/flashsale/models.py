"""Flash-sale tables: events and purchases."""
