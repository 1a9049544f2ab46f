"""Cross-cutting plumbing: configuration, database, money, errors, crypto, outbox."""
