"""An archive checked without its originals (``diffarc-verify``): each shard's file against the sha256
its marker and the manifest hold (written at compress time), every row read as the decoder reads it
(``decode.archive_rows``: bounded, in a child), and every row's kept bytes by its path:

- ``original`` and ``jpeg-xl`` rows (and error rows that kept their file): the file restored by the
  path's rule (``records.paths.RESTORE``) must have the row's ``orig_sha256``;
- ``lossless`` rows: the JPEG XL pixels decode to the row's width and height (the row records the
  original PNG's hash, not its pixels', so no byte comparison is possible);
- ``codec`` rows: the container (``model.format.unpack``: magic, version, CRC-32), its size against the
  row's, and the codec's own header parse (``Codec.parse`` and ``describe``: the codec id, the pixel cap,
  cdc-avif's AVIF base header); ``decode=True`` also decodes them, in the decoding sandbox.

Each failure names the shard, the key (where it is a row's), the check, why and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Iterator

from model import BitstreamError, load_codec_for_id, unpack

from ..decode.archive_rows import ArchiveRows, ReadRequest
from ..decode.settings import DecodeSettings
from ..decode.restore import restore_kept, stored_as
from ..decode.sandbox import DecoderProcess
from ..io.faults import InfrastructureError, PermanentError
from ..io.storage import Storage, is_local, redact
from ..records.archive import RowGroups
from ..records.index import index_name, read as read_index
from ..records.paths import StoragePath, pixels_sha256
from .listing import ArchiveFiles, Shard

BATCH = 64  # rows per block read (and per decode call)
FILE_KEPT = (StoragePath.ORIGINAL.value, StoragePath.JPEG_XL.value)
CHANGED = ("the file changed after the compress job wrote it: restore it from a copy, or run the compress job "
           "again with the same arguments (it redoes a shard whose file does not match its marker)")


@dataclass
class Problem:
    """One thing that failed (or a warning): where, which check, why, and what to do."""

    shard: str
    key: str | None
    check: str
    why: str
    fix: str = ""

    def line(self) -> str:
        where = self.shard + (f" key {self.key!r}" if self.key is not None else "")
        return f"{where}: {self.check}: {self.why}" + (f" (fix: {self.fix})" if self.fix else "")


@dataclass
class ShardVerdict:
    name: str
    rows: int = 0
    checked: Counter = field(default_factory=Counter)  # check -> rows or files that passed it
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def check_index(shard: Shard, keys: list[str], storage: Storage) -> list[Problem] | None:
    """The shard's key index (``records.index``, ``NAME.index.arrow``) against its verified Parquet file: the
    same keys in the same order, for this file (size, sha256). None where there is no index (archives written
    before it): no failure, readers fall back to the key column."""
    parquet = shard.name + ".parquet"
    url = shard.url[: -len(parquet)] + index_name(parquet)
    fix = f"rebuild it: diffarc-index {redact(shard.url[: -len(parquet)])} --overwrite"
    if not storage.exists(url):
        return None
    try:
        index = read_index(url, storage)
    except (OSError, ValueError) as exc:
        return [Problem(shard.name, None, "index", str(exc), fix)]
    if shard.stats is not None and not index.current(shard.size, shard.stats):
        return [Problem(shard.name, None, "index", f"{index_name(parquet)} indexes another version of the "
                        f"file ({index.parquet_bytes} bytes, sha256 {index.parquet_sha256})", fix)]
    if index.keys != keys:
        return [Problem(shard.name, None, "index", f"{index_name(parquet)} lists other keys than the file holds "
                        f"({len(index.keys)} against {len(keys)} rows)", fix)]
    return []


class Codecs:
    """The codecs of the archive's codec ids, loaded once (shared by the shard threads); a codec id whose
    codec is not here is remembered with why."""

    def __init__(self, weights_dir: str | None = None):
        self.loaded, self.missing, self.lock, self.weights_dir = {}, {}, threading.Lock(), weights_dir

    def get(self, codec_id: str):
        with self.lock:
            if codec_id not in self.loaded and codec_id not in self.missing:
                try:
                    self.loaded[codec_id] = load_codec_for_id(codec_id, weights_dir=self.weights_dir)
                except Exception as exc:  # BitstreamError, WeightsError: no such weights here
                    self.missing[codec_id] = str(exc)
            return self.loaded.get(codec_id)


@contextlib.contextmanager
def local_copy(url: str, storage: Storage) -> Iterator[tuple[str, str, int]]:
    """(a local path of the file at ``url``, its sha256, its size): the file itself when local, else a
    temporary copy hashed on the way down (the file is read once)."""
    fs, path = storage.fs(url)
    if is_local(url):  # a path or a file:// URL
        with open(path, "rb") as f:
            yield path, hashlib.file_digest(f, "sha256").hexdigest(), os.path.getsize(path)
        return
    fd, tmp = tempfile.mkstemp(prefix="diffarc-verify-", suffix=".parquet")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb", block_size=8 << 20) as f:
            while chunk := storage.retrying(lambda: f.read(8 << 20), f"reading {url}"):
                digest.update(chunk)
                out.write(chunk)
        yield tmp, digest.hexdigest(), os.path.getsize(tmp)
    finally:
        os.remove(tmp)


def checksum_problems(shard: Shard, sha256: str, size: int, manifest_entry: dict | None) -> tuple[list, list]:
    """(failures, warnings) of a shard file's bytes against its marker and the manifest."""
    record = (shard.stats.output or {}) if shard.stats else {}
    failures, warnings, wrong = [], [], {}  # (bytes, sha256) recorded -> where
    for source, rec in (("its marker", record), ("the manifest", manifest_entry or {})):
        if rec.get("sha256") and (rec["sha256"], rec.get("bytes", size)) != (sha256, size):
            wrong.setdefault((rec.get("bytes"), rec["sha256"]), []).append(source)
    for (nbytes, recorded), sources in wrong.items():
        failures.append(Problem(shard.name, None, "checksum",
                                f"{redact(shard.url)} is {size} bytes with sha256 {sha256[:16]}..., {' and '.join(sources)} "
                                f"record{'s' if len(sources) == 1 else ''} {nbytes} bytes with sha256 {recorded[:16]}...",
                                CHANGED))
    if shard.stats is not None and not record.get("sha256"):  # no marker at all: a failure already
        warnings.append(Problem(shard.name, None, "checksum", "no checksum recorded (its marker predates them): "
                                "the rows are checked, the file as a whole is not"))
    return failures, warnings


def row_problems(row: dict, shard: str, codecs: Codecs, fix: str, decoded=None) -> tuple[str, Problem | None]:
    """(the check this row took, its failure or None). ``fix``: what to do about a failed row;
    ``decoded``: the codec's (image, error) when decoding."""
    path = stored_as(row)
    if row.get("refused"):
        check, why = "readable", row["refused"]
    elif path in FILE_KEPT or path == StoragePath.LOSSLESS.value:
        check, why = kept_problem(row, path)
    elif path == StoragePath.CODEC.value and row["error"] is None:
        check, why = codec_problem(row, codecs, decoded)
    else:  # no image kept: a sample without one, an error row without its file (or of version 1)
        check, why = "unchecked", None
    return check, Problem(shard, row["key"], check, why, fix) if why else None


def kept_problem(row: dict, path: str) -> tuple[str, str | None]:
    """(check, why it failed or None) of a row that keeps a file or lossless pixels."""
    restored = restore_kept(row)
    if restored.error:
        return "restore", f"{path} row: {restored.error}"
    if restored.file is not None:
        if row.get("orig_sha256") is None:
            return "sha256", f"{path} row records no orig_sha256"
        digest = hashlib.sha256(restored.file).hexdigest()
        if digest != row["orig_sha256"]:
            return "sha256", (f"the {path} row restores {len(restored.file)} bytes with sha256 {digest[:16]}..., "
                              f"the original's was {row['orig_sha256'][:16]}...")
        return "sha256", None
    img, size = restored.image, (row["width"], row["height"])
    if img is not None and img.size != size:
        return "restore", f"lossless pixels are {img.size[0]}x{img.size[1]}, the row says {size[0]}x{size[1]}"
    if img is not None and row.get("pixels_sha256"):  # rows of version 5 on: the pixels, proven at compress time
        digest = pixels_sha256(img)
        if digest != row["pixels_sha256"]:
            return "pixels", (f"the lossless row decodes to pixels with sha256 {digest[:16]}..., the original's "
                              f"were {row['pixels_sha256'][:16]}...")
        return "pixels", None
    return "restore", None


def codec_problem(row: dict, codecs: Codecs, decoded: tuple | None) -> tuple[str, str | None]:
    """(check, why it failed or None) of a codec row: its container, header and codec parse, or decode."""
    try:
        container = unpack(row["bitstream"] or b"")
        if (container.width, container.height) != (row["width"], row["height"]):
            raise BitstreamError(f"its header says {container.width}x{container.height}, the row "
                                 f"{row['width']}x{row['height']}")
        codec = codecs.get(row["codec_id"])
        if codec is not None:
            codec.parse(row["bitstream"])
            codec.describe(row["bitstream"])
    except BitstreamError as exc:
        return "container", str(exc)
    if decoded is None:
        return "container", None
    return "decode", decoded[1]


def verify_shard(shard: Shard, manifest_entry: dict | None, storage: Storage, codecs: Codecs,
                 row_groups: RowGroups, decoder: DecoderProcess | None = None) -> ShardVerdict:
    """Every check of one shard (the module doc); ``decoder``: decode its codec rows with it too."""
    verdict = ShardVerdict(shard.name)
    if (why := shard.incomplete()) is not None:
        verdict.failures.append(Problem(shard.name, None, "complete", why))
        if shard.size is None:
            return verdict
    try:
        with local_copy(shard.url, storage) as (path, sha256, size):
            failures, warnings = checksum_problems(shard, sha256, size, manifest_entry)
            verdict.failures += failures
            verdict.warnings += warnings
            verdict.checked["checksum"] += not failures and not warnings
            keys = read_rows(shard, path, row_groups, codecs, decoder, verdict)
            if not failures:  # a file that is not the one its marker vouches for fails already
                index_problems = check_index(shard, keys, storage)
                if index_problems is not None:
                    verdict.failures += index_problems
                    verdict.checked["index"] += not index_problems
    except OSError as exc:  # gone since the listing, or the store failed after its retries
        verdict.failures.append(Problem(shard.name, None, "readable", f"reading {redact(shard.url)}: {exc}"))
    return verdict


def read_rows(shard: Shard, path: str, row_groups: RowGroups, codecs: Codecs, decoder, verdict: ShardVerdict) -> list[str]:
    """Check every row of the local file ``path`` into ``verdict``; the keys in stored order."""
    keys: list[str] = []
    source = redact(shard.stats.shard) if shard.stats is not None else "its input shard"
    fix = f"re-archive the shard: compress --overwrite with --input {source} (the marker vouches for the file)"
    try:
        for rows in ArchiveRows(ReadRequest(path, Storage(), BATCH, None, row_groups)):
            decoded = decode_codec_rows(decoder, rows) if decoder is not None else {}
            for i, row in enumerate(rows):
                keys.append(row["key"])
                check, problem = row_problems(row, shard.name, codecs, fix, decoded.get(i))
                if problem is not None:
                    verdict.failures.append(problem)
                else:
                    verdict.checked[check] += 1
            verdict.rows += len(rows)
    except (PermanentError, InfrastructureError) as exc:
        why = str(exc).replace(path, redact(shard.url))  # a remote shard was read from its local copy
        verdict.failures.append(Problem(shard.name, None, "readable", f"after {verdict.rows} rows: {why}"))  # says the fix
    return keys


def decode_codec_rows(decoder: DecoderProcess, rows: list[dict]) -> dict[int, tuple]:
    """Row index -> (image, error) for the codec rows of ``rows`` whose container reads, decoded by codec id."""
    by_codec: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if stored_as(r) == StoragePath.CODEC.value and r["error"] is None and not r.get("refused"):
            by_codec.setdefault(r["codec_id"], []).append(i)
    out = {}
    for codec_id, idx in by_codec.items():
        out.update(zip(idx, decoder(codec_id, [rows[i]["bitstream"] for i in idx])))
    return out


@dataclass
class Verification:
    files: ArchiveFiles
    shards: list[ShardVerdict]
    codecs_missing: dict[str, str]  # codec id -> why its header parse was left out

    def failures(self) -> list[Problem]:
        """Every shard's, then each input shard the manifest says the compress job failed (it left no file)."""
        failed = self.files.manifest.failures if self.files.manifest else []
        return [p for v in self.shards for p in v.failures] + [
            Problem(f.get("shard", "?"), None, "complete", f"the compress job failed this input shard: {f.get('error')}",
                    "run the compress job again with the same arguments") for f in failed]

    def warnings(self) -> list[Problem]:
        out = [p for v in self.shards for p in v.warnings]
        if self.files.manifest_problem:
            out.append(Problem("_manifest.json", None, "manifest", self.files.manifest_problem))
        out += [Problem("*", None, "container", f"codec {cid} is not available here ({why}): its rows' containers "
                        "are checked, not the codec's own header parse", "--weights-dir") for cid, why in
                sorted(self.codecs_missing.items())]
        return out

    def summary(self) -> dict:
        checked = sum((v.checked for v in self.shards), Counter())
        return {"archive": redact(self.files.url), "ok": not self.failures(), "shards": len(self.shards),
                "rows": sum(v.rows for v in self.shards), "passed": dict(sorted(checked.items())),
                "failures": [p.__dict__ for p in self.failures()], "warnings": [p.__dict__ for p in self.warnings()]}


def verify_archive(files: ArchiveFiles, storage: Storage, *, threads: int = 4, decode_settings: DecodeSettings | None = None,
                   weights_dir: str | None = None, report: Callable[[ShardVerdict, int, int], None] = lambda v, i, n: None
                   ) -> Verification:
    """Every shard of ``files`` verified (``threads`` at a time), ``report`` called as each one ends."""
    manifest = files.manifest
    entries = {s.get("name"): s for s in (manifest.shards if manifest else [])}
    settings = manifest.settings if manifest else {}
    row_groups = RowGroups(settings.get("row_group_rows", RowGroups.rows), settings.get("row_group_bytes", RowGroups.bytes))
    codecs = Codecs(weights_dir)
    shards = list(files.shards.values())
    verdicts: list[ShardVerdict] = []
    decoders, mine = [], threading.local()  # one decoding process per thread, its networks loaded once

    def verify(shard: Shard) -> ShardVerdict:
        if decode_settings is not None and not hasattr(mine, "decoder"):
            mine.decoder = DecoderProcess(decode_settings)
            decoders.append(mine.decoder)
        return verify_shard(shard, entries.get(shard.name), storage, codecs, row_groups, getattr(mine, "decoder", None))

    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for done, future in enumerate(as_completed([pool.submit(verify, s) for s in shards]), 1):
                verdicts.append(future.result())
                report(verdicts[-1], done, len(shards))
    finally:
        for decoder in decoders:
            decoder.close()
    return Verification(files, sorted(verdicts, key=lambda v: v.name), dict(codecs.missing))
