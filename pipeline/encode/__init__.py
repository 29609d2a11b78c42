"""One shard into archive rows: images loaded, each path decided (``keeping``), batches coded."""
