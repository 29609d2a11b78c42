"""Would a per-image choice of how the base layer is coded pay? AVIF variants of each photo (a scale of its
sides, upscaled back with Lanczos; a chroma subsampling) against the first: PSNR BD-rate per image, of
each variant and of an oracle that picks the cheapest variant at every PSNR, with encode CPU time. Issue
30's route 1 (a per-image scale or subsampling recorded in the bitstream) measured with classical parts
first: what the choice alone buys, before a learned upscaler or chroma restorer adds to it.

    python -m model.evaluation.base_variants --out results/base-variants/downscale-held-out
    python -m model.evaluation.base_variants --data ../shared/data/kodak --holdout-every 1 --size 768 \\
        --out results/base-variants/downscale-kodak
    python -m model.evaluation.base_variants --variants 1@4:2:0 1@4:4:4 --out results/base-variants/chroma-held-out

A variant is SCALE@SUBSAMPLING at the base layer's effort (``--effort``, default fast: speed 6). The
BD-rate range is the first variant's PSNR range over qualities 4..40 (the frontier's), the curves sampled
every 4 qualities from 2 to 70. Each variant's rate is read at the first's PSNRs (piecewise cubic in
log-rate) where it reaches them; the oracle takes the cheapest there, so it is never above the first;
BD-rates integrate piecewise (``bd_rate(method="pchip")``). A variant's figure covers only the PSNRs it
reaches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.imagefiles.pixels import held_out

from ..codecs.avif_base import EFFORTS, SUBSAMPLINGS, decode_base, encode_base
from .bdrate import bd_rate
from .inputs import load_images
from .metrics import psnr

DOWNSCALES = ("1@4:2:0", "0.75@4:2:0", "0.5@4:2:0")
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
    p.add_argument("--variants", nargs="+", default=list(DOWNSCALES), metavar="SCALE@SUBSAMPLING",
                   help="the first is the reference (default: %(default)s)")
    p.add_argument("--effort", default="fast", choices=sorted(EFFORTS), help="speed and tune of every variant")
    p.add_argument("--out", default=None, help="folder for variants.md and variants.json")
    return p


def parse_variant(spec: str) -> tuple[float, str]:
    """"0.75@4:2:0" -> (0.75, "4:2:0"); a bare scale is 4:2:0."""
    scale, _, subsampling = spec.partition("@")
    subsampling = subsampling or "4:2:0"
    try:
        value = float(scale)
    except ValueError:
        raise ValueError(f"variant {spec!r}: SCALE@SUBSAMPLING, for example 0.75@4:2:0 or 1@4:4:4") from None
    if not 0 < value <= 1:
        raise ValueError(f"variant {spec!r}: the scale is a fraction of the sides, in (0, 1]")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"variant {spec!r}: AVIF subsampling must be one of {', '.join(SUBSAMPLINGS)}")
    return value, subsampling


def rd_point(rgb: np.ndarray, variant: str, quality: int, effort: str) -> tuple[float, float, float]:
    """(bpp of the full-size image, PSNR of the decode brought back to full size, encode CPU s) of AVIF
    coded as ``variant`` says."""
    scale, subsampling = parse_variant(variant)
    settings = dataclasses.replace(EFFORTS[effort], subsampling=subsampling)
    h, w = rgb.shape[:2]
    image = Image.fromarray(rgb)
    small = image if scale == 1 else image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    cpu = time.process_time()
    data = encode_base(np.asarray(small), quality, settings)
    seconds = time.process_time() - cpu
    decoded = Image.fromarray(decode_base(data))
    if scale != 1:
        decoded = decoded.resize((w, h), Image.Resampling.LANCZOS)
    return len(data) * 8 / (h * w), psnr(rgb, np.asarray(decoded)), seconds


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


def image_bd_rates(rgb: np.ndarray, variants: list[str], effort: str) -> dict[str, float]:
    """Each variant's BD-rate against the first, the oracle's ("best_of"), and each variant's encode CPU
    seconds per megapixel over the BD qualities ("VARIANT encode s/MP")."""
    points = {v: [rd_point(rgb, v, q, effort) for q in QUALITIES] for v in variants}
    in_range = [i for i, q in enumerate(QUALITIES) if BD_QUALITIES[0] <= q <= BD_QUALITIES[1]]
    ref = [points[variants[0]][i] for i in in_range]
    ref_bpp, ref_psnr = np.array([b for b, _, _ in ref]), np.array([p for _, p, _ in ref])
    # each variant's rate at the reference's PSNRs; the oracle takes the cheapest there (the reference included)
    at_ref = {v: rate_at([(b, p) for b, p, _ in points[v]], ref_psnr) for v in variants[1:]}
    oracle = np.nanmin(np.stack([ref_bpp, *at_ref.values()]), axis=0)
    out = {}
    for v, rates in at_ref.items():  # over the PSNRs the variant reaches (a smaller image tops out lower)
        reach = np.isfinite(rates)
        out[v] = bd_rate(ref_bpp[reach], ref_psnr[reach], rates[reach], ref_psnr[reach], method="pchip")
    out["best_of"] = bd_rate(ref_bpp, ref_psnr, oracle, ref_psnr, method="pchip")
    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    for v in variants:
        out[f"{v} encode s/MP"] = float(np.mean([points[v][i][2] for i in in_range])) / megapixels
    return out


def summary(rows: list[dict], variants: list[str]) -> list[str]:
    def figures(key):
        v = np.array([r[key] for r in rows], float)
        return f"{np.nanmean(v):+.1f} % | {np.nanmedian(v):+.1f} % | {int(np.sum(v < -0.5))}/{len(v)}"

    def encode(v):
        return f"{np.mean([r[f'{v} encode s/MP'] for r in rows]):.3f}"

    lines = [f"| {variants[0]} (the reference) | | | | {encode(variants[0])} |"]
    lines += [f"| {v} | {figures(v)} | {encode(v)} |" for v in variants[1:]]
    lines.append(f"| oracle per-image choice of {', '.join(variants)} | {figures('best_of')} | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for spec in args.variants:
        try:
            parse_variant(spec)
        except ValueError as error:
            parser.error(str(error))
    images = load_images(args.data, args.photos, lambda n: held_out(n, args.holdout_every), args.size, spread=True)
    rows = []
    for i, (name, image) in enumerate(images, 1):
        rows.append({"photo": name, **image_bd_rates(image.rgb, args.variants, args.effort)})
        print(f"[{i}/{len(images)}] {name}: " + ", ".join(f"{k} {v:+.1f} %" for k, v in rows[-1].items()
                                                           if k != "photo" and "encode" not in k), flush=True)
    text = "\n".join([
        f"{len(rows)} photos of {args.data} (--holdout-every {args.holdout_every}), at most {args.size} px; AVIF at "
        f"effort {args.effort} (speed {EFFORTS[args.effort].speed}), scales by Lanczos down and up; PSNR BD-rate "
        f"against {args.variants[0]} over its q{BD_QUALITIES[0]}-{BD_QUALITIES[1]} range, piecewise (pchip) fits "
        f"(negative: fewer bits); encode CPU s per megapixel of the full-size image, one thread, mean over those "
        f"qualities", "",
        "| variant | BD-rate mean | median | photos that gain over 0.5 % | encode CPU s/MP |",
        "|---|---:|---:|---:|---:|", *summary(rows, args.variants), ""])
    print("\n" + text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "variants.md").write_text(text)
        (out / "variants.json").write_text(json.dumps({"effort": args.effort, "variants": args.variants,
                                                       "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
