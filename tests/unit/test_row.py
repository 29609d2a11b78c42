"""The typed row: the schema it derives is the one archives were written with, old files read, and
every storage path has its restore rule."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.decode.archive_rows import ArchiveRows, ReadRequest
from pipeline.decode.restore import restore_kept
from pipeline.io.storage import Storage
from pipeline.records.archive import ArchiveWriter, RowGroups
from pipeline.records.paths import RESTORE, StoragePath
from pipeline.records.row import (BIG_COLUMNS, KEPT_COLUMNS, MAP_COLUMNS, READ_COLUMNS, ROW_FIELDS, ROW_SCHEMA,
                                  ROW_VERSION_KEY, Row)

MAP = pa.map_(pa.string(), pa.binary())
SCHEMA_BEFORE_ROW = pa.schema(  # the literal ``records.ROW_SCHEMA`` of row version 4, before ``Row`` derived it
    [
        pa.field("key", pa.string(), nullable=False), pa.field("shard", pa.string(), nullable=False),
        pa.field("member", pa.string()), pa.field("codec_id", pa.string(), nullable=False),
        pa.field("bitstream", pa.binary()), pa.field("stored_as", pa.string()), pa.field("stored_because", pa.string()),
        pa.field("image_info", MAP), pa.field("width", pa.int32()), pa.field("height", pa.int32()),
        pa.field("orig_mode", pa.string()), pa.field("orig_format", pa.string()), pa.field("orientation", pa.int16()),
        pa.field("frames", pa.int32()), pa.field("orig_bytes", pa.int64()), pa.field("orig_sha256", pa.string()),
        pa.field("bpp", pa.float64()), pa.field("encode_ms", pa.float32()),
        pa.field("encode_settings", pa.map_(pa.string(), pa.string())), pa.field("error", pa.string()),
        pa.field("notes", pa.list_(pa.string())), pa.field("metadata", MAP),
    ],
    metadata={b"diffarc.row_version": b"4"},
)
V2_COLUMNS = ("stored_as", "stored_because", "image_info", "encode_settings", "notes")  # not in version-1 files


def test_the_derived_schema_is_the_one_archives_were_written_with():
    """Version 4's literal schema plus version 5's ``pixels_sha256`` after ``orig_sha256``."""
    at = SCHEMA_BEFORE_ROW.get_field_index("orig_sha256") + 1
    version5 = SCHEMA_BEFORE_ROW.insert(at, pa.field("pixels_sha256", pa.string())).with_metadata(
        {b"diffarc.row_version": b"5"})
    assert ROW_SCHEMA.equals(version5, check_metadata=True)
    assert ROW_SCHEMA.metadata[ROW_VERSION_KEY] == b"5"
    assert set(READ_COLUMNS) == {"key", "member", "codec_id", "bitstream", "width", "height", "bpp", "orig_sha256",
                                 "error", "metadata", "stored_as", "stored_because", "image_info", "orig_format",
                                 "pixels_sha256"}
    assert BIG_COLUMNS == ("bitstream", "image_info", "metadata") and KEPT_COLUMNS == (*V2_COLUMNS[:3], "pixels_sha256")
    assert MAP_COLUMNS == ("image_info", "metadata")


def test_every_storage_path_has_a_rule_or_the_codec():
    assert set(RESTORE) | {StoragePath.CODEC} == set(StoragePath)
    assert [p for p in StoragePath if p.pixels] == [StoragePath.CODEC, StoragePath.LOSSLESS]


def test_a_version_1_archive_reads_and_restores(tmp_path):
    """A file written before the keeping columns reads, those columns null; its error row is reported as one."""
    rows = [Row(key="bad", shard="s", codec_id="c", member="jpg", bitstream=b"the file", error="broken"),
            Row(key="ok", shard="s", codec_id="c", member="png", bitstream=b"bits", width=1, height=1)]
    table = pa.Table.from_pylist([r.to_dict() for r in rows], schema=ROW_SCHEMA)
    pq.write_table(table.drop_columns(list(V2_COLUMNS)), tmp_path / "v1.parquet")
    read = [r for block in ArchiveRows(ReadRequest(str(tmp_path / "v1.parquet"), Storage(), 8, None, RowGroups()))
            for r in block]
    assert [r["key"] for r in read] == ["bad", "ok"] and all(r[c] is None for r in read for c in KEPT_COLUMNS)
    assert restore_kept(read[0]).noted == "archived as an error row: broken"
    assert restore_kept(read[0]).file is None  # a version-1 error row says nothing of how it was kept


def test_the_writers_row_cap_empties_the_big_columns_and_keeps_the_reason(tmp_path):
    row = Row(key="k", shard="s", codec_id="c", bitstream=b"x" * 50, stored_as="codec", stored_because="policy",
              image_info=[("exif", b"e" * 50)], metadata=[("txt", b"t")], bpp=1.0)
    with open(tmp_path / "a.parquet", "wb") as f:
        writer = ArchiveWriter(f, RowGroups(rows=1, bytes=100))
        writer.add(row)
        writer.close()
    stored = pq.read_table(tmp_path / "a.parquet").to_pylist()[0]
    assert (stored["bitstream"], stored["image_info"], stored["metadata"], stored["stored_as"]) == (None, [], [], None)
    assert stored["stored_because"] == "policy" and "take 108 bytes" in stored["error"]


def test_the_docs_describe_every_column():
    """docs/archive.md's row table names each column of ``Row`` once, in order, with its read flag."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "archive.md").read_text()
    table = page.split("## The row", 1)[1].split("\n## ", 1)[0]
    documented = []  # (column, read) in the table's order; "`width`, `height`" is two columns
    for cells in re.findall(r"^\| (`[^|]+`) \| [^|]+ \| (read)? ?\|", table, re.MULTILINE):
        documented += [(name, cells[1] == "read") for name in re.findall(r"`(\w+)`", cells[0])]
    assert documented == [(f.name, f.metadata["read"]) for f in ROW_FIELDS], \
        "docs/archive.md's row table and pipeline/records/row.py disagree: update the table"
