"""Benchmarks: `harness` (a server process, an HTTP connection, generated codes) and one module per benchmark.

Each benchmark takes a started runtime and its options, says what it is doing
through a `Progress` callback, and returns what it measured; the `kaquan bench`
commands (cli/bench.py) print it. Nothing here prints, parses options or exits.
The process-level tests use the same harness.
"""
