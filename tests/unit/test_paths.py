"""Hostile keys (traversal, absolute, NUL, backslashes, very long) never become paths outside the
output: the tests look at the file system itself, before and after, not at a log line."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from shardkit import archive_rows, image_bytes, photo, write_shard

from jobs import compress, decompress
from model import load_codec
from pipeline.decode.decoding import DecodeSettings, decode_shard, in_process
from pipeline.decode.names import MAX_NAME_BYTES, safe_name
from pipeline.encode.encoding import EncodeSettings, encode_batch, prepare, to_row
from pipeline.io.shards import Sample
from pipeline.io.storage import Storage
from pipeline.records.archive import ArchiveWriter
from pipeline.records.row import Row

HOSTILE_KEYS = [
    "../../../escaped/evil",
    "/tmp/diffarc-absolute-escape/evil",
    "..\\..\\backslash/evil",  # WebDataset keys hold dots only before the last "/"
    "a/../../dotdot-inside",
    "x" * 600,
    "deep/" * 60 + "leaf",
    "plain/0001",
]


def archived_row(codec, key: str, seed: int, metadata: dict[str, bytes]) -> Row:
    """The row the compress job writes for an image under ``key`` (any key: Parquet holds it as data)."""
    data = image_bytes(photo(seed=seed), "PNG")
    item = prepare(Sample(key, {"png": data, **metadata}), EncodeSettings())
    encode_batch(codec, [item])
    return to_row(item, "evil.tar", codec.codec_id)


def output_folder(root: Path, name: str) -> Path:
    """An output folder deep enough below ``root`` that every traversal key here (at most three ``..``
    below the shard's folder) that escapes it still lands under ``root``, where the test looks."""
    return root.joinpath("nest", "nest", "nest", name)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def assert_all_inside(root: Path, before: set[Path], out: Path) -> set[Path]:
    """The files created under ``root`` since ``before``; every one of them is inside ``out``."""
    created = files_under(root) - before
    outside = [p for p in created if out.resolve() not in p.resolve().parents]
    assert outside == []
    assert not Path("/tmp/diffarc-absolute-escape").exists()
    return created


@pytest.mark.parametrize("key", HOSTILE_KEYS + ["a\x00b", "\x00", "..", "", "é/../ü\udcff"])
def test_safe_name_is_relative_bounded_and_injective(key):
    name = safe_name(key)
    assert name and not name.startswith("/") and "\\" not in name and "\x00" not in name
    assert ".." not in name.split("/") and "." not in name.split("/")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert (name == key) == (key == "plain/0001")  # ordinary keys unchanged, others marked by a hash
    assert safe_name(key + "2") != name


def test_hostile_keys_from_a_shard_stay_inside_the_output(ray_local, tmp_path):
    shard = write_shard(tmp_path / "in" / "shard-000000.tar",
                        [(k, {"png": image_bytes(photo(seed=i), "PNG"), "x\\..\\y": b"meta"})
                         for i, k in enumerate(HOSTILE_KEYS)])
    archive = tmp_path / "archive"
    assert compress.main(["--input", str(shard), "--output", str(archive), "--codec", "webp-q80", "--no-progress"]) == 0
    assert sorted(r["key"] for r in archive_rows(archive)) == sorted(HOSTILE_KEYS)  # original keys kept as data

    for fmt in ("png", "webdataset"):
        before, out = files_under(tmp_path), output_folder(tmp_path, f"decoded-{fmt}")
        assert decompress.main(["--input", str(archive), "--output", str(out), "--format", fmt, "--no-progress"]) == 0
        created = assert_all_inside(tmp_path, before, out)
        if fmt == "png":
            assert len([p for p in created if p.suffix == ".png"]) == len(HOSTILE_KEYS)
        else:
            [tar_path] = [p for p in created if p.suffix == ".tar"]
            with tarfile.open(tar_path) as tar:
                names = tar.getnames()
                extract_to = tmp_path / "extracted"
                tar.extractall(extract_to, filter="data")  # refuses any name that would escape
            assert len([n for n in names if n.endswith(".png")]) == len(HOSTILE_KEYS)
            assert all(not n.startswith("/") and ".." not in n.split("/") and "\\" not in n for n in names)
            assert len(files_under(extract_to)) == len(names)


def test_nul_and_dot_keys_in_an_archive_stay_inside_the_output(tmp_path):
    codec = load_codec("webp-q80")
    keys = ["a\x00b", "\x00", "..", ".", "", "../../../escaped/evil", "/abs/evil", "same", "same"]
    parquet = tmp_path / "archive" / "evil.parquet"
    parquet.parent.mkdir()
    with open(parquet, "wb") as f:
        writer = ArchiveWriter(f)
        for i, key in enumerate(keys):
            writer.add(archived_row(codec, key, i, {"../../m\x00eta": b"x"}))
        writer.close()
    for fmt in ("png", "webdataset"):
        before, out = files_under(tmp_path), output_folder(tmp_path, f"decoded-{fmt}")
        settings = DecodeSettings(format=fmt)
        result = decode_shard(in_process(lambda _: codec, settings), str(parquet), str(out), settings, Storage())
        created = assert_all_inside(tmp_path, before, out)
        assert result.decoded == len(keys) and result.errors == 0
        renamed_as_expected = [k for k in keys if safe_name(k) != k] + ["same"]  # the repeat of "same" too
        assert sorted(result.renamed.values()) == sorted(renamed_as_expected)
        if fmt == "png":
            assert len([p for p in created if p.suffix == ".png"]) == len(keys)  # the repeat got its own file
            for safe, original in result.renamed.items():
                assert (out / "evil" / f"{safe}.png").is_file(), original
        else:
            [tar_path] = [p for p in created if p.suffix == ".tar"]
            with tarfile.open(tar_path) as tar:
                assert len(tar.getnames()) == 2 * len(keys)
    assert sorted(os.listdir(output_folder(tmp_path, "decoded-png"))) == ["evil", "evil.decoded.json"]

