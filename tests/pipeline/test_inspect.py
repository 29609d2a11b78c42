"""Inspecting and verifying an archive in place (issue 31 items 4-5): ``diffarc-info`` from footers and
small columns only, ``diffarc-verify`` on a good archive and on one with every kind of damage, both on
S3, and the JPEG XL reconstruct check at compress time. Archives are written by the real shard writer
(``compress_shard``) with a cheap codec, and the job's manifest by the job's own ``tally``."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from shardkit import image_bytes, photo, rewrite_archive_shard, write_shard

from jobs import info as info_job
from jobs import verify as verify_job
from model import load_codec, load_image
from pipeline.imagefiles.lossless import encode_pixels, jxl_to_jpeg
from pipeline.imagefiles.metadata import file_facts
from pipeline.encode.encoding import EncodeSettings, Item, compress_shard, to_row
from pipeline.encode.keeping import Policy, keep_losslessly
from pipeline.inspection.columns import INFO_COLUMNS
from pipeline.inspection.info import archive_info
from pipeline.io.shards import Sample
from pipeline.io.storage import Storage
from pipeline.records.archive import tally
from pipeline.records.files import MANIFEST, CompressManifest
from pipeline.records.paths import pixels_sha256
from pipeline.records.row import BIG_COLUMNS

CODEC = "jpeg-q50"


def smooth_png() -> bytes:
    """A gradient: JPEG XL keeps its pixels in fewer bytes than PNG (a ``lossless`` row)."""
    y, x = np.mgrid[0:48, 0:64]
    return image_bytes(Image.fromarray(np.stack([x * 4, y * 5, x + y], -1).astype(np.uint8)), "PNG")


def deep_png() -> bytes:
    """A 16-bit grey PNG: kept as its file (an ``original`` row)."""
    return image_bytes(Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 13 % 65536).astype(np.uint16)), "PNG")


PNGS = [image_bytes(photo(64, 48, seed=i), "PNG") for i in range(3)]
JPGS = [image_bytes(photo(64, 48, seed=10 + i), "JPEG", quality=90) for i in range(2)]
SHARDS = {  # name -> (samples, lossless policy)
    "shard-000000": ([("a0", {"png": PNGS[0], "json": b"{}"}), ("a1", {"png": PNGS[1]}), ("dup", {"png": PNGS[0]}),
                      ("deep", {"png": deep_png()}), ("broken", {"jpg": b"not an image"})], False),
    "shard-000001": ([("j0", {"jpg": JPGS[0]}), ("j1", {"jpg": JPGS[1]}), ("flat", {"png": smooth_png()}),
                      ("noisy", {"png": PNGS[2]})], True),
    "shard-000002": ([("c0", {"png": PNGS[2]})], False),
    "shard-000003": ([("d0", {"png": PNGS[1]})], False),
}


def write_archive(root: Path, storage: Storage, out: str) -> None:
    """The archive of ``SHARDS`` under ``out``, with the manifest the compress job writes."""
    codec, results = load_codec(CODEC), {}
    for name, (samples, lossless) in SHARDS.items():
        write_shard(root / "in" / f"{name}.tar", samples)
        results[name] = compress_shard(codec, str(root / "in" / f"{name}.tar"), out,
                                       EncodeSettings(policy=Policy(lossless=lossless)), storage)
    CompressManifest(job="compress", codec=CODEC, codec_id=codec.codec_id,
                     **tally(list(results), results, {}, {})).write(f"{out}/{MANIFEST}", storage)


def footers_and_chunks(files: list[bytes]) -> tuple[int, int]:
    """(the bytes of the footers and the small columns' chunks, the bytes of the big columns' chunks)."""
    small = big = 0
    for data in files:
        meta = pq.read_metadata(pa.BufferReader(data))
        small += 8 + struct.unpack("<I", data[-8:-4])[0]
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(g).column(c)
                top = col.path_in_schema.split(".")[0]
                small += col.total_compressed_size if top in INFO_COLUMNS else 0
                big += col.total_compressed_size if top in BIG_COLUMNS else 0
    return small, big


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inspect")
    write_archive(root, Storage(), str(root / "arc"))
    return root / "arc"


def test_info_counts_paths_duplicates_and_keys_from_small_columns_only(archive, tmp_path, capsys):
    info = archive_info(str(archive), Storage())
    s = info.summary()
    paths = {p["stored_as"]: p for p in s["paths"]}
    assert (s["rows"], s["error_rows"], s["shards"]["complete"], s["shards"]["failed"]) == (11, 1, 4, [])
    assert {k: paths[k]["rows"] for k in paths} == {"codec": 5, "original": 3, "jpeg-xl": 2, "lossless": 1}
    assert s["errors"][0]["key"] == "broken" and "cannot identify image file" in s["errors"][0]["error"]
    assert paths["jpeg-xl"]["orig_bytes"] == sum(map(len, JPGS)) and 0 < paths["jpeg-xl"]["kept_bytes"] < sum(map(len, JPGS))
    rows = pq.read_table(archive / "shard-000001.parquet", columns=["key", "bitstream"]).to_pylist()
    assert paths["jpeg-xl"]["kept_bytes"] == sum(len(r["bitstream"]) for r in rows if r["key"] in ("j0", "j1"))
    assert paths["codec"]["bpp"]["min"] <= paths["codec"]["bpp"]["p50"] <= paths["codec"]["bpp"]["max"]
    # a0 and dup are the same file; so are a1 and d0, noisy and c0
    assert s["duplicates"] == {"files": 3, "extra_rows": 3, "extra_orig_bytes": len(PNGS[0]) + len(PNGS[1]) + len(PNGS[2])}

    # no bitstream or metadata column is read: the footers and the small columns' chunks, byte for byte
    small, big = footers_and_chunks([p.read_bytes() for p in sorted(archive.glob("*.parquet"))])
    assert info.bytes_read == small and info.bytes_read < info.file_bytes - big

    assert info_job.main([str(archive), "--keys", "[ad]*", "--duplicates", str(tmp_path / "dups.jsonl")]) == 0
    assert capsys.readouterr().out.split() == ["a0", "a1", "dup", "deep", "d0"]
    dups = [json.loads(line) for line in (tmp_path / "dups.jsonl").read_text().splitlines()]
    for job in (info_job, verify_job):
        with pytest.raises(SystemExit) as exit_:
            job.main(["--help"])
        assert exit_.value.code == 0 and "ARCHIVE" in capsys.readouterr().out
    assert info_job.main([str(tmp_path / "nothing")]) == 2 and "holds no archive" in capsys.readouterr().err
    assert {tuple(sorted(c["key"] for c in d["copies"])) for d in dups} == {("a0", "dup"), ("a1", "d0"), ("c0", "noisy")}


def test_verify_passes_a_good_archive(archive, capsys):
    assert verify_job.main([str(archive), "--json", "--no-progress"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["ok"], s["rows"], s["failures"], s["warnings"]) == (True, 11, [], [])
    # every file, every kept file's sha256 (error row's too), the lossless pixels, every codec container
    assert s["passed"] == {"checksum": 4, "index": 4, "sha256": 5, "pixels": 1, "container": 5}


def flip(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]


def damage(arc: Path) -> None:
    """Every kind of damage, one per shard: a codec row's bitstream and a JPEG XL row each changed by one
    byte with the file's checksums fixed up (marker and manifest: only the row checks can tell), a byte
    changed in a file, a file cut short; shard 1's checksum dropped, as an archive written before them; and an
    input shard the manifest says failed."""
    def edit(key: str):
        return lambda rows: [{**r, "bitstream": flip(r["bitstream"])} if r["key"] == key else r for r in rows]

    rewrite_archive_shard(arc, "shard-000000", edit("a1"))
    rewrite_archive_shard(arc, "shard-000001", edit("j0"))
    manifest = json.loads((arc / MANIFEST).read_text())
    for entry in manifest["shards"]:
        marker = json.loads((arc / f"{entry['name']}.stats.json").read_text())
        entry.update(bytes=marker["output"]["bytes"], sha256=marker["output"]["sha256"])
        if entry["name"] == "shard-000001":
            del entry["bytes"], entry["sha256"], marker["output"]
            (arc / f"{entry['name']}.stats.json").write_text(json.dumps(marker))
    manifest["failures"] = [{"shard": "in/shard-000009.tar", "error": "worker died 4 times"}]  # left no file
    (arc / MANIFEST).write_text(json.dumps(manifest))
    path = arc / "shard-000002.parquet"
    path.write_bytes(flip(path.read_bytes(), 200))
    path = arc / "shard-000003.parquet"
    path.write_bytes(path.read_bytes()[:-100])


def test_verify_names_every_damage(archive, tmp_path, capsys):
    arc = tmp_path / "arc"
    shutil.copytree(archive, arc)
    damage(arc)
    assert verify_job.main([str(arc), "--json", "--no-progress"]) == 1
    s = json.loads(capsys.readouterr().out)
    out = "\n".join(f["why"] for f in s["failures"] + s["warnings"])
    failed = {(f["shard"], f["key"], f["check"]) for f in s["failures"]}
    assert ("shard-000000", "a1", "container") in failed  # the CRC of the container
    assert {("shard-000001", "j0", "sha256"), ("shard-000001", "j0", "restore")} & failed  # the JPEG XL row
    assert {(sh, k) for sh, k, check in failed if sh in ("shard-000000", "shard-000001") and check != "index"} == {
        ("shard-000000", "a1"), ("shard-000001", "j0")}
    # the rewritten files' key indexes index the files before: named stale, with the command that rebuilds them
    stale = [f for f in s["failures"] if f["check"] == "index"]
    assert {f["shard"] for f in stale} == {"shard-000000", "shard-000001"}
    assert all("another version" in f["why"] and "diffarc-index" in f["fix"] for f in stale)
    assert {("shard-000002", None, "checksum"), ("shard-000003", None, "checksum"),
            ("shard-000003", None, "readable"), ("in/shard-000009.tar", None, "complete")} <= failed
    assert re.search(r"its marker and the manifest record \d+ bytes", out)  # both records disagree with the file
    assert "shard-000003.parquet is not a readable archive file" in out  # truncated: named, with the fix
    assert [w["shard"] for w in s["warnings"]] == ["shard-000001"] and "no checksum recorded" in out
    for f in s["failures"]:
        assert f["why"] and (f["fix"] or "re-archive" in f["why"]), f
    row_fix = next(f["fix"] for f in s["failures"] if f["key"] == "a1")
    assert "--input " + str(archive.parent / "in" / "shard-000000.tar") in row_fix  # where to re-archive it from

    assert info_job.main([str(arc), "--keys", "*"]) == 1  # info: the keys it can list, and the shard it cannot
    out, err = capsys.readouterr()
    assert out.split() == ["a0", "a1", "dup", "deep", "broken", "j0", "j1", "flat", "noisy", "c0"]
    assert "keys of shard-000003 not listed" in err and "not a readable archive file" in err
    assert "keys of in/shard-000009.tar not listed: worker died 4 times" in err


def test_a_jpeg_xl_row_is_kept_only_if_it_gives_the_jpeg_back(tmp_path):
    jpg = JPGS[0]
    facts = file_facts(jpg)
    assert keep_losslessly(jpg, facts, "policy").stored_as == "jpeg-xl"
    bad = keep_losslessly(jpg, facts, "policy", reconstruct=lambda jxl: jxl_to_jpeg(jxl) + b"\0")  # one byte more
    assert (bad.stored_as, bad.because, bad.data) == ("original", "policy", jpg)
    assert "differ from the" in bad.note
    broken = keep_losslessly(jpg, facts, "policy", reconstruct=lambda jxl: jxl_to_jpeg(jxl[:-20]))
    assert broken.stored_as == "original" and "did not reconstruct" in broken.note
    item = Item(Sample("k", {"jpg": jpg}), "jpg", jpg, load_image(jpg), facts, bad)
    row = to_row(item, "in.tar", "jpeg-q50")
    assert row.stored_as == "original" and row.bitstream == jpg and bad.note in row.notes


def test_a_lossless_row_is_verified_by_its_pixels(archive, tmp_path, capsys):
    """A ``lossless`` row keeps pixels, not the PNG file: compress proves they decode to the original's and
    records their digest (``pixels_sha256``), and verify names a row whose kept bytes now decode to others."""
    original = Image.open(io.BytesIO(smooth_png()))
    kept = keep_losslessly(smooth_png(), file_facts(smooth_png()), "policy")
    assert kept.stored_as == "lossless" and kept.pixels_sha256 == pixels_sha256(original.convert("RGB"))

    arc = tmp_path / "arc"
    shutil.copytree(archive, arc)
    other = np.asarray(original).copy()
    other[0, 0] ^= 1  # one pixel one level off: a valid JPEG XL file of other pixels
    rewrite_archive_shard(arc, "shard-000001", lambda rows: [
        {**r, "bitstream": encode_pixels(Image.fromarray(other))} if r["key"] == "flat" else r for r in rows])
    assert verify_job.main([str(arc), "--json", "--no-progress"]) == 1
    failures = json.loads(capsys.readouterr().out)["failures"]
    flat = [f for f in failures if f["key"] == "flat"]
    assert [f["check"] for f in flat] == ["pixels"] and "decodes to pixels with sha256" in flat[0]["why"]


def test_info_and_verify_on_s3(s3_endpoint, tmp_path, capsys):
    storage = Storage(endpoint_url=s3_endpoint)
    fs, _ = storage.fs("s3://inspect-bucket/")
    fs.mkdir("inspect-bucket")
    write_archive(tmp_path, storage, "s3://inspect-bucket/arc")
    fs.rm("inspect-bucket/arc/shard-000002.parquet")
    args = ["s3://inspect-bucket/arc", "--endpoint-url", s3_endpoint]
    assert info_job.main([*args, "--json"]) == 1  # a failed shard: its file is gone
    s = json.loads(capsys.readouterr().out)
    assert s["rows"] == 10 and [f["shard"] for f in s["shards"]["failed"]] == ["shard-000002"]
    small, _ = footers_and_chunks([fs.cat_file(p) for p in sorted(fs.glob("inspect-bucket/arc/*.parquet"))])
    assert s["read"]["bytes_read"] == small  # no read-ahead into the bitstreams on S3 either
    assert s["read"]["reads"] == 3 * (2 + len(INFO_COLUMNS))  # a footer in two reads, a read per chunk (one group)
    assert verify_job.main([*args, "--json", "--no-progress"]) == 1
    s = json.loads(capsys.readouterr().out)
    assert [(f["shard"], f["check"]) for f in s["failures"]] == [("shard-000002", "complete")]
    assert "shard-000002.parquet is missing" in s["failures"][0]["why"] and s["rows"] == 10


def test_an_archive_of_row_version_1_is_inspected_and_verified(archive, tmp_path, capsys):
    """Version-1 rows (no stored_as and the later columns) are codec rows or error rows; a marker written
    before markers held their file's record verifies with a warning."""
    old = tmp_path / "old"
    old.mkdir()
    table = pq.read_table(archive / "shard-000000.parquet")
    table = table.filter(pa.array([k != "deep" for k in table["key"].to_pylist()]))  # version 1 kept no originals
    v1 = table.drop_columns(["stored_as", "stored_because", "image_info", "encode_settings", "notes"])
    pq.write_table(v1.replace_schema_metadata({b"diffarc.row_version": b"1"}), old / "shard-000000.parquet")
    marker = json.loads((archive / "shard-000000.stats.json").read_text())
    del marker["output"], marker["paths"]
    (old / "shard-000000.stats.json").write_text(json.dumps(marker))

    s = archive_info(str(old), Storage()).summary()
    assert {p["stored_as"]: p["rows"] for p in s["paths"]} == {"codec": 3, "-": 1} and s["error_rows"] == 1
    assert verify_job.main([str(old), "--json", "--no-progress", "--decode"]) == 0  # each codec row decoded too
    s = json.loads(capsys.readouterr().out)
    assert s["passed"] == {"decode": 3, "unchecked": 1} and s["rows"] == 4
    assert [w["check"] for w in s["warnings"]] == ["checksum", "manifest"]
