"""The cost table: CPU and GPU seconds per megapixel of each encode effort and decode preset, bytes
against AVIF fast, dollars per million images at stated prices, and a run of a billion images.

    python jobs/cost.py --frontier results/frontier-ssimulacra2 --photos ../shared/data/train --out results/cost

Encode figures (CPU s/MP, BD-rates on PSNR and SSIMULACRA2 against AVIF fast, AVIF fast's bytes at
--quality) come from a frontier run (``jobs/evaluate.py --frontier --metrics psnr,ssimulacra2``);
decode figures are measured here on --images photos (one thread, CPU seconds of the process):
AVIF decode, the network at each --steps, the PNG encode of the result; the network's MACs per pixel
are counted and turned into GPU seconds at ``Prices.gpu_tmacs``. Prices: ``model.evaluation.pricing``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from model import load_codec
from model.evaluation.pricing import PRICES, DecodeFigures, EncodeFigures, billion, decode_row, encode_row


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cost.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frontier", type=Path, required=True, help="a frontier run's folder (frontier.csv, averages.csv)")
    p.add_argument("--codec", default="cdc-avif-m-mse", help="the cdc-avif codec of the frontier (default cdc-avif-m-mse)")
    p.add_argument("--photos", type=Path, required=True, help="photos to time decoding on")
    p.add_argument("--images", type=int, default=6, help="photos to time (default 6)")
    p.add_argument("--side", type=int, default=512, help="downscale them to at most this many px (default 512)")
    p.add_argument("--quality", type=int, default=30, help="AVIF quality of the archive (default 30)")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="decode presets to time (default 1 2 4)")
    p.add_argument("--out", type=Path, default=None, help="write cost.md and figures.json here")
    return p


def encode_figures(frontier: Path, codec: str, quality: int) -> tuple[list[EncodeFigures], float]:
    """Each effort's figures from a frontier run, and AVIF fast's GB per megapixel at ``quality``."""
    rows = {r["curve"]: r for r in csv.DictReader((frontier / "frontier.csv").open())}
    efforts = [EncodeFigures(curve.rpartition(" ")[2], float(r["encode_s_mp"]), float(r["bd_vs_default"]),
                             float(r["ssim2_vs_default"]))
               for curve, r in rows.items() if curve.startswith(codec + " ")]
    fast = sorted((int(a["encode"].split("quality=")[1].split()[0]), float(a["bpp"]))
                  for a in csv.DictReader((frontier / "averages.csv").open()) if a["curve"] == "avif fast")
    bpp = float(np.interp(quality, [q for q, _ in fast], [b for _, b in fast]))
    return efforts, bpp / 8 / 1e3  # bits per pixel -> GB per megapixel


def decode_figures(codec_name: str, photos: Path, n: int, side: int, quality: int, steps: list[int]) -> list[dict]:
    """Per decode preset: CPU s/MP of the whole decode (one thread), of AVIF decode and of the PNG encode
    alone, and the network's MMAC per pixel and step."""
    import torch

    from model.codecs.avif_base import decode_base, encode_base
    from model.evaluation.network_cost import count_macs

    torch.set_num_threads(1)
    codec = load_codec(codec_name)
    images = []
    for path in sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]:
        img = Image.open(path).convert("RGB")
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        images.append(np.asarray(img))
    mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    blobs = [codec.encode([im], quality=quality)[0] for im in images]
    avifs = [encode_base(im, quality) for im in images]  # the same base layer as a plain AVIF file
    decoded = codec.decode(blobs)

    def cpu_s(fn) -> float:
        fn()  # warm-up
        t0 = time.process_time()
        fn()
        return (time.process_time() - t0) / mp

    avif_s = cpu_s(lambda: [decode_base(a) for a in avifs])
    png_s = cpu_s(lambda: [im.save(io.BytesIO(), format="PNG", compress_level=3) for im in decoded])
    model, h, w = codec.model, 384, 512
    x, ones = torch.zeros(1, 3, h, w), torch.ones(1)
    mmac = count_macs(model.denoiser, lambda: model.denoiser(x, x, ones, ones * quality, ones)) / (h * w) / 1e6
    return [{"steps": s, "decode_s_mp": cpu_s(lambda: [codec.decode([b], steps=s) for b in blobs]),
             "avif_decode_s_mp": avif_s, "png_s_mp": png_s, "mmac_px_step": mmac, "megapixels": mp,
             "images": len(images)} for s in steps]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    efforts, gb_mp = encode_figures(args.frontier, args.codec, args.quality)
    measured = decode_figures(args.codec, args.photos, args.images, args.side, args.quality, args.steps)
    decodes = [DecodeFigures(m["steps"], m["decode_s_mp"] + m["png_s_mp"], m["avif_decode_s_mp"] + m["png_s_mp"],
                             m["mmac_px_step"] * m["steps"]) for m in measured]
    p = PRICES
    lines = [f"# Cost model: {args.codec}, AVIF quality {args.quality}", "",
             f"Prices (stated, USD): ${p.cpu_hour}/vCPU-hour, ${p.gpu_hour}/GPU-hour, ${p.storage_gb_month}/GB-month "
             f"kept {p.months} months; GPU throughput {p.gpu_tmacs:g} TMAC/s sustained. AVIF fast at quality "
             f"{args.quality}: {gb_mp * 1e6:.1f} KB per megapixel ({args.frontier}).", "",
             "## Encode, per million megapixels", "",
             "| effort | CPU s/MP | BD-rate PSNR | BD-rate SSIMULACRA2 | encode $ | GB kept (SSIMULACRA2) | "
             f"GB saved vs AVIF fast | encode + {p.months} months $ (PSNR) | (SSIMULACRA2) |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [encode_row(e, gb_mp) for e in efforts]
    for r in rows:
        lines.append(f"| {r['effort']} | {r['cpu_s_mp']:.2f} | {r['bd_psnr']:+.1f} % | {r['bd_ssimulacra2']:+.1f} % | "
                     f"{r['encode_dollars']:.2f} | {r['gb_ssimulacra2']:.1f} | {r['saved_gb_ssimulacra2']:+.1f} | "
                     f"{r['total_psnr']:.2f} | {r['total_ssimulacra2']:.2f} |")
    lines += ["", "## Decode, per million megapixels", "",
              "| steps | CPU s/MP, network on CPU | CPU s/MP around the network | MMAC/px | GPU s/MP | "
              "$ on CPUs | $ on CPUs + shared GPU | CPU workers per GPU |", "|---|---|---|---|---|---|---|---|"]
    drows = [decode_row(d) for d in decodes]
    for r in drows:
        lines.append(f"| {r['steps']} | {r['cpu_s_mp']:.3f} | {r['around_s_mp']:.3f} | {r['mmac_px']:.3f} | "
                     f"{r['gpu_s_mp']:.5f} | {r['cpu_only_dollars']:.2f} | {r['with_gpu_dollars']:.2f} | "
                     f"{r['cpus_per_gpu']:.0f} |")
    fast = next(e for e in efforts if e.effort == "fast")
    b = billion(1e9, measured[0]["megapixels"] / measured[0]["images"], fast, decodes[0], gb_mp)
    lines += ["", f"## 1 billion images of {b['megapixels'] / 1e9:.2f} MP (512 px photos), effort fast, in "
              f"{b['hours']:g} hours", "",
              f"- encode: {b['encode_cpu_hours']:,.0f} CPU-hours = {b['encode_nodes']:.1f} nodes of "
              f"{p.cpus_per_node} vCPUs for {b['hours']:g} h, ${b['encode_dollars']:,.0f}",
              f"- kept: {b['tb_stored']:,.1f} TB, ${b['storage_dollars_month']:,.0f} a month, "
              f"${b['storage_dollars']:,.0f} over {p.months} months",
              f"- one full restore at 1 step: {b['decode_gpu_nodes']:.1f} nodes of {p.cpus_per_node} vCPUs + "
              f"{b['decode_gpus_per_node']} GPU(s) for {b['hours']:g} h, ${b['decode_dollars']:,.0f} "
              f"(on CPUs alone: ${b['decode_cpu_only_dollars']:,.0f})", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cost.md").write_text(text + f"\nCommand: `python jobs/cost.py {' '.join(argv or sys.argv[1:])}`\n")
        (args.out / "figures.json").write_text(json.dumps({"encode": rows, "decode": drows, "measured": measured,
                                                           "billion": b}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
