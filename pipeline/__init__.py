"""The batch pipeline, by role (each sub-package's docstring lists its modules' ideas; the import layers
between them and ``model`` are described once, in ARCHITECTURE.md: Layers):

- ``io``       where bytes live and how work fails: ``storage`` (local, s3://, atomic commits, retries),
               ``shards`` (WebDataset read and written), ``faults`` (input errors vs infrastructure faults),
               ``batches`` (batched calls, out-of-memory halves them), ``child`` (child processes that die
               with their worker); training and evaluation read through it too.
- ``imagefiles`` image files apart from any codec: ``pixels`` (input images as 8-bit RGB, and back),
               ``metadata`` (what a file carries besides pixels, written back on restore), ``segments``
               (JPEG segments, PNG chunks), ``lossless`` (JPEG XL); the codecs load images through it too
- ``records``  what is on disk: ``row`` (the typed archive row and its Arrow schema), ``paths`` (storage
               paths and their restore rules), ``archive`` (the Parquet writer, its bounds, complete shards),
               ``files`` (stats, markers, audit rows, manifests), ``markers`` (completion markers verified)
- ``encode``   ``keeping`` (how each image is stored and why), ``encoding`` (one shard -> Parquet + stats)
- ``decode``   ``archive_rows`` (rows read without trusting the file), ``sandbox`` (decoding in a child that
               may die), ``restore`` (a row back into its sample), ``decoding`` (one archive file -> tar or
               PNGs), ``outputs``, ``names`` (safe file names), ``audit`` and ``summaries`` (its columns summed up)
- ``read``     reading an archive in place: ``archive`` (``open_archive``), ``restoring``, ``dataset``
               (PyTorch), ``ray_data`` (``read_archive``); ``records.index`` is the key index they use
- ``run``      ``runner`` (what the jobs share), ``actors``, ``pool``, ``lease``, ``progress``, ``plan``
- ``inspection`` an archive looked at in place (docs/inspecting.md): ``listing`` (its files), ``columns``
               (small columns read in a child), ``info`` (``diffarc-info``), ``verify`` (``diffarc-verify``)
"""

# The readers, importable as ``from pipeline import open_archive, ArchiveDataset, read_archive``; loaded
# on first use so that ``import pipeline`` stays light (no torch, Ray or codecs until asked for).
_READERS = {"open_archive": "archive", "Archive": "archive", "ArchiveDataset": "dataset", "ArchiveLoader": "dataset",
            "ArchiveMapDataset": "dataset", "read_archive": "ray_data", "RowError": "restoring"}


def __getattr__(name: str):
    if name in _READERS:
        import importlib

        return getattr(importlib.import_module(f"pipeline.read.{_READERS[name]}"), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
