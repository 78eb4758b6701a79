"""Pure values and decisions: events, keys, periods, aggregation, lateness. No I/O, no settings."""
