"""`python -m kaquan` is the `kaquan` command (for a tree that is not installed, e.g. with PYTHONPATH=src)."""

from kaquan.cli.app import main

main()
