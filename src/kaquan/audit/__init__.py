"""Who changed what: one entry per admin state change, written in the change's transaction."""
