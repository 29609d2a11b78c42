"""Decoder-in-the-loop rate control measured: a PSNR target per image against one fixed quality.

    python -m model.evaluation.target_psnr --images ../shared/data/kodak --target-psnr 30 \\
        --codec cdc-avif-mse --out results/rate-control

For each image, cdc-avif's ``target_psnr`` finds the least base quality whose restored image reaches
the target. The fixed-quality run it is compared with is the least single quality at which every
image reaches the target: the largest per-image choice, since restored PSNR rises with quality.
Prints (and with ``--out`` writes) a table per image: chosen quality, bytes, PSNR, encode seconds
(the search's cost) against the fixed-quality encode, and the totals.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..codecs.avif_base import base_settings
from .inputs import load_images
from .metrics import psnr


def measure(codec, images, target: float, settings) -> dict:
    rows = []
    for name, img in images:
        start = time.perf_counter()
        choice = codec.rate_controlled(img.rgb, settings, target_psnr=target)
        rows.append({"image": name, "quality": choice.quality, "met": choice.met, "probes": choice.probes,
                     "psnr": choice.psnr, "search_s": time.perf_counter() - start})
    fixed = max(r["quality"] for r in rows)
    for (name, img), row in zip(images, rows):
        start = time.perf_counter()
        blob = codec.encode([img.rgb], quality=fixed, effort="fast", speed=settings.speed,
                            subsampling=settings.subsampling, tune=settings.tune)[0]
        row["fixed_encode_s"] = time.perf_counter() - start
        row["fixed_bytes"] = len(blob)
        row["fixed_psnr"] = psnr(img.rgb, np.asarray(codec.decode([blob])[0].convert("RGB")))
        row["bytes"] = len(codec.encode([img.rgb], quality=row["quality"], effort="fast", speed=settings.speed,
                                        subsampling=settings.subsampling, tune=settings.tune)[0])
    return {"target_psnr": target, "fixed_quality": fixed, "rows": rows}


def table(result: dict) -> str:
    rows, fixed = result["rows"], result["fixed_quality"]
    lines = [f"| image | quality | bytes | PSNR | probes | search s | fixed q{fixed} bytes | PSNR | encode s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['quality']} | {r['bytes']:,} | {r['psnr']:.2f} | {r['probes']} | "
                     f"{r['search_s']:.2f} | {r['fixed_bytes']:,} | {r['fixed_psnr']:.2f} | {r['fixed_encode_s']:.2f} |")
    total, total_fixed = sum(r["bytes"] for r in rows), sum(r["fixed_bytes"] for r in rows)
    lines.append(f"| **total** | | **{total:,}** | min {min(r['psnr'] for r in rows):.2f} | "
                 f"{sum(r['probes'] for r in rows)} | {sum(r['search_s'] for r in rows):.1f} | **{total_fixed:,}** | "
                 f"min {min(r['fixed_psnr'] for r in rows):.2f} | {sum(r['fixed_encode_s'] for r in rows):.1f} |")
    lines.append(f"\nTarget {result['target_psnr']} dB: every image met it: "
                 f"{all(r['met'] for r in rows)}; bytes {total:,} vs {total_fixed:,} at fixed quality {fixed} "
                 f"({100 * (total / total_fixed - 1):+.1f} %).")
    return "\n".join(lines)


def main(argv=None) -> None:
    from .. import load_codec
    from ..threads import fixed_threads

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="folder of images (or WebDataset shards)")
    p.add_argument("--target-psnr", type=float, default=30.0)
    p.add_argument("--codec", default="cdc-avif-mse", help="a cdc-avif codec name or weights file")
    p.add_argument("--effort", default="fast", help="base-layer effort: fast, medium, best")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--threads", type=int, default=1, help="torch threads (timings are per this)")
    p.add_argument("--out", default=None, help="folder for README.md with the table")
    args = p.parse_args(argv)
    codec = load_codec(args.codec)
    with fixed_threads(args.threads):
        result = measure(codec, load_images(args.images, args.limit), args.target_psnr, base_settings(args.effort))
    text = table(result)
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "README.md").write_text(
            f"# Rate control: --target-psnr {args.target_psnr} on {args.images}\n\n"
            f"`python -m model.evaluation.target_psnr --images {args.images} --target-psnr {args.target_psnr} "
            f"--codec {args.codec} --effort {args.effort} --threads {args.threads} --out {args.out}`\n\n{text}\n")


if __name__ == "__main__":
    main()
