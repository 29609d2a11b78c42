"""Compress one shard: stream samples -> decode images and decide how each is kept (``keeping``; a
prefetch thread) -> batched codec.encode -> Parquet rows -> commit the Parquet file -> write the
stats file (the completion marker, ``markers``).

Reading the tar and decoding images run in a background thread while the codec encodes the
previous batch, so the model is not left waiting on I/O. Nothing in the input fails the shard:
an image that cannot be loaded or encoded becomes a row with ``error`` set that keeps the image
file's bytes; a sample without an image is a row that carries its members (``stored_as`` none).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from model import IMAGE_EXTENSIONS, bits_per_pixel, load_image

from ..imagefiles.metadata import FileFacts, file_facts
from ..imagefiles.pixels import sniff_format, without_reprs
from ..io.batches import JOB_MAX_PIXELS, call_batched
from ..io.faults import is_infrastructure
from ..io.shards import Sample, ShardReader, shard_name
from ..io.storage import Storage, basename, join
from ..records import index
from ..records.archive import ArchiveWriter, RowGroups, now, sha256
from ..records.files import ShardStats, parquet_url, stats_url
from ..records.markers import identity
from ..records.paths import StoragePath, count_path
from ..records.row import Row
from .keeping import Kept, Policy, after_coding, decide

Report = Callable[[dict], None]
ITEM_OVERHEAD = 1024  # bytes an item costs beyond its data (so even empty samples fill a batch)
ERROR_ROWS_KEPT = 200  # error rows named in a shard's stats (all are counted)


NAMED_FORMATS = {"jpg": ("JPEG", "MPO"), "jpeg": ("JPEG", "MPO"), "png": ("PNG",), "webp": ("WEBP",), "gif": ("GIF",),
                 "tif": ("TIFF",), "tiff": ("TIFF",), "bmp": ("BMP",), "avif": ("AVIF",), "mpo": ("MPO", "JPEG")}


@dataclass(frozen=True)
class EncodeSettings:
    batch_size: int = 16  # images per codec.encode call
    max_pixels: int = JOB_MAX_PIXELS
    batch_bytes: int = 256 << 20  # a batch also closes at this many bytes, counting every item, failed ones too
    max_member_bytes: int = 256 << 20  # a larger tar member is not read: its sample is an error row
    image_exts: tuple[str, ...] = IMAGE_EXTENSIONS
    prefetch_batches: int = 2  # decoded batches waiting for the model
    row_groups: RowGroups = RowGroups()
    policy: Policy = Policy()  # how images are kept (``keeping``)


@dataclass
class Item:
    """One sample on its way to a row."""

    sample: Sample
    member: str | None
    data: bytes = b""
    image: object = None  # model.LoadedImage when it loaded
    facts: FileFacts | None = None  # when it loaded
    kept: Kept | None = None  # how it is stored (``keeping``); None until decided, or for an error without a file
    error: str | None = None  # set only by ``fail``
    encode_ms: float | None = None
    encode_settings: dict[str, str] = field(default_factory=dict)  # what its encoder chose (``Codec.encode_chosen``)
    sniffed: str | None = None  # the format its bytes say, where Pillow cannot open it (HEIF)

    def nbytes(self) -> int:
        """What this item holds in memory: its members, its decoded pixels, and a little bookkeeping."""
        pixels = self.image.rgb.nbytes if self.image is not None else 0
        return sum(len(m) for m in self.sample.members.values()) + pixels + ITEM_OVERHEAD

    def fail(self, error: str) -> None:
        """Make it an error row, which keeps the sample's original image file when it has one, so it
        comes back as it came; what it was on its way to be is dropped."""
        self.error, self.encode_ms, self.encode_settings = error, None, {}
        self.kept = Kept(StoragePath.ORIGINAL, "error", self.data) if self.member is not None else None


def prepare(sample: Sample, settings: EncodeSettings) -> Item:
    member = sample.image_member(settings.image_exts)
    item = Item(sample, member, sample.members.get(member, b"") if member else b"")
    if sample.problem:
        item.fail(sample.problem)
    elif member is None:
        item.kept = Kept(StoragePath.NONE, "no image member", None)  # its members pass through
    else:
        try:
            item.image = load_image(item.data, max_pixels=settings.max_pixels)
            item.facts = file_facts(item.data)
            item.kept = decide(item.data, item.facts, settings.policy)
        except Exception as exc:  # ImageError, and anything Pillow lets slip; not out of memory
            if is_infrastructure(exc):
                raise
            item.sniffed = sniff_format(item.data)
            if item.sniffed == "HEIF":  # a format of its own, not a broken file: kept as it is
                item.kept = Kept(StoragePath.ORIGINAL, "HEIF (Pillow cannot decode it: kept as the file)", item.data)
            else:
                item.fail(f"{member}: {without_reprs(str(exc))}")
    return item


def notes(item: Item, coded: bool) -> list[str]:
    """What the row's reader must know (``records.row``: ``notes``): a repeated member name, why a file is
    not kept the smaller way (``keeping``), a name that says another format than the bytes, what a coded
    row's file carried and the row does not keep."""
    out = [item.sample.note] if item.sample.note else []
    if item.kept is not None and item.kept.note:
        out.append(item.kept.note)
    named = NAMED_FORMATS.get((item.member or "").rsplit(".", 1)[-1].lower())
    actual = item.facts.format if item.facts else item.sniffed
    if named and actual and actual not in named:
        out.append(f"a {actual} file named .{item.member}: kept and restored as {actual} under its own name")
    if coded and item.facts:
        out += [f"not kept: {d}" for d in item.facts.dropped]
    return out


def info_bytes(item: Item) -> int:
    """The bytes of the metadata a coded row carries (``image_info``)."""
    return sum(len(k) + len(v) for k, v in item.facts.image_info.items()) if item.facts else 0


def encode_batch(codec, items: list[Item], policy: Policy = Policy()) -> None:
    """Encode the images of ``items`` bound for the codec in one call; isolate failures image by image;
    keep the original file where the coded row would not be smaller (``keeping.after_coding``)."""
    todo = [i for i in items if i.kept is not None and i.kept.stored_as == StoragePath.CODEC]
    for item, (encoded, error, ms) in zip(todo, call_batched(codec.encode_chosen, [i.image for i in todo])):
        if error:
            item.fail(f"encode failed: {error}")
        else:
            item.encode_ms, item.encode_settings = ms, encoded.chosen
            item.kept = after_coding(item.kept, encoded.bitstream, info_bytes(item), item.data, policy)


def mode_of(item: Item) -> str | None:
    """The original's Pillow mode, saying 16 bits where Pillow's own mode does not (48-bit RGB reads as RGB)."""
    if item.facts is not None and item.facts.bits > 8 and not item.facts.mode.startswith("I"):
        return f"{item.facts.mode};16"
    return getattr(item.image, "mode", None)


def to_row(item: Item, shard_url: str, codec_id: str) -> Row:
    image, kept = item.image, item.kept
    blob = kept.data if kept else None
    height, width = (image.rgb.shape[0], image.rgb.shape[1]) if image is not None else (None, None)
    coded = kept is not None and kept.stored_as.pixels
    return Row(
        key=item.sample.key,
        shard=shard_url,
        member=item.member,
        codec_id=codec_id,
        bitstream=blob,
        stored_as=kept.stored_as.value if kept else None,
        stored_because=kept.because if kept else None,
        image_info=list(item.facts.image_info.items()) if coded and item.facts else [],
        width=width,
        height=height,
        orig_mode=mode_of(item),
        orig_format=getattr(image, "format", None) or item.sniffed,
        orientation=getattr(image, "orientation", None),
        frames=getattr(image, "frames", None),
        orig_bytes=len(item.data) if item.member else None,
        orig_sha256=sha256(item.data) if item.member else None,
        pixels_sha256=kept.pixels_sha256 if kept else None,
        bpp=bits_per_pixel(blob, height, width) if blob is not None and width else None,
        encode_ms=item.encode_ms,
        encode_settings=list(item.encode_settings.items()) if coded and kept.stored_as == StoragePath.CODEC else [],
        error=item.error,
        notes=notes(item, coded) or None,
        metadata=[(ext, data) for ext, data in item.sample.members.items() if ext != item.member],
    )


def _prefetch(batches: Iterator[list[Item]], depth: int) -> Iterator[list[Item]]:
    """Run ``batches`` in a thread, ``depth`` ahead; re-raise its error here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop, done = threading.Event(), object()

    def put(x) -> None:
        while not stop.is_set():
            try:
                return q.put(x, timeout=0.2)
            except queue.Full:
                continue

    def run() -> None:
        try:
            for b in batches:
                put(b)
                if stop.is_set():
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    thread = threading.Thread(target=run, name="shard-prefetch", daemon=True)
    thread.start()
    try:
        while (x := q.get()) is not done:
            if isinstance(x, BaseException):
                raise x
            yield x
    finally:
        stop.set()


def batches(reader: ShardReader, settings: EncodeSettings) -> Iterator[list[Item]]:
    """Prepared items in batches of ``batch_size`` loaded images or ``batch_bytes`` held, whichever
    comes first: items that failed to load count too, so a run of bad samples cannot pile up."""
    batch: list[Item] = []
    loaded = held = 0
    for sample in reader:
        item = prepare(sample, settings)
        batch.append(item)
        loaded, held = loaded + (item.image is not None), held + item.nbytes()
        if loaded >= settings.batch_size or held >= settings.batch_bytes:
            yield batch
            batch, loaded, held = [], 0, 0
    if batch:
        yield batch


@dataclass
class Tally:
    """A shard's counts as its rows are written: its ``ShardStats`` (rows, ok, errors, bytes, paths),
    and the pixels and seconds behind its mean bpp and encode time."""

    stats: ShardStats = field(default_factory=lambda: ShardStats(paths={}))
    pixels: int = 0
    encode_s: float = 0.0

    def add(self, row: Row) -> None:
        s, stored = self.stats, len(row.bitstream or b"")
        s.rows += 1
        s.image_bytes += row.orig_bytes or 0
        count_path(s.paths, row.stored_as or "lost", row.stored_because or "error", 1, stored, row.orig_bytes or 0)
        if row.error is None:
            s.ok += 1
            s.bitstream_bytes += stored
            self.pixels += (row.width or 0) * (row.height or 0)
            self.encode_s += (row.encode_ms or 0) / 1000
        else:
            s.errors += 1
            if len(s.error_rows) < ERROR_ROWS_KEPT:
                s.error_rows.append({"key": row.key, "error": row.error})


def compress_shard(codec, shard_url: str, out_prefix: str, settings: EncodeSettings, storage: Storage,
                   report: Report = lambda event: None) -> ShardStats:
    """Archive one shard under ``out_prefix``; returns its stats (also written as the marker)."""
    name, started, t0 = shard_name(shard_url), now(), time.perf_counter()
    out_url, marker = parquet_url(out_prefix, name), stats_url(out_prefix, name)
    storage.remove(marker)  # from an earlier run: the marker must never outlive its Parquet file
    index_url = join(out_prefix, index.index_name(basename(out_url)))
    for url in (out_url, index_url):
        storage.remove_stale_temps(url)  # from a worker killed while writing this shard
    source = identity(storage.info(shard_url))
    if source is None:
        raise FileNotFoundError(f"input shard {shard_url} does not exist")
    reader, tally, output = ShardReader(shard_url, storage, max_member_bytes=settings.max_member_bytes), Tally(), {}
    with storage.atomic_output(out_url, record=output) as f:
        writer = ArchiveWriter(f, settings.row_groups)
        try:
            for batch in _prefetch(batches(reader, settings), settings.prefetch_batches):
                encode_batch(codec, batch, settings.policy)
                for item in batch:
                    row = to_row(item, shard_url, codec.codec_id)
                    writer.add(row)
                    tally.add(row)
                report({"shard": shard_url, "images": len(batch), "bytes_in": reader.bytes_read,
                        "shard_bytes": source["size"], "pid": os.getpid()})
        finally:
            writer.close()
    # the key index before the marker: a complete shard always has one (``records.index``)
    index.write(index.ShardIndex(writer.keys, writer.group_rows, output["bytes"], output["sha256"]), index_url, storage)
    seconds = time.perf_counter() - t0
    stats = replace(
        tally.stats,  # the counts
        shard=shard_url,
        name=name,
        codec_id=codec.codec_id,
        truncated=reader.truncated,
        bytes_in=reader.bytes_read,
        parquet_bytes=output["bytes"],
        input=source,  # what markers.py checks on resume: the input unchanged, the output intact
        output=output,
        mean_bpp=tally.stats.bitstream_bytes * 8 / tally.pixels if tally.pixels else None,
        seconds=round(seconds, 4),
        encode_seconds=round(tally.encode_s, 4),
        images_per_s=round(tally.stats.rows / seconds, 2) if seconds > 0 else None,
        batch_size=settings.batch_size,
        started=started,
        finished=now(),
        worker={"host": socket.gethostname(), "pid": os.getpid()},
    )
    stats.write(marker, storage)
    return stats
