"""HTTP layer: storefront pages, the shop's JSON API, the admin API and payment endpoints."""
