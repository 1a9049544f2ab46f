"""The `kaquan` command line: serve, worker, migrate, demo, catalog and stock, bench."""
