"""The archive as a Ray Data dataset (``pipeline.read.ray_data``) on the suite's local Ray: Ray Data's
own Parquet reading, the decode as a map_batches stage, and a user's stage after it."""

from __future__ import annotations

import numpy as np
from shardkit import archive_corpus, reading_corpus

from model import load_codec
from pipeline import read_archive


def test_read_archive_decodes_every_row_for_the_next_stage(ray_local, tmp_path):
    corpus = reading_corpus(tmp_path / "in")
    archive_corpus(tmp_path / "in", str(tmp_path / "archive"), load_codec("jpeg-q60"))
    ds = read_archive(str(tmp_path / "archive"), batch_size=4)

    def mean_pixel(batch):  # what a user's audit or labelling stage sees
        return {"key": batch["key"], "error": batch["error"], "stored_as": batch["stored_as"],
                "shape": np.array([str(img.shape) for img in batch["image"]]),
                "mean": np.array([img.mean() if img.size else -1.0 for img in batch["image"]])}

    rows = {r["key"]: r for r in ds.map_batches(mean_pixel, batch_format="numpy").take_all()}
    assert len(rows) == 14 and set(rows) == {k for samples in corpus.values() for k, _ in samples}
    coded = [r for r in rows.values() if r["stored_as"] == "codec"]
    assert len(coded) == 11 and all(r["shape"] == "(48, 64, 3)" and 20 < r["mean"] < 240 for r in coded)
    assert rows["alpha"]["shape"] == "(48, 64, 3)"  # RGB arrays, whatever the image's mode
    assert rows["broken"]["error"].startswith("archived as an error row") and rows["broken"]["shape"] == "(0, 0, 3)"
    assert rows["no-image"]["error"].startswith("the sample has no image")
