"""Ledger tables: accounts, transfers, postings."""
