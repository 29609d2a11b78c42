"""Decode one archive shard: Parquet rows -> batched codec.decode -> WebDataset tar or PNG files,
or (audit) -> PSNR / MS-SSIM / bpp against the original shard, without keeping decoded images.

The decode options (``steps``, ``gamma``, ``seed``, ...) are passed to every codec that declares them
and recorded by the job;
batches are formed in row order with a fixed size, so a rerun with the same arguments reproduces
a stochastic decode.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow.parquet as pq

from model import load_image, ms_ssim, psnr
from model.metadata import file_facts

from .archive import RowGroups, now, sha256
from .archive_rows import ArchiveRows, ReadRequest
from .batches import call_batched
from .faults import is_infrastructure
from .keeping import oriented
from .encoding import JOB_MAX_PIXELS
from .markers import identity
from .names import UniqueNames, safe_ext, safe_name
from .outputs import write_folder
from .records import (AUDIT_TABLE_SUFFIX, AUDITED_SUFFIX, DECODED_SUFFIX, PARQUET_SUFFIX, AuditedMarker, AuditRow,
                      DecodedMarker, audit_table)
from .sandbox import Limits
from .restore import Restored, needs_codec, restore_kept, sample_members
from .shards import Sample, ShardReader, write_tar
from .storage import Storage, basename, join

FORMATS = ("webdataset", "png")


@dataclass(frozen=True)
class DecodeSettings:
    options: dict[str, Any] = field(default_factory=dict)  # decode options; each codec takes those it declares
    batch_size: int = 16
    format: str = "webdataset"
    keys: frozenset[str] | None = None  # only these keys; None: all
    max_pixels: int = JOB_MAX_PIXELS  # decode refuses larger headers; also caps originals in audits
    row_groups: RowGroups = RowGroups()  # what the archive is held to: larger row groups and rows are refused
    weights_dir: str | None = None  # where codec weights are looked up; None: model/weights
    limits: Limits = Limits()  # of the process that decodes (``sandbox``)

    def fingerprint(self) -> dict:
        """What a decoded shard depends on, kept in its marker: other settings mean decoding again."""
        keys = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest() if self.keys is not None else None
        return {"options": dict(sorted(self.options.items())), "format": self.format, "keys_sha256": keys,
                "batch_size": self.batch_size, "max_pixels": self.max_pixels,
                "max_row_group_bytes": self.row_groups.bytes}


def archive_name(parquet_url: str) -> str:
    return safe_name(basename(parquet_url)[: -len(PARQUET_SUFFIX)])


def rows_of(parquet_url: str, settings: DecodeSettings, storage: Storage) -> ArchiveRows:
    """The selected rows of one archive file, in blocks of ``batch_size`` stored rows, refused where the
    file breaks the writer's bounds (``archive_rows``)."""
    return ArchiveRows(ReadRequest(parquet_url, storage, settings.batch_size, settings.keys, settings.row_groups))


def original_record(url: str, storage: Storage) -> dict:
    """What an audit's marker keeps of the original shard: its URL and identity (``markers``)."""
    return {"url": url, **(identity(storage.info(url)) or {})}


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
            return codec.decode(batch, **codec.select_options("decode", settings.options))

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
    archive's error rows (restored as far as they were kept: their file, their other members).
    """
    name, t0, started = archive_name(parquet_url), time.perf_counter(), now()
    marker_url = join(out_prefix, name + DECODED_SUFFIX)
    storage.remove(marker_url)  # from an earlier run: never let it vouch for what is rewritten now
    failures: list[dict] = []
    noted: list[dict] = []  # rows that were error rows at compress time: reported, restored as far as they were kept
    counts = {"decoded": 0}
    unique, renamed = UniqueNames(), {}

    rows_read = rows_of(parquet_url, settings, storage)

    def samples() -> Iterator[Sample]:
        for rows in rows_read:
            for row, restored in zip(rows, decode_rows(decoder, rows)):
                if restored.error:
                    failures.append({"key": row["key"], "error": restored.error})
                    continue
                if restored.noted:
                    noted.append({"key": row["key"], "error": restored.noted})
                members = sample_members(row, restored, as_png=settings.format == "png")
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
        failed_rows=failures, compress_errors=noted or None, renamed=renamed, bytes_out=output["bytes"],
        seconds=round(time.perf_counter() - t0, 4), started=started, finished=now(), **_process_records(decoder, rows_read))
    marker.write(marker_url, storage)
    return marker


class _Originals:
    """Original samples by key, streamed in step with the archive (same order), skipping ahead."""

    def __init__(self, url: str, storage: Storage, wanted: frozenset[str] | None):
        self.samples, self.wanted, self.seen = iter(ShardReader(url, storage)), wanted, {}

    def get(self, key: str) -> Sample | None:
        if key in self.seen:
            return self.seen.pop(key)
        for s in self.samples:
            if s.key == key:
                return s
            if self.wanted is None or s.key in self.wanted:
                self.seen[s.key] = s
        return None


def _alpha(img) -> np.ndarray:
    return np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.int16)


def audit_row(shard: str, row: dict, restored: Restored, original: Sample | None, settings: DecodeSettings) -> AuditRow:
    out = AuditRow(key=row["key"], shard=shard, codec_id=row["codec_id"], width=row["width"], height=row["height"],
                   bpp=row["bpp"], error=restored.error or restored.noted, stored_as=row.get("stored_as"))
    if out.error is not None or (restored.image is None and restored.file is None):
        return out
    data = original.members.get(row["member"]) if original is not None else None
    if data is None:
        out.error = "original image not found in the original shard"
    elif row["orig_sha256"] and sha256(data) != row["orig_sha256"]:
        out.error = "original image differs from the archived one (sha256 mismatch)"
    else:
        a = load_image(data, max_pixels=settings.max_pixels).rgb
        if restored.image is not None:
            img, b = restored.image, np.asarray(restored.image.convert("RGB"), dtype=np.uint8)
        else:  # the kept file: read as the original is
            img, b = oriented(restored.file), load_image(restored.file, max_pixels=settings.max_pixels).rgb
        if a.shape != b.shape:
            out.error = f"decoded size {b.shape[1]}x{b.shape[0]} differs from original {a.shape[1]}x{a.shape[0]}"
        elif np.array_equal(a, b):
            out.exact = True
        else:
            score = ms_ssim(a, b)  # NaN below 161 px on the short side: stored as null
            out.exact, out.psnr, out.ms_ssim = False, psnr(a, b), None if math.isnan(score) else score
        if out.error is None and file_facts(data).alpha:
            out.alpha_max_error = int(np.abs(_alpha(oriented(data)) - _alpha(img)).max())
    return out


def audit_shard(decoder: Decoder, parquet_url: str, original_url: str, out_prefix: str, settings: DecodeSettings,
                storage: Storage, report: Callable[[dict], None] = lambda e: None,
                source: dict | None = None) -> AuditedMarker:
    """Per-image PSNR, MS-SSIM and bpp of one archive file against its original shard, written as
    ``NAME.audit.parquet`` under ``out_prefix``, then its marker ``NAME.audited.json`` (``markers``:
    the table's record, the archive file's (``source``, as in ``decode_shard``) and the original
    shard's identity, the settings), which is also returned."""
    name, t0, started = archive_name(parquet_url), time.perf_counter(), now()
    marker_url = join(out_prefix, name + AUDITED_SUFFIX)
    storage.remove(marker_url)  # from an earlier run: never let it vouch for what is rewritten now
    original = original_record(original_url, storage)  # before the shard: a change while it is read shows next run
    originals, out = _Originals(original_url, storage, settings.keys), []
    rows_read = rows_of(parquet_url, settings, storage)
    for rows in rows_read:
        for row, restored in zip(rows, decode_rows(decoder, rows)):
            sample = originals.get(row["key"]) if restored.error is None and row["member"] else None
            out.append(audit_row(name, row, restored, sample, settings))
        report({"shard": parquet_url, "images": len(rows), "pid": os.getpid()})
    output: dict = {}
    with storage.atomic_output(join(out_prefix, name + AUDIT_TABLE_SUFFIX), record=output) as f:
        pq.write_table(audit_table(out), f, compression="zstd")
    marker = AuditedMarker(
        shard=parquet_url, name=name, input=source, original=original, settings=settings.fingerprint(),
        output=output, rows=len(out), errors=sum(r.error is not None for r in out),
        seconds=round(time.perf_counter() - t0, 4), started=started, finished=now(),
        **_process_records(decoder, rows_read))
    marker.write(marker_url, storage)
    return marker


def _process_records(decoder: Decoder, rows_read: ArchiveRows) -> dict:
    """What a shard's marker says about the processes that did the work."""
    return {"worker": {"host": socket.gethostname(), "pid": os.getpid()},
            "decoder": {"peak_rss_bytes": getattr(decoder, "peak_rss_bytes", None),
                        "deaths": getattr(decoder, "deaths", None)},
            "reader": rows_read.record}
