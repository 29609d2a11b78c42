"""Bjøntegaard delta rate (VCEG-M33): the average rate difference between two RD curves at equal quality.

Each curve's log-rate is fitted as a cubic polynomial of quality and both fits are integrated
over the quality interval the curves share; ``method="pchip"`` interpolates it piecewise (monotone cubic
Hermite, as JVET's common test conditions do) instead: for dense or kinked curves, such as an envelope of
several curves, where one global cubic wanders. The quality axis may be any metric that changes
monotonically with rate (PSNR, MS-SSIM in dB, LPIPS): the interval average does not care
about direction.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def ms_ssim_db(value: float) -> float:
    """MS-SSIM as ``-10 log10(1 - MS-SSIM)``: the usual axis for fitting, spreads values near 1."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def _log_rate_integral(rates: np.ndarray, quality: np.ndarray, lo: float, hi: float) -> float:
    # A cubic needs 4 points; with 2 or 3 the fit drops to the highest degree they determine.
    degree = min(3, len(rates) - 1)
    poly = np.polyint(np.polyfit(quality, np.log(rates), degree))
    return float(np.polyval(poly, hi) - np.polyval(poly, lo))


def _log_rate_integral_pchip(rates: np.ndarray, quality: np.ndarray, lo: float, hi: float) -> float:
    from scipy.interpolate import PchipInterpolator

    q, first = np.unique(quality, return_index=True)  # sorted; a repeated quality keeps its first rate
    return float(PchipInterpolator(q, np.log(rates[first])).integrate(lo, hi))


def bd_rate(
    ref_rates: Sequence[float],
    ref_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
    method: str = "cubic",
) -> float:
    """Rate change of ``test`` against ``ref`` at equal quality, in percent (negative = test saves bits).

    NaN when a curve has fewer than 2 usable points or the curves share no quality range.
    """
    curves = []
    for rates, quality in ((ref_rates, ref_quality), (test_rates, test_quality)):
        r, q = np.asarray(rates, dtype=np.float64), np.asarray(quality, dtype=np.float64)
        if r.shape != q.shape:
            raise ValueError(f"rates and quality differ in length: {r.shape} vs {q.shape}")
        keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
        r, q = r[keep], q[keep]
        if len(np.unique(q)) < 2:
            return math.nan
        curves.append((r, q))
    (r1, q1), (r2, q2) = curves
    lo, hi = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if hi <= lo:
        return math.nan
    integral = {"cubic": _log_rate_integral, "pchip": _log_rate_integral_pchip}[method]
    mean_diff = (integral(r2, q2, lo, hi) - integral(r1, q1, lo, hi)) / (hi - lo)
    return float((math.exp(mean_diff) - 1.0) * 100.0)
