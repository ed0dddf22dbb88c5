"""Read models built from the event log: each projection owns its ClickHouse tables."""
