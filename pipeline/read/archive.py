"""An archive read in place: ``open_archive(URL)`` -> ``Archive``, a read-only mapping key -> sample.

Opening lists the archive once, reads each complete shard's stats marker and key index
(``records.index``; in parallel), and checks each Parquet file's size against its marker, so a
truncated or replaced shard is named at once. A lookup then reads one row group of one shard
(``read_group``), through the project's storage layer, so ``s3://`` works as a local folder does.
Shards without an index (archives written before it) are indexed in memory from their ``key``
column, and opening says so once, with the command that writes the index.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow.parquet as pq
from PIL import Image

from ..io.faults import is_transient
from ..io.storage import Storage, absolute, join, redact
from ..records import index as key_index
from ..records.archive import RowGroups
from ..records.files import PARQUET_SUFFIX, STATS_SUFFIX, ShardStats
from ..records.markers import READ_THREADS, read_markers
from ..records.row import BIG_COLUMNS, KEPT_COLUMNS
from .restoring import RowDecoder, check_options

FIX = "re-archive that shard (diffarc-compress --overwrite) or restore the file"
OPEN_FILES = 16  # archive files a process keeps open (an archive may have thousands of shards)
META_SKIPPED = set(BIG_COLUMNS) | {"shard"}  # bytes, and the source URL (which may hold credentials)


@dataclass(frozen=True)
class Shard:
    """One complete archive shard: its name, Parquet URL and the rows of each row group."""

    name: str
    url: str
    group_rows: tuple[int, ...]


def meta(row: dict) -> dict[str, Any]:
    """The row's JSON-able fields: codec, storage path, sizes, hashes, notes (not its bytes)."""
    out = {k: v for k, v in row.items() if k not in META_SKIPPED and k != "refused"}
    if isinstance(out.get("encode_settings"), list):
        out["encode_settings"] = dict(out["encode_settings"])
    return out


class Archive:
    """A read-only mapping over an archive: ``len``, ``keys()``, ``key in archive``, ``archive[key]`` (the
    sample as archived: ``__key__`` and its members by extension), ``image(key, **decode_options)`` (a
    PIL image), ``row(key)`` (the stored row) and ``meta(key)``. Picklable: open files stay behind."""

    def __init__(self, url: str, shards: list[Shard], places: dict[str, tuple[int, int, int]], storage: Storage,
                 decoder: RowDecoder):
        self.url, self.shards, self.places, self.storage, self.decoder = url, shards, places, storage, decoder
        self._files: dict[int, tuple[pq.ParquetFile, Any]] = {}  # shard -> its open file
        self._pid = os.getpid()  # open files are this process's: a forked DataLoader worker opens its own

    def __getstate__(self):
        return {**self.__dict__, "_files": {}}

    def close(self) -> None:
        """Close the files it holds open (a later lookup opens them again)."""
        while self._files:
            self._files.popitem()[1][1].close()

    def __repr__(self) -> str:
        return f"Archive({redact(self.url)!r}: {len(self)} keys in {len(self.shards)} shards)"

    def __len__(self) -> int:
        return len(self.places)

    def __contains__(self, key: object) -> bool:
        return key in self.places

    def __iter__(self) -> Iterator[str]:
        return iter(self.places)

    def keys(self):
        return self.places.keys()

    def place(self, key: str) -> tuple[int, int, int]:
        """(shard number, row group, row) of ``key``; ``KeyError`` naming it."""
        try:
            return self.places[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in the archive {redact(self.url)} ({len(self)} keys)") from None

    def row(self, key: str) -> dict:
        s, g, r = self.place(key)
        return self.read_group(s, g)[r]

    def __getitem__(self, key: str) -> dict:
        s, g, r = self.place(key)
        return self.decoder.sample(self.read_group(s, g)[r], self.shards[s].url)

    def image(self, key: str, **decode_options) -> Image.Image:
        """``key``'s image; decode options (``steps``, ``preset``, ...) override those given at opening."""
        s, g, r = self.place(key)
        return self.decoder_with(decode_options).image(self.read_group(s, g)[r], self.shards[s].url)

    def meta(self, key: str) -> dict[str, Any]:
        return meta(self.row(key))

    def decoder_with(self, decode_options: dict) -> RowDecoder:
        if not decode_options:
            return self.decoder
        opts = {**self.decoder.options, **check_options(decode_options)}
        return RowDecoder(opts, self.decoder.device, self.decoder.weights_dir, self.decoder.weights_url)

    def units(self) -> list[tuple[int, int, int]]:
        """Every (shard number, row group, rows in it): the work units of a pass over the archive."""
        return [(s, g, n) for s, shard in enumerate(self.shards) for g, n in enumerate(shard.group_rows)]

    def read_group(self, s: int, g: int) -> list[dict]:
        """The rows of row group ``g`` of shard ``s``: every stored column (those an older row version
        lacks read as None); a ``ValueError`` naming the shard when the file cannot be read."""
        url = self.shards[s].url
        if os.getpid() != self._pid:
            self._files, self._pid = {}, os.getpid()
        try:
            pf, f = self._files.pop(s, (None, None))
            if pf is None:
                fs, path = self.storage.fs(url)
                f = fs.open(path, "rb")
                pf = pq.ParquetFile(f)
            self._files[s] = (pf, f)  # the most recent last
            while len(self._files) > OPEN_FILES:
                self._files.pop(next(iter(self._files)))[1].close()
            claimed = pf.metadata.row_group(g).total_byte_size
            if claimed > RowGroups().max_group_bytes():
                raise ValueError(f"its footer says row group {g} holds {claimed} bytes, more than any archive "
                                 "writer makes (corrupt or hostile)")
            rows = pf.read_row_group(g, use_threads=False).to_pylist()
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, MemoryError):
                raise
            self._files.pop(s, None)
            raise ValueError(f"archive shard {redact(url)} (row group {g}) cannot be read: {type(exc).__name__}: "
                             f"{exc}; {FIX}") from None
        absent = {c: None for c in KEPT_COLUMNS if rows and c not in rows[0]}
        return [{**row, **absent} for row in rows]


def _shard(url: str, name: str, stats: ShardStats, listing: dict, storage: Storage) -> tuple[Shard, list[str], str]:
    """(the shard, its keys in stored order, how its index was found: indexed | missing | stale)."""
    parquet = join(url, name + PARQUET_SUFFIX)
    listed, recorded = listing.get(name + PARQUET_SUFFIX), (stats.output or {})
    if listed is None:
        raise FileNotFoundError(f"archive shard {redact(parquet)} is missing though its stats marker says it is "
                                f"complete: {FIX}")
    if recorded.get("bytes") is not None and int(listed["size"]) != recorded["bytes"]:
        raise ValueError(f"archive shard {redact(parquet)} is {listed['size']} bytes, its stats marker says "
                         f"{recorded['bytes']}: truncated or replaced; {FIX}")
    index_file, how = name + key_index.INDEX_SUFFIX, "missing"
    if index_file in listing:
        how = "stale"
        try:
            found = key_index.read(join(url, index_file), storage)
        except ValueError as exc:  # not an index: read the keys instead, and say so
            print(f"open_archive: {exc}", file=sys.stderr)
        else:
            if found.current(listed["size"], stats):
                return Shard(name, parquet, tuple(found.group_rows)), found.keys, "indexed"
    try:
        built = key_index.build(parquet, storage)
    except Exception as exc:
        if is_transient(exc):
            raise
        raise ValueError(f"archive shard {redact(parquet)} cannot be read: {type(exc).__name__}: {exc}; "
                         f"{FIX}") from None
    return Shard(name, parquet, tuple(built.group_rows)), built.keys, how


def open_archive(url: str, *, storage: Storage | None = None, endpoint_url: str | None = None, device: str = "cpu",
                 weights_dir: str | None = None, weights_url: str | None = None, **decode_options) -> Archive:
    """The archive under ``url`` (a folder or an ``s3://`` prefix) with its complete shards; decode
    options (``steps``, ``gamma``, ``seed``, ``preset``, ...) as ``jobs/decompress.py`` takes them."""
    storage = storage or Storage.from_env(endpoint_url)
    url = absolute(url)
    decoder = RowDecoder(check_options(decode_options), device, weights_dir, weights_url)
    markers = read_markers(url, STATS_SUFFIX, ShardStats, storage)
    for name, problem in sorted(markers.problems.items()):
        print(f"open_archive: leaving out shard {name}: {problem}", file=sys.stderr)
    if not markers.found:
        raise FileNotFoundError(f"no complete archive shards under {redact(url)} (expected NAME{STATS_SUFFIX} "
                                "files written by diffarc-compress)")
    names = sorted(markers.found)
    with ThreadPoolExecutor(READ_THREADS) as pool:
        found = list(pool.map(lambda n: _shard(url, n, markers.found[n], markers.listing, storage), names))
    unindexed = [n for n, (_, _, how) in zip(names, found) if how != "indexed"]
    if unindexed:
        print(f"open_archive: {len(unindexed)} of {len(names)} shards of {redact(url)} have no up-to-date key index "
              f"(e.g. {unindexed[0]}): their key columns were read instead; write the index once with: "
              f"diffarc-index {redact(url)}", file=sys.stderr)
    places: dict[str, tuple[int, int, int]] = {}
    repeated: list[str] = []
    for s, (shard, keys, _) in enumerate(found):
        i = 0
        for g, n in enumerate(shard.group_rows):
            for r in range(n):
                if places.setdefault(keys[i], (s, g, r)) != (s, g, r):
                    repeated.append(keys[i])
                i += 1
    if repeated:
        print(f"open_archive: {len(repeated)} keys occur more than once (e.g. {repeated[0]!r}): a lookup gives the "
              "first (by shard name); a pass over the archive reads every row", file=sys.stderr)
    return Archive(url, [shard for shard, _, _ in found], places, storage, decoder)
