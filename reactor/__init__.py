"""The reactor: consumes commands, writes projections to KV, publishes notices."""
