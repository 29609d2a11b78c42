"""The batch pipeline, by role (ARCHITECTURE.md; each sub-package's docstring lists its modules' ideas):

- ``io``       where bytes live and how work fails: ``storage`` (local, s3://, atomic commits, retries),
               ``shards`` (WebDataset read and written), ``faults`` (input errors vs infrastructure faults),
               ``batches`` (batched calls, out-of-memory halves them), ``child`` (child processes that die
               with their worker). The bottom layer: training and evaluation read through it too.
- ``records``  what is on disk: ``row`` (the typed archive row and its Arrow schema), ``paths`` (storage
               paths and their restore rules), ``archive`` (the Parquet writer, its bounds, complete shards),
               ``files`` (stats, markers, audit rows, manifests), ``markers`` (completion markers verified)
- ``encode``   ``keeping`` (how each image is stored and why), ``encoding`` (one shard -> Parquet + stats)
- ``decode``   ``archive_rows`` (rows read without trusting the file), ``sandbox`` (decoding in a child that
               may die), ``restore`` (a row back into its sample), ``decoding`` (one archive file -> tar or
               PNGs), ``outputs``, ``names`` (safe file names), ``audit`` and ``metrics``
- ``run``      ``runner`` (what the jobs share), ``actors``, ``pool``, ``lease``, ``progress``, ``plan``
- ``inspection`` an archive looked at in place (docs/inspecting.md): ``listing`` (its files), ``columns``
               (small columns read in a child), ``info`` (``diffarc-info``), ``verify`` (``diffarc-verify``)

``encode`` and ``decode`` do not import each other. The pipeline uses the codec only through the
``model`` package's public interface.
"""
