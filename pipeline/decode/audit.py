"""The audit: decode an archive shard against its original shard and measure, keeping no images.

Per archive file ``NAME.audit.parquet`` (per image PSNR, MS-SSIM, bpp, whether the pixels are exact,
the largest alpha error: ``records.AuditRow``; measured on the image file as decompress writes it,
decoded from its bytes and turned as a viewer turns it), then
its marker ``NAME.audited.json``; once every shard is done, ``audit.parquet`` over all of them and a
summary (mean and worst 1 %) for the manifest. Decoding is the decompress job's (``decoding``); a
rerun audits only the shards not audited before from the same archive bytes, originals and settings.
"""

from __future__ import annotations

import io
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

from model import load_image
from model.evaluation.metrics import ms_ssim, psnr

from ..imagefiles.metadata import file_facts
from ..imagefiles.pixels import ImageError
from ..io.shards import Sample, ShardReader
from ..io.storage import Storage, join, redact
from ..records.archive import now, sha256
from ..records.files import (AUDIT_FILE, AUDIT_TABLE_SUFFIX, AUDITED_SUFFIX, AuditedMarker, AuditRow, ShardStats,
                             audit_rows, audit_table)
from ..records.markers import READ_THREADS, identity, read_markers
from ..records.paths import Restored, oriented
from .decoding import Decoder, archive_name, decode_rows, process_records, rows_of, settle
from .summaries import summarize
from .restore import image_member
from .settings import DecodeSettings


def original_record(url: str, storage: Storage) -> dict:
    """What an audit's marker keeps of the original shard: its URL and identity (``markers``)."""
    return {"url": url, **(identity(storage.info(url)) or {})}


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


def _alpha_of(data: bytes) -> bool:
    """Whether a file has alpha in any form; False for one Pillow cannot open (HEIF: measured as bytes)."""
    try:
        return file_facts(data).alpha
    except Exception:  # what it is not, this measure does not need to say
        return False


def written_file(row: dict, restored: Restored) -> bytes:
    """The image member exactly as decompress writes it (``restore``): what the audit measures."""
    member = image_member(row, restored, as_png=False, taken=set(dict(row["metadata"] or [])))
    return member.data


def audit_row(shard: str, row: dict, restored: Restored, original: Sample | None, settings: DecodeSettings) -> AuditRow:
    """One row measured on the file decompress writes, decoded from its bytes and shown as a viewer
    shows it (EXIF orientation applied), against the original shown the same way: ``exact`` (else
    PSNR and MS-SSIM) and the largest alpha error (tRNS transparency counts as alpha)."""
    out = AuditRow(key=row["key"], shard=shard, codec_id=row["codec_id"], width=row["width"], height=row["height"],
                   bpp=row["bpp"], error=restored.error or restored.noted, stored_as=row.get("stored_as"))
    if out.error is not None or (restored.image is None and restored.file is None):  # no image in the sample
        return out
    data = original.members.get(row["member"]) if original is not None else None
    if data is None:
        out.error = "original image not found in the original shard"
    elif row["orig_sha256"] and sha256(data) != row["orig_sha256"]:
        out.error = "original image differs from the archived one (sha256 mismatch)"
    else:
        try:
            written = written_file(row, restored)
        except Exception as exc:  # what decompress reports as a failed row
            out.error = f"restored image could not be written: {exc}"
            return out
        if written == data:  # the file itself (and the only check for formats Pillow cannot decode: HEIF)
            out.exact = True
            out.alpha_max_error = 0 if _alpha_of(data) else None
            return out
        try:
            a = load_image(data, max_pixels=settings.max_pixels).rgb
            b = load_image(written, max_pixels=settings.max_pixels).rgb
        except ImageError as exc:
            out.error = f"written file does not decode: {exc}"
            return out
        if a.shape != b.shape:
            out.error = f"decoded size {b.shape[1]}x{b.shape[0]} differs from original {a.shape[1]}x{a.shape[0]}"
        elif np.array_equal(a, b):
            out.exact = True
        else:
            score = ms_ssim(a, b)  # NaN below 161 px on the short side: stored as null
            out.exact, out.psnr, out.ms_ssim = False, psnr(a, b), None if math.isnan(score) else score
        if out.error is None and (file_facts(data).alpha or file_facts(written).alpha):
            out.alpha_max_error = int(np.abs(_alpha(oriented(data)) - _alpha(oriented(written))).max())
            out.exact = out.exact and out.alpha_max_error == 0
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
        **process_records(decoder, rows_read))
    marker.write(marker_url, storage)
    return marker


@dataclass(frozen=True)
class Auditing:
    """What the decompress job does with each archive file under ``--audit``: audit it against its
    original shard (``originals``: archive name -> original shard URL)."""

    originals: dict[str, str]
    job = "audit"
    doing = "auditing"

    def finished(self, output: str, shards: dict[str, ShardStats], settings: DecodeSettings,
                 storage: Storage) -> tuple[dict, dict]:
        """(markers of the shards audited before and still valid, also against unchanged originals,
        name -> why the others are audited again)."""
        markers = read_markers(output, AUDITED_SUFFIX, AuditedMarker, storage, set(shards))
        names = list(markers.found)
        with ThreadPoolExecutor(READ_THREADS) as pool:
            now_originals = dict(zip(names, pool.map(lambda n: original_record(self.originals[n], storage), names)))

        def unchanged(name: str, marker: AuditedMarker) -> str | None:
            if marker.original == now_originals[name]:
                return None
            return f"the original shard changed since it was audited ({marker.original} -> {now_originals[name]})"

        return settle(markers, shards, settings, storage, "audited", unchanged)

    def submit(self, actor, parquet_url: str, output: str, source: dict):
        return actor.audit.remote(parquet_url, self.originals[archive_name(parquet_url)], output, source)

    def conclude(self, names: list[str], output: str, storage: Storage) -> dict:
        """Write ``audit.parquet`` over the shards ``names``; its summary, for the manifest."""
        return merge_audit(names, output, storage)


def merge_audit(names: list[str], output: str, storage: Storage) -> dict:
    """``audit.parquet``: the tables of the shards ``names`` (audited now or before), in name order;
    returns its summary."""
    rows = [row for n in sorted(names)
            for row in audit_rows(pq.read_table(io.BytesIO(storage.read_bytes(join(output, n + AUDIT_TABLE_SUFFIX)))))]
    with storage.atomic_output(join(output, AUDIT_FILE)) as f:
        pq.write_table(audit_table(rows), f, compression="zstd")
    return {"file": redact(join(output, AUDIT_FILE)), "images": len(rows),
            "errors": sum(r.error is not None for r in rows),
            "exact": sum(bool(r.exact) for r in rows),  # pixels equal to the original's: not in the PSNR figures
            "alpha_max_error": max((r.alpha_max_error for r in rows if r.alpha_max_error is not None), default=None),
            "psnr_db": summarize([r.psnr for r in rows]),
            "ms_ssim": summarize([r.ms_ssim for r in rows]),
            "bpp": summarize([r.bpp for r in rows if r.error is None], higher_is_better=False)}


def summary_line(audit: dict) -> str:
    """The summary as the job prints it."""
    def fmt(name: str, s: dict, unit: str = "") -> str:
        if not s["n"]:
            return f"{name} n/a"
        return f"{name} mean {s['mean']:.4g}{unit}, worst 1% {s['worst_1pct']:.4g}{unit} (n={s['n']})"

    alpha = audit.get("alpha_max_error")
    return (f"audit: {audit['images']} images, {audit['errors']} errors, {audit.get('exact', 0)} exact"
            f"{'' if alpha is None else f', alpha max error {alpha}'}; "
            + "; ".join([fmt("PSNR", audit["psnr_db"], " dB"), fmt("MS-SSIM", audit["ms_ssim"]), fmt("bpp", audit["bpp"])])
            + f"; per image: {audit['file']}")
