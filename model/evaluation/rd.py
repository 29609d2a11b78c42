"""Rate-distortion summaries: averages per codec setting, RD curves, BD-rates against an anchor.

Averages are means over images of the per-image values (the convention of CompressAI's published
Kodak curves); BD-rates compare each curve with the anchor curve (WebP by default).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .bdrate import bd_rate, ms_ssim_db
from .metrics import LPIPS_COLUMNS, SCORE_COLUMNS, TOOL_COLUMNS

METRICS = ("psnr", "ms_ssim", *LPIPS_COLUMNS, *TOOL_COLUMNS, *SCORE_COLUMNS)  # lpips is LPIPS-alex; lpips_squeeze ...; butteraugli
SETTING_KEYS = ("codec", "curve", "family", "steps", "gamma", "encode", "decode")


def _mean(values) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def averages(points: list[dict]) -> list[dict]:
    """One row per codec setting (codec, encode and decode options): the mean of each per-image value."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["codec"], p["encode"], p["decode"]), []).append(p)
    rows = []
    for group in groups.values():
        row = {k: group[0][k] for k in SETTING_KEYS}
        row["images"] = len(group)
        for k in ("bpp", *METRICS, "encode_s", "decode_s"):
            row[k] = _mean(p.get(k) for p in group)  # a metric not measured: NaN
        rows.append(row)
    return rows


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Average rows grouped into RD curves, each sorted by bpp."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["curve"], []).append(r)
    return {name: sorted(rs, key=lambda r: r["bpp"]) for name, rs in out.items()}


def bd_rates(rd_curves: dict[str, list[dict]], anchor: str) -> list[dict]:
    """BD-rate (%) of every curve against ``anchor`` on PSNR, MS-SSIM (in dB), each LPIPS network and tool metric."""
    if anchor not in rd_curves:
        warnings.warn(f"no BD-rates: anchor curve '{anchor}' was not evaluated (add e.g. 'webp-q{{0,10,30,50,70}}')")
        return []
    axes = {m: (lambda r, m=m: r[m]) for m in METRICS}
    axes["ms_ssim"] = lambda r: ms_ssim_db(r["ms_ssim"])
    ref = rd_curves[anchor]
    rows = []
    for name, rs in rd_curves.items():
        if name == anchor:
            continue
        row = {"curve": name, "anchor": anchor}
        for metric, value in axes.items():
            row[f"bd_rate_{metric}"] = bd_rate(
                [r["bpp"] for r in ref], [value(r) for r in ref], [r["bpp"] for r in rs], [value(r) for r in rs]
            )
        rows.append(row)
    return rows
