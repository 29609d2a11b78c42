"""The batch pipeline, in data-flow order:

- ``storage``   local paths and fsspec URLs (s3://), atomic commits, retries with backoff
- ``shards``    find WebDataset shards, stream their samples (tolerating truncation), write tars
- ``keeping``   how each image is stored (codec, lossless JPEG XL, JPEG recompression, original file) and why
- ``encoding``  one shard -> prefetched image decoding -> batched ``codec.encode`` -> Parquet + stats
- ``records``   every record on disk (row schema, stats, markers, audit rows, manifests): typed, versioned
- ``archive``   the Parquet writer, the complete shards of an archive, manifest helpers
- ``archive_rows`` an archive file's rows, read in a child process and held to the writer's bounds
- ``restore``   a row back into its sample: the image under its own name and format, the other members
- ``decoding``  one archive file -> batched ``codec.decode`` -> tar or PNGs (resumable)
- ``audit``     one archive file decoded against its original shard -> PSNR, MS-SSIM, bpp, exact, alpha (resumable)
- ``actors``    Ray actors holding one codec replica each
- ``pool``      the shard pool: one shard per actor, lost, lost-node and stalled workers replaced, shards retried
- ``progress``  the live progress line and the final summary
- ``runner``    what jobs/compress.py and jobs/decompress.py share: flags, Ray session, workers, manifest

Reliability (README: Reliability):

- ``faults``    input errors (rows) vs infrastructure faults (retried, never rows); OOM halves batches
- ``markers``   completion markers that record and verify output bytes/sha256/ETag and input identity
- ``lease``     one job per output prefix (``_lock.json``: exclusive create, refreshed, --force)
- ``names``     keys as safe relative file names
- ``sandbox``   decoding in a child process that may die (crash, hang, memory cap)
- ``child``     such a child (the decoder, the archive reader): started, spoken to, dying with its worker
- ``outputs``   a decoded shard's tar or PNG folder committed in one piece, checked on resume

The pipeline uses the codec only through the ``model`` package's public interface.
"""
