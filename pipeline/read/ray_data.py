"""``read_archive(URL)``: an archive as a ``ray.data.Dataset`` of decoded rows, with no intermediate files.

Ray Data reads the complete shards' Parquet files itself (``ray.data.read_parquet``, only the columns
decoding needs, through the project's storage layer as a pyarrow filesystem, so ``s3://`` with an
endpoint works), cut into blocks of ``batch_size`` rows, and the decode is a ``map_batches`` stage:
CPU tasks, or with ``num_gpus`` (a fraction per actor) the codec's network on a GPU. Each row comes
out as ``key``, ``image`` (an HxWx3 uint8 array, RGB) and its metadata columns. A row that gives no
image is kept with an empty (0x0x3) image and its ``error`` set (``errors="keep"``), dropped and
reported on the worker's stderr (``"skip"``), or raised (``"raise"``).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..records.markers import READ_THREADS
from ..records.row import KEPT_COLUMNS, READ_COLUMNS
from .archive import open_archive
from .restoring import RowDecoder, RowError

META_COLUMNS = ("member", "codec_id", "stored_as", "width", "height", "bpp", "orig_sha256", "orig_format")
EMPTY = np.zeros((0, 0, 3), np.uint8)


class DecodeBatch:
    """The ``map_batches`` stage: a batch of stored rows (pyarrow) -> decoded rows (numpy columns)."""

    def __init__(self, decoder: RowDecoder, errors: str):
        self.decoder, self.errors = decoder, errors

    def __call__(self, table) -> dict[str, np.ndarray]:
        absent = {c: None for c in KEPT_COLUMNS if c not in table.column_names}
        out: dict[str, list] = {"key": [], "image": [], **{c: [] for c in META_COLUMNS}, "error": []}
        for row in table.to_pylist():
            row = {**absent, **row}
            try:
                image, error = np.asarray(self.decoder.image(row, row.pop("path")).convert("RGB")), None
            except RowError as exc:
                if self.errors == "raise":
                    raise
                if self.errors == "skip":
                    print(f"read_archive: skipping {exc}", file=sys.stderr)
                    continue
                image, error = EMPTY, exc.error
            out["key"].append(row["key"])
            out["image"].append(image)
            out["error"].append(error)
            for c in META_COLUMNS:
                out[c].append(row.get(c))
        images = np.empty(len(out["image"]), dtype=object)
        images[:] = out["image"]  # ragged: Ray Data keeps them as a variable-shaped tensor column
        return {**{c: np.array(v, dtype=object) for c, v in out.items() if c != "image"}, "image": images}


def read_archive(url: str, *, errors: str = "keep", batch_size: int = 8, num_gpus: float | None = None,
                 concurrency: int | None = None, storage=None, endpoint_url: str | None = None,
                 device: str | None = None, weights_dir: str | None = None, weights_url: str | None = None,
                 **decode_options: Any):
    """The archive under ``url`` as a ``ray.data.Dataset`` (module docstring); decode options as
    ``jobs/decompress.py`` takes them (``steps``, ``preset``, ...)."""
    import ray.data
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    if errors not in ("keep", "skip", "raise"):
        raise ValueError(f"errors must be 'keep', 'skip' or 'raise', not {errors!r}")
    device = device or ("cuda" if num_gpus else "cpu")
    archive = open_archive(url, storage=storage, endpoint_url=endpoint_url, device=device, weights_dir=weights_dir,
                           weights_url=weights_url, **decode_options)
    fs, _ = archive.storage.fs(archive.url)
    paths = [archive.storage.fs(s.url)[1] for s in archive.shards]

    def names(path: str) -> set[str]:
        with fs.open(path, "rb") as f:
            return set(pq.read_schema(f).names)

    with ThreadPoolExecutor(READ_THREADS) as pool:
        present = set.intersection(*pool.map(names, paths))  # an older row version lacks some columns
    columns = [c for c in READ_COLUMNS if c in present]
    ds = ray.data.read_parquet(paths, filesystem=PyFileSystem(FSSpecHandler(fs)), include_paths=True)
    ds = ds.select_columns([*columns, "path"])  # the file, named in a failed row's error
    # blocks of one batch (streamed, no barrier): a small file is read as one block, and its decode
    # would be one task on one CPU however many the cluster has
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    if num_gpus:  # actors keep the network loaded on their GPU share
        return ds.map_batches(DecodeBatch, fn_constructor_args=(archive.decoder, errors), batch_format="pyarrow",
                              batch_size=batch_size, num_gpus=num_gpus, concurrency=concurrency or 1)
    return ds.map_batches(DecodeBatch(archive.decoder, errors), batch_format="pyarrow", batch_size=batch_size,
                          concurrency=concurrency)
