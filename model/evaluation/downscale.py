"""Would coding a downscaled image pay? AVIF of the photo at 1, 3/4 and 1/2 of its sides, upscaled back with
Lanczos, against AVIF at full size: PSNR BD-rate per image, and of an oracle that picks the best scale per
image at every rate (the upper envelope of all the points). Issue 30's route 1 (a per-image scale with a
learned upscaler) measured with a classical upscaler first: what the choice of scale alone buys.

    python -m model.evaluation.downscale --out results/downscale/held-out
    python -m model.evaluation.downscale --data ../shared/data/kodak --holdout-every 1 --size 768 \\
        --out results/downscale/kodak

The base layer's settings at an effort (default fast: speed 6, 4:2:0); the BD-rate range is full size's
PSNR range over qualities 4..40 (the frontier's), the curves sampled every 4 qualities from 2 to 70. Each
scale's rate is read at full size's PSNRs (piecewise cubic in log-rate), where it reaches them; the oracle
takes the cheapest of the scales at each, so it is never above full size; BD-rates integrate piecewise
(``bd_rate(method="pchip")``). A scale's figure covers only the PSNRs it reaches.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.imagefiles.pixels import held_out

from ..codecs.avif_base import EFFORTS, decode_base, encode_base
from .bdrate import bd_rate
from .inputs import load_images
from .metrics import psnr

SCALES = (1.0, 0.75, 0.5)
QUALITIES = tuple(range(2, 72, 4))
BD_QUALITIES = (4, 40)  # the frontier's range: full size's PSNR over it bounds every BD-rate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--data", default="../shared/data/train", help="photos (with --holdout-every: its held-out slice)")
    p.add_argument("--holdout-every", type=int, default=10, help="1: every photo (a folder in no training set)")
    p.add_argument("--photos", type=int, default=24, help="spread over the sorted names")
    p.add_argument("--size", type=int, default=512, help="longest side after downscaling the source")
    p.add_argument("--effort", default="fast", choices=sorted(EFFORTS))
    p.add_argument("--out", default=None, help="folder for downscale.md and downscale.json")
    return p


def rd_point(rgb: np.ndarray, scale: float, quality: int, effort: str) -> tuple[float, float]:
    """(bpp of the full-size image, PSNR of the upscaled decode) of AVIF at ``scale`` of the sides."""
    h, w = rgb.shape[:2]
    image = Image.fromarray(rgb)
    small = image if scale == 1 else image.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
    data = encode_base(np.asarray(small), quality, EFFORTS[effort])
    decoded = Image.fromarray(decode_base(data))
    if scale != 1:
        decoded = decoded.resize((w, h), Image.LANCZOS)
    return len(data) * 8 / (h * w), psnr(rgb, np.asarray(decoded))


def envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no cheaper point beats: an oracle's pick of scale at every rate."""
    kept, best = [], -np.inf
    for bpp, quality in sorted(points, key=lambda point: (point[0], -point[1])):  # at equal rates the best first
        if quality > best:
            kept.append((bpp, quality))
            best = quality
    return kept


def rate_at(points: list[tuple[float, float]], targets: np.ndarray) -> np.ndarray:
    """The curve's bpp at each target PSNR (piecewise cubic in log-rate), NaN outside its PSNR range."""
    from scipy.interpolate import PchipInterpolator

    env = envelope(points)  # rate rises with PSNR along it: one rate per PSNR
    bpp, quality = np.array([b for b, _ in env]), np.array([p for _, p in env])
    if len(env) < 2:
        return np.full(len(targets), np.nan)
    rates = np.exp(PchipInterpolator(quality, np.log(bpp))(targets))
    return np.where((targets >= quality[0]) & (targets <= quality[-1]), rates, np.nan)


def image_bd_rates(rgb: np.ndarray, effort: str) -> dict[str, float]:
    curves = {s: [rd_point(rgb, s, q, effort) for q in QUALITIES] for s in SCALES}
    ref = [p for q, p in zip(QUALITIES, curves[1.0]) if BD_QUALITIES[0] <= q <= BD_QUALITIES[1]]
    ref_bpp, ref_psnr = np.array([b for b, _ in ref]), np.array([p for _, p in ref])
    # each scale's rate at full size's PSNRs; the oracle takes the cheapest there (full size itself included)
    at_ref = {s: rate_at(curves[s], ref_psnr) for s in SCALES[1:]}
    oracle = np.nanmin(np.stack([ref_bpp, *at_ref.values()]), axis=0)
    out = {}
    for s, rates in at_ref.items():  # over the PSNRs the scale reaches (a smaller image tops out lower)
        reach = np.isfinite(rates)
        out[f"x{s}"] = bd_rate(ref_bpp[reach], ref_psnr[reach], rates[reach], ref_psnr[reach], method="pchip")
    out["best_of"] = bd_rate(ref_bpp, ref_psnr, oracle, ref_psnr, method="pchip")
    return out


def summary(rows: list[dict]) -> list[str]:
    lines = []
    for key in ("x0.75", "x0.5", "best_of"):
        v = np.array([r[key] for r in rows], float)
        label = "oracle per-image choice of 1, 0.75, 0.5" if key == "best_of" else f"scale {key[1:]}"
        lines.append(f"| {label} | {np.nanmean(v):+.1f} % | {np.nanmedian(v):+.1f} % | "
                     f"{int(np.sum(v < -0.5))}/{len(v)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    select = (lambda n: held_out(n, args.holdout_every)) if args.holdout_every > 1 else None
    images = load_images(args.data, args.photos, select, args.size, spread=True)
    rows = []
    for i, (name, image) in enumerate(images, 1):
        rows.append({"photo": name, **image_bd_rates(image.rgb, args.effort)})
        print(f"[{i}/{len(images)}] {name}: " + ", ".join(f"{k} {v:+.1f} %" for k, v in rows[-1].items()
                                                           if k != "photo"), flush=True)
    text = "\n".join([
        f"{len(rows)} photos of {args.data} (--holdout-every {args.holdout_every}), at most {args.size} px; AVIF at "
        f"effort {args.effort}, Lanczos down and up; PSNR BD-rate against full size over its q{BD_QUALITIES[0]}-"
        f"{BD_QUALITIES[1]} range, piecewise (pchip) fits (negative: fewer bits)", "",
        "| | mean | median | photos that gain over 0.5 % |", "|---|---:|---:|---:|", *summary(rows), ""])
    print("\n" + text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "downscale.md").write_text(text)
        (out / "downscale.json").write_text(json.dumps({"effort": args.effort, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
