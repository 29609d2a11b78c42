"""Each curve against the anchor at the same bpp: for every point of a curve (in a bpp range), the
anchor's value interpolated at that point's bpp, the PSNR difference and the ratio of each
perceptual distance (LPIPS, Butteraugli, SSIMULACRA: lower is better).

BD-rate averages over a quality interval; claims like "PSNR >= AVIF at every point in 0.1-0.8 bpp"
or "LPIPS <= 0.75x AVIF's at 3 rates" are about single points, which this table shows. The anchor
is interpolated linearly in log bpp between its measured points and never extrapolated: a point
outside the anchor's bpp span gets no comparison (NaN), so a missing anchor quality shows.
"""

from __future__ import annotations

import math

import numpy as np

from .metrics import PERCEPTUAL_COLUMNS, PERCEPTUAL_NAMES

FIELDS = ("curve", "anchor", "codec", "encode", "bpp", "psnr", "anchor_psnr", "psnr_diff",
          *(f for c in PERCEPTUAL_COLUMNS for f in (c, f"anchor_{c}", f"{c}_ratio")))  # fmt: skip


def anchor_at(anchor_rows: list[dict], metric: str, bpp: float) -> float:
    """``metric`` of the anchor at ``bpp``, linear in log bpp; NaN outside its span or where unmeasured."""
    pts = sorted((r["bpp"], r[metric]) for r in anchor_rows if r["bpp"] > 0 and math.isfinite(r.get(metric, math.nan)))
    if len(pts) < 2 or not pts[0][0] <= bpp <= pts[-1][0]:
        return math.nan
    x, y = zip(*pts)
    return float(np.interp(math.log(bpp), np.log(x), y))


def vs_anchor(rd_curves: dict[str, list[dict]], anchor: str, bpp_range=(0.0, math.inf)) -> list[dict]:
    """One row per point of every other curve with ``bpp_range[0] <= bpp <= bpp_range[1]``."""
    if anchor not in rd_curves:
        return []  # bd_rates already warns about a missing anchor
    lo, hi = bpp_range
    ref = rd_curves[anchor]
    rows = []
    for name, points in rd_curves.items():
        if name == anchor:
            continue
        for p in points:
            if not lo <= p["bpp"] <= hi:
                continue
            row = {"curve": name, "anchor": anchor, "codec": p["codec"], "encode": p["encode"], "bpp": p["bpp"],
                   "psnr": p["psnr"], "anchor_psnr": anchor_at(ref, "psnr", p["bpp"])}  # fmt: skip
            row["psnr_diff"] = row["psnr"] - row["anchor_psnr"]
            for c in PERCEPTUAL_COLUMNS:
                row[c], row[f"anchor_{c}"] = p.get(c, math.nan), anchor_at(ref, c, p["bpp"])
                row[f"{c}_ratio"] = p[c] / row[f"anchor_{c}"] if row[f"anchor_{c}"] > 0 else math.nan
            rows.append(row)
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _summary(rows: list[dict], anchor: str) -> str:
    """Counts over the compared points: where PSNR holds up, the range of each perceptual ratio."""
    compared = [r for r in rows if math.isfinite(r["psnr_diff"])]
    parts = [f"{len(compared)} of {len(rows)} points inside {anchor}'s bpp span"]
    if compared:
        parts.append(f"PSNR >= {anchor} at {sum(r['psnr_diff'] >= 0 for r in compared)} "
                     f"(min difference {min(r['psnr_diff'] for r in compared):+.2f} dB)")
    for c in PERCEPTUAL_COLUMNS:
        ratios = [r[f"{c}_ratio"] for r in compared if math.isfinite(r[f"{c}_ratio"])]
        if ratios:
            parts.append(f"{PERCEPTUAL_NAMES[c]} ratio {min(ratios):.3f}-{max(ratios):.3f}")
    return "; ".join(parts)


def vs_anchor_markdown(rows: list[dict], bpp_range) -> str:
    """Per anchor, a table per curve (points by bpp) with a one-line summary under it."""
    if not rows:
        return "No comparison: no anchor was evaluated or no point lies in the bpp range.\n"
    lo, hi = bpp_range
    span = f"{lo:g}-{hi:g} bpp" if math.isfinite(hi) else "all bpp"
    measured = [c for c in PERCEPTUAL_COLUMNS if any(math.isfinite(r[c]) for r in rows)]
    out = []
    for anchor in dict.fromkeys(r["anchor"] for r in rows):
        lpips_heads = [h for c in measured for h in (PERCEPTUAL_NAMES[c], f"{anchor} {PERCEPTUAL_NAMES[c]}", "ratio")]
        head = ["setting", "bpp", "PSNR", f"{anchor} PSNR", "ΔPSNR", *lpips_heads]
        out += [f"# Against {anchor} at the same bpp ({span})", "",
                f"{anchor} interpolated linearly in log bpp between its measured points; '-' outside its span.", ""]
        for curve in dict.fromkeys(r["curve"] for r in rows if r["anchor"] == anchor):
            mine = [r for r in rows if r["curve"] == curve and r["anchor"] == anchor]
            out += [f"## {curve}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for r in mine:
                cells = [r["encode"] or r["codec"], _fmt(r["bpp"], ".3f"), _fmt(r["psnr"], ".2f"),
                         _fmt(r["anchor_psnr"], ".2f"), _fmt(r["psnr_diff"], "+.2f")]
                for c in measured:
                    cells += [_fmt(r[c], ".3f"), _fmt(r[f"anchor_{c}"], ".3f"), _fmt(r[f"{c}_ratio"], ".3f")]
                out.append("| " + " | ".join(cells) + " |")
            out += ["", _summary(mine, anchor), ""]
    return "\n".join(out)
