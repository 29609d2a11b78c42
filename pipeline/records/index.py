"""The key index of one archive shard: ``NAME.index.arrow`` beside ``NAME.parquet``.

One Arrow IPC file per shard: for each row, in stored order, its ``key``, ``row_group`` and ``row``
(within the group), so a reader finds a key's row and reads one row group, not the shard. The file's
schema metadata records the Parquet file it indexes (``parquet_bytes``, ``parquet_sha256``): an index
whose Parquet file was rewritten since is stale and not used (``matches``).

The compress job writes it right after the Parquet file and before the stats marker, so a complete
shard has one; ``diffarc-index`` builds it for archives written before (``build``, from the Parquet
footer and ``key`` column only). It is an extra file, not a column: archives stay readable without it.
Its suffix is not ``.parquet``, so nothing that lists the archive's Parquet files sees it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..io.storage import Storage
from .files import ShardStats

INDEX_SUFFIX = ".index.arrow"
INDEX_VERSION = 1
INDEX_SCHEMA = pa.schema([("key", pa.string()), ("row_group", pa.int32()), ("row", pa.int32())])


@dataclass
class ShardIndex:
    """Keys of one shard in stored order, with the rows in each row group (``group_rows``)."""

    keys: list[str]
    group_rows: list[int]
    parquet_bytes: int | None = None
    parquet_sha256: str | None = None

    def places(self):
        """(key, row group, row) of each row, in stored order."""
        i = 0
        for g, n in enumerate(self.group_rows):
            for r in range(n):
                yield self.keys[i], g, r
                i += 1

    def matches(self, parquet_bytes: int | None) -> bool:
        """Whether it indexes a Parquet file of this size (what a listing tells cheaply)."""
        return self.parquet_bytes is None or parquet_bytes is None or int(parquet_bytes) == self.parquet_bytes

    def current(self, parquet_bytes: int | None, stats: ShardStats) -> bool:
        """Whether it indexes the Parquet file its shard's ``stats`` vouch for (size, sha256, rows)."""
        recorded = stats.output or {}
        return (self.matches(parquet_bytes) and self.parquet_sha256 in (None, recorded.get("sha256"))
                and len(self.keys) == stats.rows)

    def to_bytes(self) -> bytes:
        places = list(self.places())
        table = pa.table({"key": [p[0] for p in places], "row_group": [p[1] for p in places],
                          "row": [p[2] for p in places]}, schema=INDEX_SCHEMA)
        meta = {b"diffarc.index_version": str(INDEX_VERSION).encode(),
                b"parquet_bytes": str(self.parquet_bytes or "").encode(),
                b"parquet_sha256": (self.parquet_sha256 or "").encode()}
        buf = io.BytesIO()
        with ipc.new_file(buf, INDEX_SCHEMA.with_metadata(meta)) as writer:
            writer.write_table(table)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, url: str) -> "ShardIndex":
        """The index in ``data`` (read from ``url``); ``ValueError`` naming it and the fix when it is not one."""
        try:
            table = ipc.open_file(pa.BufferReader(data)).read_all()
            meta = table.schema.metadata or {}
            version = int(meta.get(b"diffarc.index_version", b"0"))
            if version < 1 or version > INDEX_VERSION or not table.schema.equals(INDEX_SCHEMA):
                raise ValueError(f"index version {version} with columns {table.schema.names}")
        except (pa.ArrowInvalid, ValueError) as exc:
            raise ValueError(f"{url} is not a key index this diffarc reads ({exc}): rebuild it with "
                             f"diffarc-index --overwrite") from None
        groups = table.column("row_group").to_numpy()
        group_rows = np.bincount(groups).tolist() if len(groups) else []
        size = meta.get(b"parquet_bytes", b"")
        return cls(table.column("key").to_pylist(), group_rows, int(size) if size else None,
                   meta.get(b"parquet_sha256", b"").decode() or None)


def index_name(parquet_name: str) -> str:
    """``NAME.index.arrow`` for ``NAME.parquet``."""
    return parquet_name[: -len(".parquet")] + INDEX_SUFFIX


def build(parquet_url: str, storage: Storage) -> ShardIndex:
    """The index of an archive file from its footer and ``key`` column (nothing else is read)."""
    fs, path = storage.fs(parquet_url)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        keys = pf.read(columns=["key"], use_threads=False).column("key").to_pylist()
        group_rows = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
    info = storage.info(parquet_url) or {}
    return ShardIndex(keys, group_rows, info.get("size"))


def write(index: ShardIndex, url: str, storage: Storage) -> None:
    storage.write_bytes(url, index.to_bytes())


def read(url: str, storage: Storage) -> ShardIndex:
    return ShardIndex.from_bytes(storage.read_bytes(url), url)
