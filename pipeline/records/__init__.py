"""Every record on disk: the archive row and its schema, storage paths, the Parquet writer and its
bounds, shard stats, decode and audit markers, manifests. Resume trusts exactly these."""
