"""Each curve against the anchor at the same bpp (model/evaluation/anchor.py)."""

import csv
import math

import pytest

from model.evaluation.anchor import FIELDS, anchor_at, vs_anchor, vs_anchor_markdown
from model.evaluation.rd import curves


def _row(curve, bpp, psnr, lpips, squeeze, encode=""):
    return {"codec": curve.split(" ")[0], "curve": curve, "encode": encode, "bpp": bpp, "psnr": psnr,
            "ms_ssim": math.nan, "lpips": lpips, "lpips_squeeze": squeeze}


ANCHOR = [_row("avif", 0.1, 30.0, 0.40, 0.30), _row("avif", 0.4, 34.0, 0.20, 0.10), _row("avif", 1.6, 38.0, 0.1, 0.05)]


def test_anchor_is_interpolated_in_log_bpp_and_never_extrapolated():
    assert anchor_at(ANCHOR, "psnr", 0.2) == pytest.approx(32.0)  # halfway in log2: 0.1 -> 0.4
    assert anchor_at(ANCHOR, "psnr", 0.8) == pytest.approx(36.0)
    assert anchor_at(ANCHOR, "lpips", 0.4) == pytest.approx(0.20)
    assert math.isnan(anchor_at(ANCHOR, "psnr", 0.09)) and math.isnan(anchor_at(ANCHOR, "psnr", 1.7))
    assert math.isnan(anchor_at([_row("avif", 0.1, 30.0, math.nan, math.nan)] * 3, "lpips", 0.1))


def test_rows_give_psnr_difference_and_lpips_ratios_in_the_bpp_range():
    mine = [_row("new steps=1 gamma=0", b, p, lp, sq, f"quality={q}")
            for q, (b, p, lp, sq) in enumerate([(0.05, 29.0, 0.5, 0.4), (0.2, 32.5, 0.24, 0.15),
                                                (0.8, 35.0, 0.1, 0.1), (1.0, 40.0, 0.05, 0.05)])]
    rows = vs_anchor(curves(ANCHOR + mine), "avif", (0.04, 0.9))
    assert [r["bpp"] for r in rows] == [0.05, 0.2, 0.8]  # 1.0 is outside the range
    below, mid, high = rows
    assert math.isnan(below["anchor_psnr"]) and math.isnan(below["psnr_diff"])  # under avif's lowest bpp
    assert mid["anchor_psnr"] == pytest.approx(32.0) and mid["psnr_diff"] == pytest.approx(0.5)
    assert mid["anchor_lpips"] == pytest.approx(0.3) and mid["lpips_ratio"] == pytest.approx(0.8)
    assert mid["anchor_lpips_squeeze"] == pytest.approx(0.2) and mid["lpips_squeeze_ratio"] == pytest.approx(0.75)
    assert high["psnr_diff"] == pytest.approx(-1.0) and high["lpips_ratio"] == pytest.approx(0.1 / 0.15)
    assert high["lpips_squeeze_ratio"] == pytest.approx(0.1 / 0.075) and set(FIELDS) <= set(mid)
    assert vs_anchor(curves(mine), "avif") == []  # no anchor: no rows

    text = vs_anchor_markdown(rows, (0.04, 0.9))
    assert "## new steps=1 gamma=0" in text and "| quality=1 | 0.200 | 32.50 | 32.00 | +0.50 |" in text
    assert "2 of 3 points inside avif's bpp span; PSNR >= avif at 1 (min difference -1.00 dB)" in text
    assert "LPIPS-alex ratio 0.667-0.800" in text and "LPIPS-squeeze ratio 0.750-1.333" in text


def test_written_with_the_results(tmp_path):
    from model.evaluation.results import write_results

    rows = ANCHOR + [_row("new", 0.2, 31.0, 0.33, 0.22)]
    vs_rows = vs_anchor(curves(rows), "avif")
    write_results(tmp_path, {}, [], rows, [], vs_rows, (0.0, math.inf))
    with (tmp_path / "vs_anchor.csv").open() as f:
        (written,) = list(csv.DictReader(f))
    assert float(written["psnr_diff"]) == pytest.approx(-1.0) and written["curve"] == "new"
    assert "(all bpp)" in (tmp_path / "vs_anchor.md").read_text()
