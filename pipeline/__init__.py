"""The batch pipeline, in data-flow order:

- ``storage``   local paths and fsspec URLs (s3://), atomic commits, retries with backoff
- ``shards``    find WebDataset shards, stream their samples (tolerating truncation), write tars
- ``encoding``  one shard -> prefetched image decoding -> batched ``codec.encode`` -> Parquet + stats
- ``archive``   the Parquet schema and writer, stats JSON (completion marker), manifest helpers
- ``decoding``  one archive file -> batched ``codec.decode`` -> tar or PNGs, or audit metrics
- ``actors``    Ray actors holding one codec replica each, and the ActorPool that feeds them
- ``progress``  the live progress line and the final summary
- ``runner``    what jobs/compress.py and jobs/decompress.py share: flags, Ray session, worker pool, manifest

The pipeline uses the codec only through the ``model`` package's public interface.
"""
