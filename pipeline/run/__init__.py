"""A job's run: flags, the Ray session and its actors, the shard pool, the lease, progress, the plan."""
