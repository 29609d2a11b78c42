"""Decode one archive shard: Parquet rows -> batched codec.decode -> WebDataset tar or PNG files
(the audit, ``audit``, decodes the same way and measures instead of keeping images).

The decode options (``steps``, ``gamma``, ``seed``, ...) travel in one frozen ``settings.DecodeSettings``,
are passed to every codec that declares them and recorded by the job, resolved per codec
(``resolved_options``); batches are formed in row order
with a fixed size, so a rerun with the same arguments reproduces a stochastic decode.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from model import load_codec_for_id

from ..io.batches import call_batched
from ..io.faults import is_infrastructure, is_out_of_memory
from ..io.shards import Sample, write_tar
from ..io.storage import Storage, basename, join
from ..records.archive import now
from ..records.files import DECODED_SUFFIX, PARQUET_SUFFIX, DecodedMarker, Record, ShardStats
from ..records.markers import Markers, read_markers
from ..records.paths import Restored
from .archive_rows import ArchiveRows, ReadRequest
from .names import UniqueNames, safe_ext, safe_name
from .outputs import decoded_problem, write_folder
from .restore import needs_codec, restore_kept, sample_members
from .settings import DecodeSettings

FORMATS = ("webdataset", "png")


def archive_name(parquet_url: str) -> str:
    return safe_name(basename(parquet_url)[: -len(PARQUET_SUFFIX)])


def rows_of(parquet_url: str, settings: DecodeSettings, storage: Storage) -> ArchiveRows:
    """The selected rows of one archive file, in blocks of ``batch_size`` stored rows, refused where the
    file breaks the writer's bounds (``archive_rows``)."""
    return ArchiveRows(ReadRequest(parquet_url, storage, settings.batch_size, settings.keys, settings.row_groups))


Decoder = Callable[[str, list[bytes]], list[tuple]]  # (codec id, bitstreams) -> (image, None) or (None, reason)


def in_process(get_codec: Callable, settings: DecodeSettings) -> Decoder:
    """A ``Decoder`` running the codec ``get_codec(codec_id)`` in this process (``sandbox`` runs it in a
    child process that may die, which is what the jobs use)."""
    def decode_blobs(codec_id: str, blobs: list[bytes]) -> list[tuple]:
        try:
            codec = get_codec(codec_id)
        except Exception as exc:  # no matching weights here: refuse these rows, say why
            if is_infrastructure(exc):  # but a weights file we could not read is not the rows' fault
                raise
            return [(None, f"refused: {exc}")] * len(blobs)

        def decode(batch):
            return codec.decode(batch, **settings.options_for(codec))

        return [(img, f"decode failed: {error}" if error else None) for img, error, _ in call_batched(decode, blobs)]

    return decode_blobs


def decode_rows(decoder: Decoder, rows: list[dict]) -> list[Restored]:
    """What each row gives back (``restore``); one decoder call per codec id for the codec's rows."""
    out: list[Restored] = [Restored() if needs_codec(r) else restore_kept(r) for r in rows]
    by_codec: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if needs_codec(r):
            by_codec.setdefault(r["codec_id"], []).append(i)
    for codec_id, idx in by_codec.items():
        for i, (img, error) in zip(idx, decoder(codec_id, [rows[i]["bitstream"] for i in idx])):
            out[i] = Restored(image=img, error=error)
    return out


def decode_shard(decoder: Decoder, parquet_url: str, out_prefix: str, settings: DecodeSettings,
                 storage: Storage, report: Callable[[dict], None] = lambda e: None,
                 source: dict | None = None) -> DecodedMarker:
    """Write the samples of one archive file as ``NAME.tar`` or the folder ``NAME/`` (``restore``), then
    its marker ``NAME.decoded.json`` (``markers``), which is also returned.

    ``source`` is the archive's record of the Parquet file (its stats' ``output``): the marker keeps it,
    so a re-encoded archive shard is decoded again. Keys become file and member names only in their
    safe form (``names.safe_name``); ``renamed`` maps those that changed back to the original keys, and
    ``failed_rows`` lists every row that was not decoded, with the reason; ``compress_errors`` the
    archive's error rows (restored as far as they were kept: their file, their other members);
    ``fallbacks`` the image members written under another name than the row's (``restore``). One row
    never fails the shard: what cannot be written is a failed row.
    """
    name, t0, started = archive_name(parquet_url), time.perf_counter(), now()
    marker_url = join(out_prefix, name + DECODED_SUFFIX)
    storage.remove(marker_url)  # from an earlier run: never let it vouch for what is rewritten now
    failures: list[dict] = []
    noted: list[dict] = []  # rows that were error rows at compress time: reported, restored as far as they were kept
    fallbacks: list[dict] = []  # image members written elsewhere than the row says (``restore``)
    counts = {"decoded": 0}
    unique, renamed = UniqueNames(), {}

    rows_read = rows_of(parquet_url, settings, storage)

    def samples() -> Iterator[Sample]:
        for rows in rows_read:
            for row, restored in zip(rows, decode_rows(decoder, rows)):
                if restored.error:
                    failures.append({"key": row["key"], "error": restored.error})
                    continue
                try:
                    members, fallback = sample_members(row, restored, as_png=settings.format == "png")
                except Exception as exc:  # not even a PNG could be written (in memory): this row fails, not the shard
                    if is_out_of_memory(exc):
                        raise
                    failures.append({"key": row["key"], "error": f"restored image could not be written: {exc}"})
                    continue
                if restored.noted:
                    noted.append({"key": row["key"], "error": restored.noted})
                if fallback:
                    fallbacks.append({"key": row["key"], "member": row["member"], "why": fallback})
                counts["decoded"] += 1
                safe = unique(row["key"])
                if safe != row["key"]:
                    renamed[safe] = row["key"]
                yield Sample(safe, {safe_ext(ext): data for ext, data in members.items()})
            report({"shard": parquet_url, "images": len(rows), "pid": os.getpid()})

    if settings.format == "webdataset":
        storage.remove_stale_temps(join(out_prefix, name + ".tar"))
        output: dict = {}
        with storage.atomic_output(join(out_prefix, name + ".tar"), record=output) as f:
            write_tar(f, samples())
    else:
        storage.remove_stale_temps(join(out_prefix, name))
        files = ((f"{s.key}.{ext}", data) for s in samples() for ext, data in s.members.items())
        output = write_folder(join(out_prefix, name), files, storage)
    marker = DecodedMarker(
        shard=parquet_url, name=name, input=source, settings=settings.fingerprint(), output=output,
        rows=counts["decoded"] + len(failures), decoded=counts["decoded"], errors=len(failures),
        failed_rows=failures, compress_errors=noted or None, fallbacks=fallbacks or None, renamed=renamed, bytes_out=output["bytes"],
        seconds=round(time.perf_counter() - t0, 4), started=started, finished=now(), **process_records(decoder, rows_read))
    marker.write(marker_url, storage)
    return marker


def process_records(decoder: Decoder, rows_read: ArchiveRows) -> dict:
    """What a shard's marker says about the processes that did the work."""
    return {"worker": {"host": socket.gethostname(), "pid": os.getpid()},
            "decoder": {"peak_rss_bytes": getattr(decoder, "peak_rss_bytes", None),
                        "deaths": getattr(decoder, "deaths", None)},
            "reader": rows_read.record}


def codecs_for(shards: dict[str, ShardStats], resolver) -> tuple[dict[str, Any], list[str]]:
    """(the codec of each codec id in ``shards``, loaded here; one message per codec id that has no
    matching weights here, naming its shards and rows)."""
    by_codec: dict[str, list[str]] = {}
    for name, stats in shards.items():
        by_codec.setdefault(stats.codec_id, []).append(name)
    codecs, refusals = {}, []
    for codec_id, names in sorted(by_codec.items()):
        try:
            codecs[codec_id] = load_codec_for_id(codec_id, resolver=resolver)
        except Exception as exc:
            rows = sum(shards[n].rows for n in names)
            refusals.append(f"{rows} rows in {len(names)} shard(s) ({', '.join(sorted(names)[:5])}"
                            f"{', ...' if len(names) > 5 else ''}) need codec '{codec_id}': {exc}")
    return codecs, refusals


def resolved_options(codecs: dict[str, Any], options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The decode options each codec runs with (by codec id): those given that it declares, and its
    own defaults (presets, card values) for the rest."""
    return {cid: codec.resolve_options("decode", codec.select_options("decode", options))
            for cid, codec in sorted(codecs.items())}


def settle(markers: Markers, shards: dict[str, ShardStats], settings: DecodeSettings, storage: Storage, verb: str,
           check: Callable[[str, Record], str | None] = lambda name, marker: None) -> tuple[dict, dict]:
    """(the markers that still vouch for their shard: made from the same archive bytes with the same
    settings, passing ``check``, their output intact; name -> why each other shard is done again)."""
    done = {}
    for name, marker in markers.found.items():
        if marker.input != shards[name].output:
            markers.problems[name] = f"the archive shard changed since it was {verb}"
        elif marker.settings != settings.fingerprint():
            markers.problems[name] = f"{verb} with other settings ({marker.settings})"
        elif (problem := check(name, marker)) is not None:
            markers.problems[name] = problem
        elif (problem := decoded_problem(marker.output, markers.listing, storage)) is not None:
            markers.problems[name] = problem
        else:
            done[name] = marker
    return done, markers.problems


@dataclass(frozen=True)
class Decoding:
    """What the decompress job does with each archive file: decode it (``decode_shard``)."""

    job = "decompress"
    doing = "decoding"

    def finished(self, output: str, shards: dict[str, ShardStats], settings: DecodeSettings,
                 storage: Storage) -> tuple[dict, dict]:
        """(markers of the shards decoded before and still valid, name -> why the others are decoded again)."""
        markers = read_markers(output, DECODED_SUFFIX, DecodedMarker, storage, set(shards))
        return settle(markers, shards, settings, storage, "decoded")

    def submit(self, actor, parquet_url: str, output: str, source: dict):
        return actor.decode.remote(parquet_url, output, source)

    def conclude(self, names: list[str], output: str, storage: Storage) -> dict | None:
        """What the manifest adds once every shard is done: nothing for a decode."""
        return None
