"""The small columns of an archive's shards (``INFO_COLUMNS``), read from each Parquet file's footer and
those columns' chunks only (counting the bytes and the reads), in a child process.

Arrow trusts a footer, and a corrupt or hostile one can make it allocate what the footer or a page
header claims, or crash it (``decode.archive_rows`` says how), so the reading runs in a child
(``io.child``) whose data segment may grow by what the decoder's reader may (``reader_growth_bytes``),
and that says which shards it is reading: a shard that exhausts that memory is reported as unreadable,
naming it; when the child dies, a shard it was reading alone is the culprit, and several that were in
flight are each read again alone.

Protocol: the parent sends (storage, [(name, url), ...]); the child answers ("start", name) as it opens
a file, then ("table", name, table, (bytes read, reads)) or ("bad", name, why), and ("end",) after the last.
"""

from __future__ import annotations

import resource
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..decode.archive_rows import CountedSource, reader_growth_bytes
from ..io.child import child_streams, end_child, recv, send, start_child, status_bytes
from ..io.storage import Storage, is_s3, redact
from ..records.archive import RowGroups
from ..records.markers import READ_THREADS
from ..records.paths import StoragePath

INFO_COLUMNS = ("key", "codec_id", "stored_as", "error", "width", "height", "bpp", "orig_bytes", "orig_sha256")
NOTHING = "-"  # the path of a row that keeps nothing (an error row refused by the writer)
EMPTY = pa.schema([("key", pa.string()), ("codec_id", pa.string()), ("stored_as", pa.string()), ("error", pa.string()),
                   ("width", pa.int32()), ("height", pa.int32()), ("bpp", pa.float64()), ("orig_bytes", pa.int64()),
                   ("orig_sha256", pa.string()), ("shard", pa.string()), ("stored", pa.string()),
                   ("kept_bytes", pa.float64())]).empty_table()  # what an archive without a readable shard holds
MAGIC = b"PAR1"
FIX = "re-archive that shard (compress --overwrite) or restore the file from a copy"


def read_columns(storage: Storage, shards: list[tuple[str, str]]) -> tuple[dict[str, tuple[pa.Table, tuple]], dict[str, str]]:
    """({name: (its rows' small columns, plus ``shard``, ``stored`` and ``kept_bytes``; (bytes read, reads))},
    {name: why its file does not read}) for ``shards`` (name, Parquet URL)."""
    tables, bad, todo = {}, {}, list(shards)
    while todo:
        started = _read_in_child(storage, todo, tables, bad)
        if started is None:
            break
        done = set(tables) | set(bad)
        left = [s for s in todo if s[0] not in done]
        suspects = [s for s in left if s[0] in started]
        if not suspects:  # it died before reading anything: not a file's fault
            raise RuntimeError(f"the Parquet reader process died before reading {redact(left[0][1])}")
        if len(suspects) == 1:
            name, url = suspects[0]
            bad[name] = f"{redact(url)} crashed the Parquet reader: the file is corrupt or hostile; {FIX}"
        else:
            for one in suspects:  # each alone: the one that crashes is named
                if _read_in_child(storage, [one], tables, bad) is not None:
                    bad[one[0]] = f"{redact(one[1])} crashed the Parquet reader: the file is corrupt or hostile; {FIX}"
        todo = [s for s in left if s not in suspects]
    return tables, bad


def _read_in_child(storage: Storage, shards, tables: dict, bad: dict) -> set[str] | None:
    """Read ``shards`` in one child into ``tables`` and ``bad``; None when it finished, else the names
    it had started when it died."""
    proc, started = start_child("pipeline.inspection.columns"), set()
    try:
        send(proc.stdin, (storage, shards))
        while True:
            try:
                msg = recv(proc.stdout)
            except EOFError:
                return started - set(tables) - set(bad)
            if msg[0] == "start":
                started.add(msg[1])
            elif msg[0] == "table":
                tables[msg[1]] = (msg[2], msg[3])
            elif msg[0] == "bad":
                bad[msg[1]] = msg[2]
            else:
                return None
    finally:
        end_child(proc)


def footer(f: CountedSource) -> pq.FileMetaData:
    """The file's footer, reading its bytes alone (Arrow's own first read takes the last 64 KiB, which
    would hold bitstreams of the last row group)."""
    size = f.seek(0, 2)
    if size < 12:
        raise ValueError(f"{size} bytes is shorter than any Parquet file")
    f.seek(size - 8)
    tail = f.read(8)
    length = struct.unpack("<I", tail[:4])[0]
    if tail[4:] != MAGIC or length > size - 12:
        raise ValueError("no Parquet footer at its end (the file is cut short or is not Parquet)")
    f.seek(size - 8 - length)
    return pq.read_metadata(pa.BufferReader(MAGIC + f.read(length) + tail))


def small_columns(url: str, name: str, storage: Storage) -> tuple[pa.Table, tuple[int, int]]:
    """One shard's table as ``read_columns`` gives it; ``ValueError`` naming the file when it does not read."""
    fs, path = storage.fs(url)
    # no read-ahead on S3: s3fs would fetch the bitstreams between the small columns in 5 MB blocks
    options = {"cache_type": "none"} if is_s3(url) else {}
    try:
        with fs.open(path, "rb", **options) as f:
            counted = CountedSource(f)
            pf = pq.ParquetFile(counted, metadata=footer(counted))
            names = set(pf.schema_arrow.names)
            table = pf.read(columns=[c for c in INFO_COLUMNS if c in names], use_threads=False)
    except (pa.ArrowException, ValueError) as exc:  # ArrowInvalid: cut short, not Parquet, contradicting itself
        raise ValueError(f"{redact(url)} is not a readable archive file ({exc}); {FIX}") from None
    for column in INFO_COLUMNS:  # rows of earlier versions: version 1 holds no stored_as
        if column not in table.column_names:
            table = table.append_column(column, pa.nulls(len(table), pa.string()))
    stored = pc.fill_null(table["stored_as"], pc.if_else(pc.is_null(table["error"]), StoragePath.CODEC.value, NOTHING))
    pixels = pc.multiply(pc.cast(table["width"], pa.float64()), pc.cast(table["height"], pa.float64()))
    coded = pc.round(pc.divide(pc.multiply(table["bpp"], pixels), 8.0))
    kept = pc.if_else(pc.equal(stored, StoragePath.ORIGINAL.value), pc.cast(table["orig_bytes"], pa.float64()), coded)
    table = table.append_column("shard", pa.array([name] * len(table), pa.string()))
    table = table.append_column("stored", stored).append_column("kept_bytes", pc.fill_null(kept, 0.0))
    return table, (counted.bytes_read, counted.reads)


def _serve() -> None:
    proto_in, proto_out = child_streams()
    storage, shards = recv(proto_in)
    storage.fs(shards[0][1] if shards else "")  # imports s3fs when it is one: before the cap
    if (start := status_bytes("VmData")) is not None:  # RLIMIT_DATA, as ``archive_rows`` (Linux)
        growth = start + reader_growth_bytes(RowGroups())
        resource.setrlimit(resource.RLIMIT_DATA, (growth, growth))
    lock = threading.Lock()  # one message at a time on the pipe

    def say(msg: tuple) -> None:
        with lock:
            send(proto_out, msg)

    def read(shard: tuple[str, str]) -> tuple:
        name, url = shard
        say(("start", name))
        try:
            return ("table", name, *small_columns(url, name, storage))
        except (ValueError, OSError) as exc:
            return ("bad", name, str(exc) if isinstance(exc, ValueError) else f"reading {redact(url)}: {exc}")
        except MemoryError:
            return ("bad", name, f"{redact(url)} needs more memory than its footer and small columns may take: "
                                 f"the file is corrupt or hostile; {FIX}")

    with ThreadPoolExecutor(READ_THREADS) as pool:
        for reply in pool.map(read, shards):
            say(reply)
    say(("end",))


if __name__ == "__main__":
    _serve()
