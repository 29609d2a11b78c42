"""The realism grid end to end on tiny random weights (skipped without ../shared's SqueezeNet): every
curve at every quality gets real bpp, PSNR and patch KID; a rerun resumes from the kept images; the
musts are checked against AVIF and the MSE decoder at the same quality."""

from __future__ import annotations

import csv
import pytest
from PIL import Image

from model.evaluation.realism import default_squeeze_path
from jobs.realism import main
from model.evaluation.realism_grid import musts

pytestmark = pytest.mark.skipif(default_squeeze_path() is None,
                                reason="../shared/data/perceptual/lpips_squeeze.pth absent (fresh clone)")


def test_the_grid_measures_every_curve_and_resumes(tmp_path, capsys):
    from test_presets import photo, tiny_weights

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo(256, 256)).save(folder / "p.png")  # 4 patches
    prior = tiny_weights(tmp_path)
    argv = ["--prior", str(prior), "--mse", str(prior), "--heldout", str(folder), "--heldout-every", "1",
            "--kodak", "", "--qualities", "10,30", "--effort", "fast", "--steps", "1,2", "--gammas", "0,0.8",
            "--ancestral", "2:0.8", "--metrics", "ssimulacra2,butteraugli", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    table = (tmp_path / "out" / "realism.md").read_text()
    curves = ["avif", "cdc-avif-p", "prior steps=1 γ=0", "prior steps=2 γ=0.8", "prior steps=2 γ=0.8 ancestral"]
    for curve in curves:
        assert f"| {curve} | 10 |" in table and f"| {curve} | 30 |" in table
    assert (tmp_path / "out" / "realism.png").stat().st_size > 0
    points = (tmp_path / "out" / "points.csv").read_text().splitlines()
    assert len(points) == 1 + 2 * (2 + 5)  # header, qualities x (avif, mse, 5 prior settings)
    rows = list(csv.DictReader(points))
    assert all(0 < float(r["ssimulacra2"]) <= 100 for r in rows)  # measured beside Butteraugli, not overwritten
    header = next(line for line in table.splitlines() if line.startswith("| curve"))
    assert "| kid_deep | kid_deep_std |" in header  # the deep judge measured every curve: no nan in its column
    kid_deep = header.split(" | ").index("kid_deep")
    assert all(line.split(" | ")[kid_deep] != "nan" for line in table.splitlines() if line.startswith("| avif |"))

    capsys.readouterr()
    assert main(argv) == 0  # every image was done: nothing is decoded again
    assert "points in" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="other weights or settings"):
        main(argv + ["--seed", "1"])
    assert main(argv + ["--seed", "1", "--fresh"]) == 0 and "points in" in capsys.readouterr().out


def test_the_musts_compare_at_each_quality_within_the_span():
    def row(curve, q, bpp, kid, psnr):
        return {"curve": curve, "quality": q, "bpp": bpp, "kid": kid, "psnr": psnr}

    rows = [row("avif", q, b, 0.4, 30.0) for q, b in ((4, 0.1), (10, 0.2), (16, 0.28), (40, 0.8))]
    rows += [row("cdc-avif-m-mse", q, b, 0.5, 30.5) for q, b in ((4, 0.1), (10, 0.2), (16, 0.28), (40, 0.8))]
    rows += [row("prior a", q, b, 0.1, 29.0) for q, b in ((4, 0.1), (10, 0.2), (16, 0.28), (40, 0.8))]
    rows += [row("prior b", q, b, 0.1, 28.0 if q == 10 else 29.0) for q, b in ((4, 0.1), (10, 0.2), (16, 0.28))]
    verdict = {v["curve"]: v for v in musts(rows, "cdc-avif-m-mse")}
    assert verdict["prior a"]["rates_met"] == 3 and verdict["prior a"]["passes"]  # q40 is above 0.3 bpp
    assert verdict["prior b"]["rates_met"] == 2 and not verdict["prior b"]["passes"]  # 2 dB below AVIF at q10
    assert "KID/AVIF 0.25, KID/MSE 0.20, ΔPSNR -1.00 dB ✓" in verdict["prior a"]["detail"]
    assert verdict["prior a"]["deep_rates_met"] == 0  # rows without the deep judge meet no deep must

    for r in rows:  # the deep must: deep KID <= 0.4x AVIF's, PSNR >= AVIF - 1.5 dB
        r["kid_deep"] = {"avif": 1.0, "cdc-avif-m-mse": 0.9, "prior a": 0.35, "prior b": 0.45}[r["curve"]]
    verdict = {v["curve"]: v for v in musts(rows, "cdc-avif-m-mse")}
    assert verdict["prior a"]["deep_rates_met"] == 3 and verdict["prior a"]["deep_passes"]
    assert verdict["prior b"]["deep_rates_met"] == 0 and "deep KID/AVIF 0.45" in verdict["prior b"]["detail"]
