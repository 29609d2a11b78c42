"""Random access to an archive in place (``pipeline.read.archive``): keys, samples and images as
archived, the key index (written at compress time, or by diffarc-index for archives written before),
older row versions, bad input named, and s3:// through the moto server."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from shardkit import archive_corpus, reading_corpus

from jobs import index as index_job
from model import load_codec
from pipeline import ArchiveDataset, RowError, open_archive
from pipeline.read.dataset import ArchiveLoader

IMAGES = 12  # rows with an image: 14 rows less the broken image and the sample without one


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(the input samples by key, an archive coded with jpeg-q60, the same kept losslessly: JPEG XL rows)."""
    root = tmp_path_factory.mktemp("reading")
    shards = reading_corpus(root / "in")
    archive_corpus(root / "in", str(root / "coded"), load_codec("jpeg-q60"))
    archive_corpus(root / "in", str(root / "lossless"), load_codec("jpeg-q60"), lossless=True)
    return {key: members for samples in shards.values() for key, members in samples}, root / "coded", root / "lossless"


def copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "archive")


def test_each_key_reads_back_as_archived_from_one_row_group(corpus, monkeypatch):
    samples, coded, _ = corpus
    archive = open_archive(str(coded))
    assert len(archive) == 14 and set(archive.keys()) == set(samples) and "a3" in archive and "zz" not in archive
    read = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, g, **kw: read.append(g) or real(self, g, **kw))
    sample = archive["a3"]
    assert read == [archive.place("a3")[1]] and archive.place("a3")[1] == 1  # one group of 2 rows, not the shard
    assert sample["__key__"] == "a3" and sample["json"] == samples["a3"]["json"]
    original = np.asarray(Image.open(io.BytesIO(samples["a3"]["jpg"])), np.float64)
    for img in (Image.open(io.BytesIO(sample["jpg"])), archive.image("a3")):
        assert img.size == (64, 48) and np.abs(np.asarray(img, np.float64) - original).mean() < 12  # jpeg-q60
    assert archive.meta("a3")["orig_sha256"] == hashlib.sha256(samples["a3"]["jpg"]).hexdigest()
    alpha = archive.image("alpha")  # the lossless path: the same pixels
    original_alpha = np.asarray(Image.open(io.BytesIO(samples["alpha"]["png"])))
    assert alpha.mode == "RGBA" and np.array_equal(np.asarray(alpha), original_alpha)
    assert archive["no-image"] == {"__key__": "no-image", "json": samples["no-image"]["json"]}
    with pytest.raises(RowError, match="no image"):
        archive.image("no-image")


def test_a_missing_key_and_an_error_row_are_refused_with_what_the_archive_says(corpus):
    _, coded, _ = corpus
    archive = open_archive(str(coded))
    with pytest.raises(KeyError, match="'not-there' is not in the archive"):
        archive["not-there"]
    recorded = archive.row("broken")["error"]
    assert recorded
    for read in (lambda: archive["broken"], lambda: archive.image("broken")):
        with pytest.raises(RowError) as caught:
            read()
        assert caught.value.error == f"archived as an error row: {recorded}" and "'broken'" in str(caught.value)
    with pytest.raises(TypeError, match="unknown decode option.*stepz"):
        open_archive(str(coded), stepz=2)


def test_jpeg_xl_rows_give_the_original_file_back(corpus):
    samples, _, lossless = corpus
    archive = open_archive(str(lossless))
    assert archive.meta("b2")["stored_as"] == "jpeg-xl"
    assert archive["b2"]["jpg"] == samples["b2"]["jpg"]  # byte for byte
    assert np.array_equal(np.asarray(archive.image("b2")), np.asarray(Image.open(io.BytesIO(samples["b2"]["jpg"]))))


def test_an_archive_without_index_opens_and_diffarc_index_writes_the_one_compress_writes(corpus, tmp_path, capsys):
    _, coded, _ = corpus
    folder = copy(coded, tmp_path)
    written = {p.name: p.read_bytes() for p in folder.glob("*.index.arrow")}
    assert sorted(written) == ["shard-000000.index.arrow", "shard-000001.index.arrow"]
    for name in written:
        (folder / name).unlink()
    capsys.readouterr()
    assert set(open_archive(str(folder)).keys()) == set(open_archive(str(coded)).keys())
    assert f"diffarc-index {folder}" in capsys.readouterr().err  # said once, with the command
    assert index_job.main([str(folder)]) == 0
    assert {p.name: p.read_bytes() for p in folder.glob("*.index.arrow")} == written
    assert "2 indexes written" in capsys.readouterr().out
    assert index_job.main([str(folder)]) == 0 and "2 already current" in capsys.readouterr().out
    open_archive(str(folder))
    assert "diffarc-index" not in capsys.readouterr().err


def test_an_archive_of_an_older_row_version_reads(corpus, tmp_path, capsys):
    """Row version 1 (before the keeping columns): codec rows and error rows, vouched for by its marker."""
    samples, coded, _ = corpus
    folder = copy(coded, tmp_path)
    parquet, stats_file = folder / "shard-000001.parquet", folder / "shard-000001.stats.json"
    table = pq.read_table(parquet)
    pq.write_table(table.drop_columns(["stored_as", "stored_because", "image_info", "encode_settings", "notes"]),
                   parquet, row_group_size=2)
    stats = json.loads(stats_file.read_text())
    stats["output"].update(bytes=parquet.stat().st_size, sha256=hashlib.sha256(parquet.read_bytes()).hexdigest())
    stats_file.write_text(json.dumps(stats))
    archive = open_archive(str(folder))
    assert "have no up-to-date key index (e.g. shard-000001)" in capsys.readouterr().err  # the old index is stale
    assert archive.meta("b4")["stored_as"] is None and archive.image("b4").size == (64, 48)
    assert archive["b4"]["json"] == samples["b4"]["json"]


def test_a_truncated_parquet_file_is_named(corpus, tmp_path):
    _, coded, _ = corpus
    folder = copy(coded, tmp_path)
    parquet = folder / "shard-000000.parquet"
    parquet.write_bytes(parquet.read_bytes()[:-300])
    with pytest.raises(ValueError, match=r"shard-000000\.parquet is \d+ bytes, its stats marker says \d+: truncated"):
        open_archive(str(folder))
    stats_file = folder / "shard-000000.stats.json"  # a marker that vouches for the cut file: reading names it
    stats = json.loads(stats_file.read_text())
    stats["output"].update(bytes=parquet.stat().st_size, sha256=hashlib.sha256(parquet.read_bytes()).hexdigest())
    stats_file.write_text(json.dumps(stats))
    with pytest.raises(ValueError, match=r"archive shard .*shard-000000\.parquet cannot be read: .*re-archive"):
        open_archive(str(folder))


def test_s3_through_the_storage_layer(corpus, s3_endpoint):
    import s3fs

    samples, coded, _ = corpus
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, use_listings_cache=False)
    fs.mkdir("reading")
    fs.put(f"{coded}/", "reading/archive/", recursive=True)
    archive = open_archive("s3://reading/archive", endpoint_url=s3_endpoint)
    assert len(archive) == 14 and archive["a1"]["json"] == samples["a1"]["json"]
    assert archive.image("b5").size == (64, 48)
    # forked DataLoader workers open their own files (this process has some open now)
    batches = list(ArchiveLoader(ArchiveDataset(archive), batch_size=4, num_workers=2))
    assert sorted(k for b in batches for k in b["key"]) == sorted(set(samples) - {"broken", "no-image"})


def test_import_pipeline_stays_light_and_the_public_names_resolve():
    code = "import sys, pipeline; print('pipeline.read' in sys.modules, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False", "False"]
    from pipeline import ArchiveDataset, read_archive

    assert (open_archive.__module__, ArchiveDataset.__module__, read_archive.__module__) == (
        "pipeline.read.archive", "pipeline.read.dataset", "pipeline.read.ray_data")
