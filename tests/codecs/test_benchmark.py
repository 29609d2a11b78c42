"""The codec benchmark's counting and the cdc-avif tables (tiny config, tiny images: not a timing test)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from model.codecs.avif_base import encode_base
from model.evaluation.benchmark import count_macs, main, markdown_table
from model.evaluation.benchmark_avif import container_overhead, restoration_codec

torch.set_num_threads(1)


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(x / 9.0 + seed)[..., None] * np.cos(y / 7.0)[..., None] * np.array([1.0, 0.5, -0.6])
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def test_count_macs_of_convolutions():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2),
                        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1))
    x = torch.zeros(1, 3, 16, 20)
    expected = 16 * 20 * 8 * 3 * 9 + 8 * 10 * 8 * (8 // 2) * 9 + 8 * 10 * 8 * 4 * 16  # conv: output x in/groups x k; transposed: input x out x k
    assert count_macs(net, lambda: net(x)) == expected


def test_container_overhead_counts_the_real_bytes():
    codec = restoration_codec("cdc-avif-tiny")
    images = [_photo(96, 128, 0), _photo(128, 96, 1)]
    row = container_overhead(codec, images, quality=30)
    avif = [len(encode_base(im, 30)) for im in images]
    ours = [len(codec.encode([im], quality=30)[0]) for im in images]
    assert row["avif_bytes"] == pytest.approx(np.mean(avif)) and row["bytes"] == pytest.approx(np.mean(ours))
    assert row["overhead_pct"] == pytest.approx(100 * (sum(ours) - sum(avif)) / sum(avif))
    assert row["overhead_pct_min"] <= row["overhead_pct"] <= row["overhead_pct_max"]
    assert row["bpp"] == pytest.approx(8 * sum(ours) / (2 * 96 * 128)) and row["encode_ratio"] > 0


def test_cdc_avif_benchmark_writes_its_tables(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_photo(64, 96, i)).save(folder / f"im{i}.png")
    out = tmp_path / "bench" / "benchmark.md"
    main(["--configs", "cdc-avif-tiny", "--size", "48", "64", "--steps", "1", "3", "--images", str(folder),
          "--quality", "25", "--out", str(out)])  # fmt: skip
    text = out.read_text()
    assert text.split("\n", 1)[1] in capsys.readouterr().out  # printed too, below its header line
    cost, overhead = [t for t in text.split("## ")[1:]]
    head, _, values = cost.strip().splitlines()[2:5]
    row = dict(zip(head.strip("| ").split(" | "), values.strip("| ").split(" | ")))
    assert row["codec"] == "cdc-avif-tiny" and row["size"] == "64x48" and row["quality"] == "25"
    assert float(row["mmac_px_step"]) > 0 and float(row["decode_s@3"]) > 0 and float(row["encode_ratio"]) > 0
    assert "2 images of" in overhead and "overhead_pct" in overhead


def test_markdown_table_takes_the_union_of_columns():
    assert markdown_table([{"a": 1, "b": 0.123456}, {"a": 2, "c": "x"}]).splitlines() == [
        "| a | b | c |", "|---|---|---|", "| 1 | 0.1235 | - |", "| 2 | - | x |"]
