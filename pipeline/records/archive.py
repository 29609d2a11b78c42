"""The archive's Parquet writer and its complete shards.

Under the output prefix (``row`` and ``files`` define each file)::

    shard-000000.parquet      the rows, row groups of ~100 rows or a byte target
    shard-000000.stats.json   per-shard counts and timings; written last, it is the completion marker
    _manifest.json            the job: codec, weights hash, versions, arguments, counts, failures

A shard is complete when its stats file exists and the Parquet file matches what the stats record
(``markers``: bytes, sha256 or ETag), and its input shard is unchanged (the compress job checks that).
"""

from __future__ import annotations

import hashlib
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from ..io.storage import Storage, redact
from .files import PARQUET_SUFFIX, STATS_SUFFIX, ShardStats
from .markers import READ_THREADS, Markers, identity, read_markers
from .paths import sum_paths
from .row import ROW_SCHEMA, Row

VERSIONED_PACKAGES = ("diffarc", "torch", "numpy", "pillow", "pyarrow", "ray", "fsspec", "s3fs", "webdataset")


FRAMING_BYTES = 16 << 10  # Parquet's own bytes per row in the big columns, at most (value lengths, levels, page
# headers with min/max statistics of values under 4 KiB): measured under 2 KiB


@dataclass(frozen=True)
class RowGroups:
    """How the writer cuts row groups, and so what a reader may expect of an honest archive: no row
    over ``bytes`` (the writer makes such a row an error row) and no group over ``max_group_bytes``."""

    rows: int = 100
    bytes: int = 64 << 20  # a group is closed once its rows hold this many bytes (``Row.nbytes``)

    def max_row_bytes(self) -> int:
        return self.bytes

    def max_group_bytes(self) -> int:
        """The most a group's big columns take uncompressed: it holds under ``bytes`` before its last row,
        that row at most ``bytes``, and Parquet frames each value and page."""
        return 2 * self.bytes + (self.rows + 8) * FRAMING_BYTES


class ArchiveWriter:
    """Buffer rows, write a row group whenever ``rows`` or ``bytes`` is reached."""

    def __init__(self, fileobj: BinaryIO, row_groups: RowGroups = RowGroups()):
        self.writer = pq.ParquetWriter(fileobj, ROW_SCHEMA, compression="zstd")
        self.limits, self.buffer, self.buffered_bytes, self.rows = row_groups, [], 0, 0
        self.keys: list[str] = []  # every row's key in stored order, and the rows of each group: the key index
        self.group_rows: list[int] = []

    def add(self, row: Row) -> None:
        """Buffer ``row``; one over the row cap becomes an error row here, in place (the caller's
        tally sees it), since readers refuse what an honest writer never writes."""
        size = row.nbytes()
        if size > self.limits.max_row_bytes():
            row.refuse(f"the bitstream and metadata members take {size} bytes, over the row-group cap of "
                       f"{self.limits.max_row_bytes()} (raise --row-group-mb, and --max-row-group-mb to decode)")
            size = 0
        self.buffer.append(row)
        self.buffered_bytes += size
        if len(self.buffer) >= self.limits.rows or self.buffered_bytes >= self.limits.bytes:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            table = pa.Table.from_pylist([row.to_dict() for row in self.buffer], schema=ROW_SCHEMA)
            self.writer.write_table(table, row_group_size=len(self.buffer))
            self.rows += len(self.buffer)
            self.keys += [row.key for row in self.buffer]
            self.group_rows.append(len(self.buffer))
            self.buffer, self.buffered_bytes = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archived_shards(out_prefix: str, storage: Storage, names: set[str] | None = None) -> Markers:
    """The shards archived completely under ``out_prefix`` (optionally only ``names``): their stats,
    verified against their Parquet files (``markers``), in ``found``; why the others are not, in ``problems``."""
    markers = read_markers(out_prefix, STATS_SUFFIX, ShardStats, storage, names)
    markers.found = markers.verified(storage, lambda name: name + PARQUET_SUFFIX)
    return markers


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def find_completed(output: str, shards: dict[str, str], storage: Storage,
                   codec_id: str) -> tuple[dict[str, ShardStats], dict[str, str]]:
    """(stats of the shards already archived under ``output`` that can be trusted, name -> why the
    others are redone). A shard counts when its marker and Parquet file check out (``markers``) and
    its input is unchanged; a different codec is refused."""
    markers = archived_shards(output, storage, set(shards))
    done = markers.found
    with ThreadPoolExecutor(READ_THREADS) as pool:
        now_inputs = dict(zip(done, pool.map(lambda n: identity(storage.info(shards[n])), list(done))))
    for name, current in now_inputs.items():
        if done[name].input != current:
            markers.problems[name] = (f"input {redact(shards[name])} changed since it was archived "
                                      f"({done[name].input} -> {current})")
            del done[name]
    other = sorted({s.codec_id for s in done.values()} - {codec_id})
    if other:
        raise ValueError(
            f"{redact(output)} already holds shards archived with codec {', '.join(other)}, this run uses "
            f"{codec_id}: pass --overwrite to redo them or choose another --output"
        )
    return done, markers.problems


def checksum(stats: ShardStats) -> dict:
    """The shard's Parquet file as its marker vouches for it: {bytes, sha256}; {} for a marker that
    records no output (written by an older version). ``diffarc-verify`` checks the file against it."""
    out = stats.output or {}
    return {k: out[k] for k in ("bytes", "sha256") if k in out}


def tally(shards: list[str], results: dict[str, ShardStats], skipped: dict[str, ShardStats], failures: dict) -> dict:
    """Counts over the whole archive (this run and earlier complete ones): fields of the manifest."""
    stats = list(results.values()) + list(skipped.values())
    status = ["done"] * len(results) + ["skipped"] * len(skipped)

    def total(key: str) -> int:
        return sum(getattr(s, key) or 0 for s in stats)

    seconds = sum(s.seconds for s in results.values())
    return {
        "counts": {"shards": len(shards), "done": len(results), "skipped": len(skipped), "failed": len(failures),
                   "rows": total("rows"), "ok": total("ok"), "errors": total("errors")},
        "paths": sum_paths(s.paths for s in stats),
        "bytes": {"in": total("bytes_in"), "images": total("image_bytes"), "bitstreams": total("bitstream_bytes"),
                  "parquet": total("parquet_bytes")},
        "timings": {"shard_seconds": round(seconds, 3),
                    "encode_seconds": round(sum(s.encode_seconds for s in results.values()), 3)},
        "shards": [{"shard": redact(s.shard), "name": s.name, "rows": s.rows, "errors": s.errors,
                    "truncated": s.truncated, "status": st, **checksum(s)} for s, st in zip(stats, status)],
        "warnings": [f"{redact(s.shard)}: {s.truncated}" for s in stats if s.truncated],
        "failures": [{"shard": redact(shard), "error": reason} for shard, reason in failures.items()],
    }
