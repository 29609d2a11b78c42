"""An archive file's rows, read without trusting the file.

A Parquet footer says how large each row group's columns are once decompressed, and a hostile or
corrupt file can be tiny on disk and huge in memory (zstd over zeros). The writer bounds what an
honest file holds (``archive.RowGroups``), so each row group is checked against its footer before
anything in it is read:

- its big columns (bitstream, metadata, image_info) claim more than ``max_group_bytes``: only its small columns
  are read, and each of its rows is refused, saying why (file, row group, sizes, the flag);
- in a group that is read, a row whose bitstream and metadata exceed ``max_row_bytes`` is refused:
  its values are measured in Arrow's buffers and dropped, never converted or passed on.

A footer can lie (Arrow allocates what each page's own header says, whatever the footer claims, and
a dictionary page repeats its values as often as the rows ask), so the reading runs in a child
process whose data segment may grow by ``READER_SLACK_BYTES`` plus ``READ_COPIES`` times the group
budget beyond its size at start, and no more (RLIMIT_DATA; Arrow uses the system allocator there, so
the segment is what it holds): a file that needs more than its footer admits fails its shard with an
error naming the file and row group, and so does a file that is not Parquet, is cut short or
contradicts itself, while the worker lives on. A read that the store failed is an infrastructure
fault (retried by the worker); it never becomes an error row. The child dies with its worker (``child``).

Protocol (``child``): the parent sends one ``ReadRequest``, the child answers ("rows", [row, ...])
per batch, then ("done", {peak_rss_bytes, bytes_read}), or ("bad" | "infra" | "missing", message).
"""

from __future__ import annotations

import resource
import signal
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.child import child_streams, end_child, peak_rss_bytes, recv, send, start_child, status_bytes
from ..io.faults import InfrastructureError, PermanentError, is_transient
from ..io.storage import Storage
from ..records.archive import RowGroups
from ..records.row import BIG_COLUMNS, KEPT_COLUMNS, MAP_COLUMNS, READ_COLUMNS

SMALL_COLUMNS = [c for c in READ_COLUMNS if c not in BIG_COLUMNS]
NOT_READ = {c: None for c in BIG_COLUMNS}  # a refused row's big columns
READER_SLACK_BYTES = 256 << 20  # what the child may add besides row data: S3 clients, thread arenas, Python objects
READ_COPIES = 6  # a group's bytes held at once, at most: compressed, a page, Arrow's batch, Python's, the pickle
FIX = "re-archive that shard (compress.py --overwrite) or leave it out (--shards)"


def reader_growth_bytes(row_groups: RowGroups) -> int:
    """How much the reading process's data segment may grow beyond its size at start."""
    return READER_SLACK_BYTES + READ_COPIES * row_groups.max_group_bytes()


@dataclass(frozen=True)
class ReadRequest:
    """What the reading process is asked to read, and to hold the file to."""

    url: str
    storage: Storage
    batch_size: int
    keys: frozenset[str] | None  # only these; None: all
    row_groups: RowGroups  # the bounds of an honest writer, which the file is held to


class ArchiveRows:
    """The rows of one archive file (``request.keys`` only, when given), in stored order, in consecutive
    blocks of ``batch_size`` stored rows; a refused row has ``refused`` (why) and no bitstream or
    metadata. Once read through, ``record`` holds the reading process's peak resident size and the
    bytes it read from the file."""

    def __init__(self, request: ReadRequest):
        self.request, self.record = request, {"peak_rss_bytes": None, "bytes_read": None}

    def __iter__(self) -> Iterator[list[dict]]:
        proc = start_child("pipeline.decode.archive_rows", ARROW_DEFAULT_MEMORY_POOL="system")
        try:
            send(proc.stdin, self.request)
            while True:
                try:
                    kind, payload = recv(proc.stdout)
                except EOFError:
                    raise _death(proc.wait(), self.request.url) from None
                if kind == "rows":
                    yield payload
                elif kind == "done":
                    self.record = payload
                    return
                elif kind == "infra":
                    raise InfrastructureError(payload)
                elif kind == "missing":
                    raise PermanentError(payload)
                else:
                    raise PermanentError(f"{payload}; {FIX}")
        finally:
            end_child(proc)


def _death(code: int, url: str) -> Exception:
    """A reader that died without a word: killed from outside (the machine's OOM killer, a shutdown) is
    an infrastructure fault; a crash of its own (Arrow aborting on the file) is the file's."""
    what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    if code in (-signal.SIGKILL, -signal.SIGTERM) or code > 0:
        return InfrastructureError(f"the reader of {url} died ({what})")
    return PermanentError(f"the reader of {url} crashed on it ({what}): the file is corrupt or hostile; {FIX}")


# -- the child ------------------------------------------------------------------------------------


class CountedSource:
    """The archive file as Arrow reads it, noting a read that the store failed (not the file's fault),
    the bytes read and the reads (on S3 without read-ahead, each is a request)."""

    def __init__(self, f):
        self.f, self.failure, self.bytes_read, self.reads = f, None, 0, 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.f.read(n)
        except Exception as exc:
            self.failure = exc
            raise
        self.bytes_read, self.reads = self.bytes_read + len(data), self.reads + 1
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    @property
    def closed(self) -> bool:
        return self.f.closed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


@dataclass
class _Place:
    """Where the reading is, for the message when it fails."""

    group: int | None = None
    claimed: int = 0  # the big columns' bytes in that group's footer


def _claims(group) -> tuple[int, int]:
    """(big, small) columns' uncompressed bytes in a row group's footer, checking its value counts."""
    big = small = 0
    for c in range(group.num_columns):
        col = group.column(c)
        top = col.path_in_schema.split(".")[0]
        if col.total_uncompressed_size < 0 or col.total_compressed_size < 0:
            raise ValueError(f"its footer gives column {top} a negative size")
        if top in BIG_COLUMNS:
            big += col.total_uncompressed_size
        elif top in SMALL_COLUMNS:
            small += col.total_uncompressed_size
            if col.num_values != group.num_rows:  # a flat column holds one value (or null) per row
                raise ValueError(f"its footer says column {top} holds {col.num_values} values in {group.num_rows} rows")
    return big, small


def _row_sizes(batch) -> np.ndarray:
    """Each row's bitstream plus metadata names and contents, in bytes (``Row.nbytes``), from
    Arrow's buffers: nothing is converted."""
    sizes = np.zeros(batch.num_rows, np.int64)
    for name in BIG_COLUMNS:
        if name not in batch.schema.names:
            continue
        if name not in MAP_COLUMNS:  # bytes
            sizes = sizes + pc.fill_null(pc.binary_length(batch.column(name)), 0).to_numpy().astype(np.int64)
            continue
        meta = batch.column(name)
        items = (pc.fill_null(pc.binary_length(meta.keys), 0).to_numpy().astype(np.int64)
                 + pc.fill_null(pc.binary_length(meta.items), 0).to_numpy().astype(np.int64))
        total = np.concatenate([[0], np.cumsum(items)])
        offsets = meta.offsets.to_numpy()
        sizes = sizes + total[offsets[1:]] - total[offsets[:-1]]
    return sizes


def _group_rows(pf: pq.ParquetFile, g: int, request: ReadRequest, place: _Place) -> Iterator[dict | None]:
    """Row group ``g``'s rows (None for one whose key was not asked for), refused as the module says."""
    limits, group = request.row_groups, pf.metadata.row_group(g)
    place.group, (place.claimed, small) = g, _claims(group)
    if small > limits.max_group_bytes():
        raise ValueError(f"its footer says its key, codec and other short columns hold {small} bytes in "
                         f"{group.num_rows} rows, which no archive writer makes")
    wanted = (lambda key: True) if request.keys is None else request.keys.__contains__
    names = set(pf.schema_arrow.names)
    columns, small_columns = [c for c in READ_COLUMNS if c in names], [c for c in SMALL_COLUMNS if c in names]
    absent = {c: None for c in KEPT_COLUMNS if c not in names}
    if place.claimed > limits.max_group_bytes():
        why = (f"row group {g} of {request.url} holds {place.claimed} bytes of bitstreams and metadata "
               f"({group.num_rows} rows, per its footer), over the cap of {limits.max_group_bytes()}: not read "
               f"(raise --max-row-group-mb if the archive was written with a larger --row-group-mb)")
        for row in pf.read_row_group(g, columns=small_columns, use_threads=False).to_pylist():
            yield {**row, **absent, **NOT_READ, "refused": why} if wanted(row["key"]) else None
        return
    for batch in pf.iter_batches(batch_size=request.batch_size, row_groups=[g], columns=columns, use_threads=False):
        sizes, big = _row_sizes(batch), {c: batch.column(c) for c in BIG_COLUMNS if c in names}
        for i, row in enumerate(batch.select(small_columns).to_pylist()):
            row.update(absent)
            if not wanted(row["key"]):
                yield None
            elif sizes[i] > limits.max_row_bytes():
                yield {**row, **NOT_READ,
                       "refused": f"the row's bitstream and metadata take {sizes[i]} bytes (row group {g} of "
                                  f"{request.url}), over the per-row cap of {limits.max_row_bytes()}: not read "
                                  "(raise --max-row-group-mb if the archive was written with a larger --row-group-mb)"}
            else:
                yield {**row, **{c: column[i].as_py() for c, column in big.items()}}


def read_batches(source, request: ReadRequest, place: _Place) -> Iterator[list[dict]]:
    """The rows the module describes, in blocks of ``batch_size`` stored rows (the same blocks for the
    same arguments: a rerun reproduces a stochastic decode), less the keys not asked for."""
    pf, block = pq.ParquetFile(source), []
    for g in range(pf.metadata.num_row_groups):
        for row in _group_rows(pf, g, request, place):
            block.append(row)
            if len(block) == request.batch_size:
                if rows := [r for r in block if r is not None]:
                    yield rows
                block = []
    if rows := [r for r in block if r is not None]:
        yield rows


def _verdict(exc: Exception, source: CountedSource | None, request: ReadRequest, place: _Place, cap: int) -> tuple:
    fault = exc if source is None else source.failure
    if isinstance(fault, FileNotFoundError):
        return "missing", (f"archive file {request.url} is missing (looked for {fault.filename or request.url}): "
                           "restore it, or leave the shard out (--shards)")
    if fault is not None:
        return "infra" if is_transient(fault) else "bad", f"reading {request.url}: {type(fault).__name__}: {fault}"
    where = f"{request.url}" + (f" row group {place.group}" if place.group is not None else "")
    if isinstance(exc, MemoryError):
        return "bad", (f"{where} needs more memory than the reader may take ({cap} bytes more than at start), "
                       f"though its footer says its bitstreams and metadata take {place.claimed} bytes: the file is "
                       "corrupt or hostile")
    return "bad", f"{where} is not a readable archive file: {type(exc).__name__}: {exc}"


def _serve() -> None:
    proto_in, proto_out = child_streams()
    request: ReadRequest = recv(proto_in)
    source, place, growth = None, _Place(), reader_growth_bytes(request.row_groups)
    try:
        fs, path = request.storage.fs(request.url)  # imports s3fs when it is one: before the cap
        if (start := status_bytes("VmData")) is not None:  # what RLIMIT_DATA caps (Linux: elsewhere it is not kept)
            resource.setrlimit(resource.RLIMIT_DATA, (start + growth, start + growth))
        with fs.open(path, "rb") as f:
            source = CountedSource(f)
            for rows in read_batches(source, request, place):
                send(proto_out, ("rows", rows))
        send(proto_out, ("done", {"peak_rss_bytes": peak_rss_bytes(), "bytes_read": source.bytes_read}))
    except Exception as exc:
        send(proto_out, _verdict(exc, source, request, place, growth))


if __name__ == "__main__":
    _serve()
