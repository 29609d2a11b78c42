"""Archive files that do not keep to what an honest writer writes (pipeline/decode/archive_rows.py):

- a Parquet bomb (zstd over zeros: a few KB on disk, 1 GiB uncompressed) in two row groups: one error
  row per bombed row, never materialised (the reading process's peak stays near its start-up size),
  the other row groups decode to the right pixels;
- a row over the per-row cap in a group under the group budget: an error row, its bytes never passed on;
- a footer that understates a group's size, a file cut short, garbage: the shard fails with an error
  naming the file, the other shards decode;
- honest files at the writer's limits never trip the reader, and the writer refuses a row over its cap.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from shardkit import plain_shards

from jobs import compress, decompress
from model import load_codec
from pipeline.decode.archive_rows import ArchiveRows, ReadRequest, reader_growth_bytes
from pipeline.io.storage import Storage
from pipeline.records.archive import ArchiveWriter, RowGroups
from pipeline.records.row import BIG_COLUMNS, ROW_SCHEMA, Row

MB = 1 << 20
BOMB_ROW = 128 * MB  # zeros, one bitstream each; two rows a group, four groups: 1 GiB
CODEC = "webp-q80"


@pytest.fixture
def archive(ray_local, tmp_path):
    plain_shards(tmp_path / "in", n_shards=4, per_shard=4)
    out = tmp_path / "archive"
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(out), "--codec", CODEC,
                          "--no-progress"]) == 0
    return out


def vouch(folder, name: str) -> None:
    """Make shard ``name``'s stats vouch for its Parquet file as it is now (a dishonest writer could)."""
    from pipeline.records.archive import sha256

    data = (folder / f"{name}.parquet").read_bytes()
    marker = json.loads((folder / f"{name}.stats.json").read_text())
    marker["output"].update(bytes=len(data), sha256=sha256(data))
    (folder / f"{name}.stats.json").write_text(json.dumps(marker))


def write_groups(path, groups: list[list[dict]]) -> None:
    """One row group per list of rows, written as any Parquet writer could (no caps; no dictionaries or
    statistics, which would only cost this test time and memory)."""
    with pq.ParquetWriter(path, ROW_SCHEMA, compression="zstd", use_dictionary=False, write_statistics=False) as writer:
        for rows in groups:
            writer.write_table(pa.Table.from_pylist(rows, schema=ROW_SCHEMA), row_group_size=len(rows))


def big_claim(meta, g: int) -> int:
    """What row group ``g``'s footer says its big columns (bitstream, metadata, image_info) take uncompressed."""
    group = meta.row_group(g)
    return sum(group.column(c).total_uncompressed_size for c in range(group.num_columns)
               if group.column(c).path_in_schema.split(".")[0] in BIG_COLUMNS)


def zeros_row(template: dict, key: str, size: int) -> dict:
    return {**template, "key": key, "bitstream": bytes(size), "metadata": []}


def decoded_pngs(tar_path) -> dict[str, np.ndarray]:
    with tarfile.open(tar_path) as tar:
        return {m.name[: -len(".png")]: np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())))
                for m in tar.getmembers() if m.name.endswith(".png")}


def test_a_parquet_bomb_is_refused_row_by_row_and_the_rest_decodes(archive, tmp_path, capsys):
    honest = {n: pq.read_table(archive / f"{n}.parquet").to_pylist() for n in ("shard-000000", "shard-000001")}
    rows = honest["shard-000000"]
    bombs = [[zeros_row(rows[0], f"bomb{g}{i}", BOMB_ROW) for i in range(2)] for g in range(4)]
    write_groups(archive / "shard-000000.parquet", [rows[:2], *bombs[:2], rows[2:3], *bombs[2:], rows[3:]])
    vouch(archive, "shard-000000")
    meta = pq.ParquetFile(archive / "shard-000000.parquet").metadata
    claims = {g: big_claim(meta, g) for g in (1, 2, 4, 5)}
    assert os.path.getsize(archive / "shard-000000.parquet") < MB and sum(claims.values()) > 8 * BOMB_ROW  # a bomb
    big_row = {**rows[0], "key": "big-row", "bitstream": os.urandom(100 * MB)}  # over the 64 MB row cap, in a
    # group under 128 MB; random, so that reading it twice would show in the bytes read
    write_groups(archive / "shard-000001.parquet", [honest["shard-000001"][:2] + [big_row] + honest["shard-000001"][2:]])
    vouch(archive, "shard-000001")

    out = tmp_path / "decoded"
    assert decompress.main(["--input", str(archive), "--output", str(out), "--actors", "1", "--no-progress"]) == 1
    assert "9 rows were not decoded" in capsys.readouterr().err
    markers = {n: json.loads((out / f"{n}.decoded.json").read_text()) for n in honest}
    errors = {r["key"]: r["error"] for m in markers.values() for r in m["failed_rows"]}
    group_of = {f"bomb{g}{i}": group for g, group in enumerate(claims) for i in range(2)}  # row groups 1, 2, 4, 5
    assert sorted(errors) == sorted(["big-row", *group_of])
    limits = RowGroups()
    for key, g in group_of.items():
        assert (f"row group {g} of {archive / 'shard-000000.parquet'} holds {claims[g]} bytes of bitstreams and "
                f"metadata (2 rows, per its footer), over the cap of {limits.max_group_bytes()}: not read") in errors[key]
        assert "--max-row-group-mb" in errors[key]
    size = 100 * MB + sum(len(k) + len(v) for k, v in big_row["metadata"])  # the bitstream and the .json member
    assert f"take {size} bytes (row group 0 of {archive / 'shard-000001.parquet'})" in errors["big-row"]
    assert f"over the per-row cap of {limits.max_row_bytes()}: not read" in errors["big-row"]

    codec = load_codec(CODEC)
    for name, rows in honest.items():
        decoded = decoded_pngs(out / f"{name}.tar")
        assert sorted(decoded) == sorted(r["key"] for r in rows)
        for r in rows:
            assert np.array_equal(decoded[r["key"]], np.asarray(codec.decode([r["bitstream"]])[0])), r["key"]
    assert all(sorted(decoded_pngs(out / f"shard-00000{i}.tar")) == [f"s{i}-{j:04d}" for j in range(4)] for i in (2, 3))
    # The bombs are never materialised: the reading process peaks at its start-up size (measured 0.11 GiB),
    # against 1 GiB of bombs; the 100 MB row is read once
    assert markers["shard-000000"]["reader"]["peak_rss_bytes"] < 192 * MB and 5 * 192 * MB < sum(claims.values())
    file_size = os.path.getsize(archive / "shard-000001.parquet")
    assert 100 * MB < markers["shard-000001"]["reader"]["bytes_read"] < file_size * 1.1


def understate_sizes(path, at_least: int) -> None:
    """Rewrite the footer so that every column chunk (and row group) of ``at_least`` bytes or more
    claims 100 bytes uncompressed: same footer length (the varint is padded), pages untouched."""
    data = bytearray(path.read_bytes())
    footer_len = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - footer_len
    footer = bytes(data[start:-8])
    meta = pq.ParquetFile(path).metadata
    sizes = {meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)}
    sizes |= {meta.row_group(g).column(c).total_uncompressed_size
              for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
    for size in sorted(s for s in sizes if s >= at_least):
        old = varint(size << 1)  # thrift compact: zigzag, then varint
        assert footer.count(old) >= 1
        small = varint(100 << 1)
        footer = footer.replace(old, bytes(b | 0x80 for b in small) + b"\x80" * (len(old) - len(small) - 1) + b"\x00")
    data[start:-8] = footer
    path.write_bytes(bytes(data))
    assert all(meta_size < at_least for meta_size in footer_claims(path))


def footer_claims(path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(g).column(c).total_uncompressed_size
            for g in range(meta.num_row_groups) for c in range(meta.num_columns)]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


def test_a_lying_footer_or_a_broken_file_fails_its_shard_and_the_others_decode(archive, tmp_path, capsys):
    honest = pq.read_table(archive / "shard-000000.parquet").to_pylist()
    lying = archive / "shard-000000.parquet"
    write_groups(lying, [honest[:2], [zeros_row(honest[0], "liar", 384 * MB)], honest[2:]])
    understate_sizes(lying, at_least=MB)
    vouch(archive, "shard-000000")
    claimed = big_claim(pq.ParquetFile(lying).metadata, 1)
    assert claimed < 1000  # what the reader's footer check sees
    data = (archive / "shard-000001.parquet").read_bytes()
    (archive / "shard-000001.parquet").write_bytes(data[: len(data) // 2])  # cut short
    vouch(archive, "shard-000001")
    (archive / "shard-000002.parquet").write_bytes(os.urandom(len(data)))  # garbage
    vouch(archive, "shard-000002")

    out = tmp_path / "decoded"
    capsys.readouterr()
    # 1 MB row groups: the reader may grow by 0.27 GiB, the liar needs 0.38 GiB for its page alone
    assert reader_growth_bytes(RowGroups(bytes=MB)) < 384 * MB
    assert decompress.main(["--input", str(archive), "--output", str(out), "--max-row-group-mb", "1",
                            "--no-progress"]) == 1
    err = capsys.readouterr().err
    failed = {line.split()[1].rstrip(":"): line for line in err.splitlines() if line.startswith("FAILED ")}
    assert sorted(failed) == [str(archive / f"shard-00000{i}.parquet") for i in range(3)]
    assert (f"PermanentError: {lying} row group 1 needs more memory than the reader may take "
            f"({reader_growth_bytes(RowGroups(bytes=MB))} bytes more than at start), though its footer says its "
            f"bitstreams and metadata take {claimed} bytes: the file is corrupt or hostile") in failed[str(lying)]
    for i in (1, 2):
        assert f"PermanentError: {archive / f'shard-00000{i}.parquet'} is not a readable archive file: " in (
            failed[str(archive / f"shard-00000{i}.parquet")])
    assert all("re-archive that shard (compress.py --overwrite) or leave it out (--shards)" in line
               for line in failed.values())
    assert sorted(p.name for p in out.glob("*.decoded.json")) == ["shard-000003.decoded.json"]
    assert sorted(decoded_pngs(out / "shard-000003.tar")) == [f"s3-{i:04d}" for i in range(4)]


SHAPES = [  # (rows per group, group bytes, [(bitstream bytes, [metadata value bytes])]): the writer's extremes
    (100, 4096, [(4096 - 16, [])] * 3 + [(0, [4000, 40]), (1, [1] * 50)]),
    (3, 50_000, [(50_000, [])] * 4 + [(20_000, [4000] * 7)] * 5),
    (1, 10_000, [(9_000, [990])] + [(0, [4090, 4090])] * 3),
    (100, 1_000_000, [(999_000, [])] + [(300, [4090] * 3)] * 300),
]


@pytest.mark.parametrize("rows,group_bytes,sizes", SHAPES)
def test_honest_archives_at_the_writers_limits_are_read_whole(rows, group_bytes, sizes, tmp_path):
    rng = np.random.default_rng(0)
    limits = RowGroups(rows=rows, bytes=group_bytes)
    written = []
    with open(tmp_path / "a.parquet", "wb") as f:
        writer = ArchiveWriter(f, limits)
        for i, (bitstream, metadata) in enumerate(sizes):
            row = Row(key=f"k{i}", shard="s", codec_id="c", bitstream=rng.bytes(bitstream),
                      metadata=[(f"m{j}", rng.bytes(n)) for j, n in enumerate(metadata)])
            assert row.nbytes() <= limits.max_row_bytes()
            writer.add(row)
            written.append(row)
        writer.close()
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    for g in range(meta.num_row_groups):
        assert big_claim(meta, g) <= limits.max_group_bytes()
    read = [r for rows_ in ArchiveRows(ReadRequest(str(tmp_path / "a.parquet"), Storage(), 7, None, limits))
            for r in rows_]
    assert [r["key"] for r in read] == [r.key for r in written] and not any(r.get("refused") for r in read)
    assert all(r["bitstream"] == w.bitstream and r["metadata"] == w.metadata for r, w in zip(read, written))


def test_the_writer_makes_a_row_over_its_cap_an_error_row():
    limits = RowGroups(rows=10, bytes=1000)
    row = Row(key="big", shard="s", codec_id="c", bitstream=b"x" * 990, metadata=[("json", b"0123456")], bpp=1.0,
              encode_ms=1.0)
    buf = io.BytesIO()
    writer = ArchiveWriter(buf, limits)
    writer.add(row)
    writer.close()
    stored = pq.read_table(io.BytesIO(buf.getvalue())).to_pylist()[0]
    assert stored["bitstream"] is None and stored["metadata"] == [] and stored["bpp"] is None
    assert "take 1001 bytes, over the row-group cap of 1000 (raise --row-group-mb" in stored["error"]
    assert row.error == stored["error"]  # in place: the caller's tally counts it as an error
