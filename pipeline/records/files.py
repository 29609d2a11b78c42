"""The on-disk records of an archive and of its decodes and audits: their names, fields and versions.

Resume trusts exactly these records, so they are read and written only here, and their field names
are the JSON keys (and Parquet columns) that earlier versions wrote. Under an archive prefix::

    NAME.parquet          the rows: ``row.Row`` (its version in the file's key-value metadata)
    NAME.stats.json       ``ShardStats``, written last: the shard's completion marker (``markers``)
    _manifest.json        ``CompressManifest``

Under a decode (audit) output prefix::

    NAME.tar | NAME/      the decoded images (``outputs``)
    NAME.decoded.json     ``DecodedMarker``, written last
    NAME.audit.parquet    an audited shard's ``AuditRow`` s (``AUDIT_SCHEMA``)
    NAME.audited.json     ``AuditedMarker``, written last
    audit.parquet         every audited shard's rows
    _manifest.json        ``DecompressManifest``

A JSON record carries ``record_version``; one without it was written before versions and reads as
version 1. A record from a newer version, or a file that is not such a record, is refused with the
reason (its unit of work is then redone). Nested records stay plain dicts because resume compares
them as written: a file's ``identity`` (``markers``: size plus ETag or mtime) and an output's record
(``storage.atomic_output``: url, bytes, sha256, ETag on S3; ``outputs.write_folder``: url, files, bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import pyarrow as pa

from ..io.storage import Storage, join

RECORD_VERSION = 1

PARQUET_SUFFIX = ".parquet"
STATS_SUFFIX = ".stats.json"
DECODED_SUFFIX = ".decoded.json"
AUDITED_SUFFIX = ".audited.json"
AUDIT_TABLE_SUFFIX = ".audit.parquet"
MANIFEST = "_manifest.json"
AUDIT_FILE = "audit.parquet"

AUDIT_SCHEMA = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("codec_id", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("bpp", pa.float64()), ("psnr", pa.float64()), ("ms_ssim", pa.float64()),
    ("error", pa.string()), ("stored_as", pa.string()),
    ("exact", pa.bool_()),  # the pixels equal the original's (PSNR and MS-SSIM are then null)
    ("alpha_max_error", pa.int16()),  # largest alpha difference, 0..255; null when the original has no alpha
])


class RecordError(ValueError):
    """A file that is not the record it should be (not JSON, not an object, from a newer version)."""


@dataclass
class Record:
    """A JSON record: its dataclass fields are its keys. Reading keeps the fields it knows (a missing
    one takes its default; a missing ``record_version`` is 1) and ignores others."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # fields left out of the JSON while None

    record_version: int = RECORD_VERSION

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self.OPTIONAL:
            if out[name] is None:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: Any):
        if not isinstance(data, dict):
            raise RecordError(f"holds a JSON {type(data).__name__}, not a {cls.__name__} object")
        version = data.get("record_version", 1)
        if not isinstance(version, int) or version > RECORD_VERSION:
            raise RecordError(f"has record_version {version!r}; this diffarc reads up to {RECORD_VERSION} (upgrade it)")
        return cls(**{**{f.name: data[f.name] for f in fields(cls) if f.name in data}, "record_version": version})

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes):
        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            raise RecordError(str(exc) if isinstance(exc, RecordError) else f"is not valid JSON ({exc})") from None

    def write(self, url: str, storage: Storage) -> None:
        storage.write_bytes(url, self.to_json())

    @classmethod
    def read(cls, url: str, storage: Storage):
        """The record at ``url``; ``RecordError`` naming it when it is not one."""
        try:
            return cls.from_json(storage.read_bytes(url))
        except RecordError as exc:
            raise RecordError(f"{url} {exc}") from None


@dataclass
class ShardStats(Record):
    """``NAME.stats.json``: one input shard archived. Resume trusts it while ``output`` still matches the
    Parquet file and ``input`` the input shard (``markers``)."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("paths",)  # absent from records written before it
    shard: str = ""  # the input shard's URL
    name: str = ""
    codec_id: str = ""
    rows: int = 0
    ok: int = 0
    errors: int = 0
    error_rows: list[dict] = field(default_factory=list)  # {key, error}, the first 200
    truncated: str | None = None  # why the input shard ended early, if it did
    bytes_in: int = 0
    image_bytes: int = 0
    bitstream_bytes: int = 0
    parquet_bytes: int = 0
    paths: dict[str, dict] | None = None  # stored_as -> {rows, bytes, orig_bytes, because: {why: n}} (``keeping``)
    input: dict | None = None  # the input shard's identity when it was read
    output: dict | None = None  # the Parquet file's record
    mean_bpp: float | None = None
    seconds: float = 0.0
    encode_seconds: float = 0.0
    images_per_s: float | None = None
    batch_size: int = 0
    started: str = ""
    finished: str = ""
    worker: dict = field(default_factory=dict)  # {host, pid}


@dataclass
class DecodedMarker(Record):
    """``NAME.decoded.json``: one archive file decoded. Resume trusts it while ``input`` is still the archive
    file's record (its ``ShardStats.output``), ``settings`` the run's, and ``output`` the decoded files."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("compress_errors", "fallbacks")  # absent from records written before them
    shard: str = ""  # the archive file's URL
    name: str = ""
    input: dict | None = None
    settings: dict | None = None  # ``DecodeSettings.fingerprint()``
    output: dict | None = None
    rows: int = 0
    decoded: int = 0
    errors: int = 0
    failed_rows: list[dict] = field(default_factory=list)  # {key, error}, every one
    compress_errors: list[dict] | None = None  # {key, error}: the archive's error rows, restored as kept
    fallbacks: list[dict] | None = None  # {key, member, why}: image members written under another name (``restore``)
    renamed: dict[str, str] = field(default_factory=dict)  # safe name -> original key
    bytes_out: int = 0
    seconds: float = 0.0
    started: str = ""
    finished: str = ""
    worker: dict = field(default_factory=dict)  # {host, pid}
    decoder: dict = field(default_factory=dict)  # {peak_rss_bytes, deaths} of the decoding process
    reader: dict = field(default_factory=dict)  # {peak_rss_bytes, bytes_read} of the archive reader


@dataclass
class AuditedMarker(Record):
    """``NAME.audited.json``: one archive file audited against its original shard. As ``DecodedMarker``,
    and ``original`` must still be the original shard's record (url and identity)."""

    shard: str = ""
    name: str = ""
    input: dict | None = None
    original: dict | None = None
    settings: dict | None = None
    output: dict | None = None  # the shard's audit table's record
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    started: str = ""
    finished: str = ""
    worker: dict = field(default_factory=dict)
    decoder: dict = field(default_factory=dict)
    reader: dict = field(default_factory=dict)


@dataclass
class AuditRow:
    """One image of an audit table (``AUDIT_SCHEMA``)."""

    key: str
    shard: str
    codec_id: str
    width: int | None
    height: int | None
    bpp: float | None
    psnr: float | None = None
    ms_ssim: float | None = None  # None below 161 px on the short side
    error: str | None = None
    stored_as: str | None = None  # the row's path (``paths.StoragePath``)
    exact: bool | None = None
    alpha_max_error: int | None = None


def audit_table(rows: list[AuditRow]) -> pa.Table:
    return pa.Table.from_pylist([{f.name: getattr(r, f.name) for f in fields(AuditRow)} for r in rows],
                                schema=AUDIT_SCHEMA)


def audit_rows(table: pa.Table) -> list[AuditRow]:
    names = [n for n in AUDIT_SCHEMA.names if n in table.schema.names]  # tables written before the keeping columns
    return [AuditRow(**row) for row in table.select(names).to_pylist()]


@dataclass
class JobManifest(Record):
    """``_manifest.json``, the part every job writes. Arguments are recorded so the job's parser reads
    them again; URLs are redacted; nothing from the environment is recorded."""

    job: str = ""
    argv: list[str] = field(default_factory=list)
    started: str = ""
    finished: str = ""
    seconds: float = 0.0
    versions: dict[str, str | None] = field(default_factory=dict)  # python and the packages that shape output
    resources: dict = field(default_factory=dict)  # ``actors.Resources`` less its environment
    input: str = ""
    output: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)  # {shard, error}: shards left without a marker


@dataclass
class CompressManifest(JobManifest):
    codec: str = ""  # as given
    codec_id: str = ""  # as resolved: NAME@HASH
    weights_hash: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the encode options used: given, else the codec's own
    settings: dict[str, Any] = field(default_factory=dict)  # ``EncodeSettings``' sizes and storage policy
    bytes: dict[str, int] = field(default_factory=dict)
    paths: dict[str, dict] = field(default_factory=dict)  # as ``ShardStats.paths``, over every shard
    shards: list[dict] = field(default_factory=list)  # {shard, name, rows, errors, truncated, status, bytes, sha256}
    warnings: list[str] = field(default_factory=list)


@dataclass
class DecompressManifest(JobManifest):
    OPTIONAL: ClassVar[tuple[str, ...]] = ("audit",)

    decode: dict[str, Any] = field(default_factory=dict)  # every decode option (as run, where all codecs agree), batch size
    codec_options: dict[str, dict] = field(default_factory=dict)  # codec id -> the decode options it ran with
    codec_ids: dict[str, int] = field(default_factory=dict)  # shards per codec id
    failed_rows: list[dict] = field(default_factory=list)  # {shard, key, error}, the first 1000
    compress_errors: list[dict] = field(default_factory=list)  # {shard, key, error}: error rows of the archive, the first 1000
    fallbacks: list[dict] = field(default_factory=list)  # {shard, key, member, why}: images written under another name, the first 1000
    audit: dict | None = None  # an audit's summary (``audit``)


def parquet_url(out_prefix: str, name: str) -> str:
    return join(out_prefix, name + PARQUET_SUFFIX)


def stats_url(out_prefix: str, name: str) -> str:
    return join(out_prefix, name + STATS_SUFFIX)
