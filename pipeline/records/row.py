"""One archive row, typed: the Arrow schema, the readers' column lists and the writer all come from ``Row``.

A new column is a field here, with its Arrow type and whether decoding reads it (``read``), plus the
code that gives it its value (``encode.encoding.to_row``) or uses it (``decode.restore``, ``decode.audit``).
The field order is the on-disk column order; ``ROW_VERSION`` moves when the schema changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pyarrow as pa

# 2: stored_as, stored_because, image_info (``encode.keeping``); a version-1 row is a codec or error row
# 3: encode_settings (``Codec.describe``: what rate control chose per image)
# 4: notes (what a coded row's file carried that is not kept, a name that lied about the format, a
#    repeated member name); decoding reads orig_format (in every version) to write the content's format
# 5: pixels_sha256 (a ``lossless`` row's pixels as its kept bytes decode, checked at compress time)
ROW_VERSION = 5
ROW_VERSION_KEY = b"diffarc.row_version"


def column(arrow: pa.DataType, *, nullable: bool = True, read: bool = False, big: bool = False, since: int = 1,
           default=None):
    """A ``Row`` field: its Arrow type; ``read``: decoding and auditing read it (``decode.archive_rows``);
    ``big``: a row's size is made of it (bytes, or a map of bytes) and the writer bounds it; ``since``:
    the row version that added it (a read column absent from older files reads as null)."""
    meta = {"arrow": arrow, "nullable": nullable, "read": read, "big": big, "since": since}
    return field(default_factory=list, metadata=meta) if default == [] else field(default=default, metadata=meta)


Pairs = list[tuple[str, bytes]]  # an Arrow map as Python gives and takes it


@dataclass
class Row:
    key: str = column(pa.string(), nullable=False, read=True, default="")
    shard: str = column(pa.string(), nullable=False, default="")  # source shard URL
    member: str | None = column(pa.string(), read=True)  # extension of the image member: jpg, png, ...
    codec_id: str = column(pa.string(), nullable=False, read=True, default="")
    # the kept bytes (``stored_as``); an error row's original file, or null
    bitstream: bytes | None = column(pa.binary(), read=True, big=True)
    # ``records.paths.StoragePath``: codec, lossless, jpeg-xl, original, none; null: nothing kept
    stored_as: str | None = column(pa.string(), read=True, since=2)
    stored_because: str | None = column(pa.string(), read=True, since=2)  # policy, alpha, 16-bit, too small, ...
    # exif, icc_profile, xmp, text:KEY (``pipeline.imagefiles.metadata``)
    image_info: Pairs = column(pa.map_(pa.string(), pa.binary()), read=True, big=True, since=2, default=[])
    width: int | None = column(pa.int32(), read=True)  # as encoded (after EXIF orientation)
    height: int | None = column(pa.int32(), read=True)
    orig_mode: str | None = column(pa.string())  # Pillow mode of the original: RGB, L, CMYK, I;16, P...
    orig_format: str | None = column(pa.string(), read=True)  # JPEG, PNG, ...
    orientation: int | None = column(pa.int16())  # EXIF orientation applied (1 = none)
    frames: int | None = column(pa.int32())  # frames in the original; the first one is archived
    orig_bytes: int | None = column(pa.int64())
    orig_sha256: str | None = column(pa.string(), read=True)
    # ``lossless`` rows: ``records.paths.pixels_sha256`` of the pixels they give back (the same as the
    # original's, proven at compress time), so verify checks them without the originals
    pixels_sha256: str | None = column(pa.string(), read=True, since=5)
    bpp: float | None = column(pa.float64(), read=True)  # whole bitstream (header included) over width*height
    encode_ms: float | None = column(pa.float32())  # the batch's encode time over its size
    # a coded row's encode settings as its bitstream records them (cdc-avif: quality, effort, speed...)
    encode_settings: list[tuple[str, str]] = column(pa.map_(pa.string(), pa.string()), since=3, default=[])
    error: str | None = column(pa.string(), read=True)  # null when the row is fine
    notes: list[str] | None = column(pa.list_(pa.string()), since=4)  # what was not kept and why, and other facts
    metadata: Pairs = column(pa.map_(pa.string(), pa.binary()), read=True, big=True, default=[])  # other members

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in ROW_FIELDS}

    def nbytes(self) -> int:
        """The bytes of its big columns: the bitstream plus the names and contents of its maps."""
        return sum(len(v) if isinstance(v, bytes) else sum(len(k) + len(x) for k, x in v or [])
                   for v in (getattr(self, name) for name in BIG_COLUMNS))

    def refuse(self, error: str) -> None:
        """Make it an error row that keeps nothing (the writer's cap): its big columns emptied."""
        for f in ROW_FIELDS:
            if f.metadata["big"]:
                setattr(self, f.name, None if pa.types.is_binary(f.metadata["arrow"]) else [])
        self.stored_as = self.bpp = self.encode_ms = None
        self.error = error


ROW_FIELDS = fields(Row)
ROW_SCHEMA = pa.schema([pa.field(f.name, f.metadata["arrow"], nullable=f.metadata["nullable"]) for f in ROW_FIELDS],
                       metadata={ROW_VERSION_KEY: str(ROW_VERSION).encode()})
BIG_COLUMNS = tuple(f.name for f in ROW_FIELDS if f.metadata["big"])  # what a row's size is made of
MAP_COLUMNS = tuple(f.name for f in ROW_FIELDS if f.metadata["big"] and pa.types.is_map(f.metadata["arrow"]))
# What decoding and auditing read of a row (``decode.archive_rows``): the rest is for people and future readers.
READ_COLUMNS = [f.name for f in ROW_FIELDS if f.metadata["read"]]
KEPT_COLUMNS = tuple(f.name for f in ROW_FIELDS if f.metadata["read"] and f.metadata["since"] > 1)  # null when absent
