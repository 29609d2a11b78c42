"""The archive keeps what it is given (issue 17): one corpus holding every case (``keep_corpus``) through
compress and decompress with the default flags, relative paths, WebDataset and PNG outputs and an
audit; then the lossless mode, with real JPEG photos when ``../shared/data/train`` is there."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from keep_corpus import cases, exif
from PIL import Image, ImageOps
from shardkit import archive_rows, image_bytes, photo, write_shard

from jobs import compress, decompress
from pipeline.imagefiles.lossless import jpeg_to_jxl, jxl_to_jpeg, pixel_mode
from pipeline.imagefiles.metadata import file_facts
from pipeline.decode.archive_rows import ArchiveRows, ReadRequest
from pipeline.encode.keeping import Policy, decide
from pipeline.io.faults import PermanentError
from pipeline.io.storage import Storage
from pipeline.records.archive import RowGroups

TRAIN = next((p / "shared" / "data" / "train" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
             Path("../shared/data/train"))  # beside the checkout
KEPT_FILES = ("original", "jpeg-xl")
IMAGE_EXTS = ("jpg", "png", "gif", "webp")


def tar_samples(path: Path) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            out.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return out


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def stored_bytes(row: dict) -> int:
    return len(row["bitstream"]) + sum(len(k) + len(v) for k, v in row["image_info"] or [])


def exif_tags(img: Image.Image) -> dict:
    return {k: v for k, v in img.getexif().items()}


def check_image(key: str, row: dict, original: bytes, restored: bytes) -> None:
    """The property of the path the row took."""
    if row["stored_as"] in KEPT_FILES:
        assert restored == original, key
        return
    before, after = opened(original), opened(restored)
    shown = ImageOps.exif_transpose(before)
    assert after.size == shown.size, key  # pixels turned to display orientation ...
    assert exif_tags(after).get(0x0112, 1) == 1, key  # ... and the tag reset, never both or neither
    if row["stored_as"] == "lossless":
        mode = pixel_mode(shown)
        assert np.array_equal(np.asarray(after.convert(mode)), np.asarray(shown.convert(mode))), key
    for name in ("icc_profile", "xmp"):
        assert after.info.get(name) == before.info.get(name), (key, name)
    expected_exif = {k: v for k, v in exif_tags(before).items() if k != 0x0112}
    assert {k: v for k, v in exif_tags(after).items() if k != 0x0112} == expected_exif, key
    assert getattr(after, "text", {}) == getattr(before, "text", {}), key


def test_the_corpus_comes_back_as_it_came(ray_local, tmp_path, monkeypatch):
    corpus = cases()
    write_shard(tmp_path / "in" / "corpus-000000.tar", [(k, m) for k, (m, _) in corpus.items()])
    monkeypatch.chdir(tmp_path)  # relative --input/--output mean this folder, on the driver and the workers
    assert compress.main(["--input", "in", "--output", "arc", "--batch-size", "8", "--actors", "1", "--no-progress"]) == 0

    rows = {r["key"]: r for r in archive_rows(tmp_path / "arc")}
    assert sorted(rows) == sorted(corpus)
    for key, (members, path) in corpus.items():
        row = rows[key]
        if path is not None:
            assert row["stored_as"] == path, (key, row["stored_as"], row["stored_because"])
        if row["member"]:
            assert stored_bytes(row) <= row["orig_bytes"], key  # never bigger than the original
            if row["stored_as"] != "original":
                assert stored_bytes(row) < row["orig_bytes"], key
    assert rows["over-compressed"]["stored_because"] == "original smaller"
    assert (rows["grey16"]["stored_because"], rows["rgb16"]["stored_because"]) == ("16-bit", "16-bit")
    assert rows["animated-gif"]["stored_because"] == rows["animated-webp"]["stored_because"] == "animation"
    assert {rows[k]["stored_because"] for k in ("rgba", "la", "palette-transparency")} == {"alpha"}
    assert {rows[k]["stored_because"] for k in ("one-pixel", "seven-by-five")} == {"too small"}
    assert rows["broken"]["error"] and rows["broken"]["bitstream"] == corpus["broken"][0]["jpg"]
    manifest_paths = __import__("json").loads((tmp_path / "arc" / "_manifest.json").read_text())["paths"]
    assert sum(p["rows"] for p in manifest_paths.values()) == len(corpus)
    assert manifest_paths["none"]["rows"] == 1 and manifest_paths["codec"]["rows"] >= 5

    # WebDataset: the same samples, member names and extensions; images by their path's property
    assert decompress.main(["--input", "arc", "--output", "wds", "--actors", "1", "--no-progress"]) == 0  # the error row is no failure
    restored = tar_samples(tmp_path / "wds" / "corpus-000000.tar")
    assert sorted(restored) == sorted(corpus)
    for key, (members, _) in corpus.items():
        assert sorted(restored[key]) == sorted(members), key
        row = rows[key]
        for ext, data in members.items():
            if ext == row["member"] and key != "broken":
                check_image(key, row, data, restored[key][ext])
            else:  # sidecars, second images, the broken image kept by its error row
                assert restored[key][ext] == data, (key, ext)

    # a loader written for the original shards runs on the restored ones
    import webdataset as wds

    def load(url: str) -> dict:
        return {s["__key__"]: sorted(k for k in s if not k.startswith("__"))
                for s in wds.WebDataset(url, shardshuffle=False).decode("pil", handler=wds.ignore_and_continue)}

    assert load(str(tmp_path / "wds" / "corpus-000000.tar")) == load(str(tmp_path / "in" / "corpus-000000.tar"))

    # --format png: decoded pixels as KEY.png, kept files under their extension, the other members beside them
    assert decompress.main(["--input", "arc", "--output", "png", "--format", "png", "--actors", "1", "--no-progress"]) == 0
    files = {p.name: p.read_bytes() for p in (tmp_path / "png" / "corpus-000000").iterdir()}
    expected = set()
    for key, (members, _) in corpus.items():
        row = rows[key]
        for ext in members:
            coded = ext == row["member"] and row["stored_as"] in ("codec", "lossless")
            expected.add(f"{key}.png" if coded else f"{key}.{ext}")
    assert set(files) == expected
    assert files["two-images.seg.png"] == corpus["two-images"][0]["seg.png"]
    assert files["icc.png"] and opened(files["icc.png"]).info.get("icc_profile") == opened(corpus["icc"][0]["jpg"]).info["icc_profile"]

    # the audit measures alpha as well as colour
    assert decompress.main(["--input", "arc", "--output", "audit", "--audit", "in", "--actors", "1", "--no-progress"]) == 0
    audit = {r["key"]: r for r in pq.read_table(tmp_path / "audit" / "audit.parquet").to_pylist()}
    for key in ("rgba", "la", "palette-transparency"):
        assert audit[key]["alpha_max_error"] == 0 and audit[key]["exact"], key
    assert audit["icc"]["alpha_max_error"] is None and audit["icc"]["exact"] is False and audit["icc"]["psnr"] > 25
    assert all(audit[k]["exact"] for k, r in rows.items() if r["stored_as"] in KEPT_FILES and r["error"] is None)


def real_jpegs(n: int) -> list[bytes]:
    files = sorted(TRAIN.glob("*.jpg"))[:n] if TRAIN.is_dir() else []
    if not files:
        pytest.skip(f"no JPEGs in {TRAIN} (the shared training photos): lossless JPEG recompression untested on photos")
    return [f.read_bytes() for f in files]


def test_jpeg_xl_gives_each_real_jpeg_back_byte_for_byte_and_smaller():
    for data in real_jpegs(5):
        jxl = jpeg_to_jxl(data)
        assert jxl_to_jpeg(jxl) == data
        assert len(jxl) < 0.95 * len(data)


def test_lossless_mode_keeps_every_image_exactly(ray_local, tmp_path):
    corpus = cases()
    write_shard(tmp_path / "in" / "lossless-000000.tar", [(k, m) for k, (m, _) in corpus.items()])
    assert compress.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "arc"), "--lossless",
                          "--codec", "webp-q80", "--actors", "1", "--no-progress"]) == 0  # no image reaches the codec
    rows = {r["key"]: r for r in archive_rows(tmp_path / "arc")}
    assert {r["stored_as"] for r in rows.values()} <= {"jpeg-xl", "lossless", "original", "none"}
    assert rows["exif-rotated"]["stored_as"] == rows["xmp"]["stored_as"] == "jpeg-xl"
    assert rows["icc"]["stored_as"] == "original"  # libjxl does not recompress a JPEG with a LAB profile
    assert decompress.main(["--input", str(tmp_path / "arc"), "--output", str(tmp_path / "out"), "--actors", "1",
                            "--no-progress"]) == 0
    restored = tar_samples(tmp_path / "out" / "lossless-000000.tar")
    for key, (members, _) in corpus.items():
        row = rows[key]
        assert sorted(restored[key]) == sorted(members), key
        for ext, data in members.items():
            if ext == row["member"] and row["stored_as"] == "lossless":
                check_image(key, row, data, restored[key][ext])
            else:
                assert restored[key][ext] == data, (key, ext)


def test_a_missing_archive_file_is_reported_as_missing_with_the_path(tmp_path):
    request = ReadRequest(str(tmp_path / "arc" / "shard-000000.parquet"), Storage(), 8, None, RowGroups())
    with pytest.raises(PermanentError) as failed:
        for _ in ArchiveRows(request):
            pass
    assert f"archive file {request.url} is missing (looked for {request.url})" in str(failed.value)
    assert "re-archive" not in str(failed.value)  # the shard is not broken: it is not there


def test_flags_let_depth_and_animation_through_the_codec_and_the_row_says_so():
    corpus = cases()
    grey16, gif = corpus["grey16"][0]["png"], corpus["animated-gif"][0]["gif"]
    assert decide(grey16, file_facts(grey16), Policy()).stored_as == "original"
    assert decide(gif, file_facts(gif), Policy()).stored_as == "original"
    deep = decide(grey16, file_facts(grey16), Policy(allow_8bit=True))
    first = decide(gif, file_facts(gif), Policy(allow_first_frame=True))
    assert (deep.stored_as, deep.because) == ("codec", "policy, 8 of 16 bits kept (flag)")
    assert (first.stored_as, first.because) == ("codec", "policy, first of 3 frames kept (flag)")
    assert decide(gif, file_facts(gif), Policy(allow_8bit=True)).because == "animation"  # one flag, one reduction


def test_turned_pixels_carry_no_orientation_in_exif_or_xmp():
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6" dc:creator="me"/></x:xmpmeta>'
    data = image_bytes(photo(40, 20), "JPEG", exif=exif(6), xmp=xmp)
    info = file_facts(data).image_info
    assert exif_of(info["exif"])[0x0112] == 1  # reset in place: every other byte of the block as it was
    assert info["xmp"] == xmp.replace(b'tiff:Orientation="6"', b"")
    assert exif_of(info["exif"])[0x010F] == "DiffarcCam"  # the rest kept
    # Pillow (and so load_image) also turns by XMP's orientation alone: that is stripped the same way
    assert file_facts(image_bytes(photo(40, 20), "JPEG", xmp=xmp)).image_info["xmp"] == info["xmp"]


def exif_of(data: bytes) -> dict:
    e = Image.Exif()
    e.load(data)
    return dict(e)
