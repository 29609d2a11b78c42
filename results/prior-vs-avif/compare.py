"""The shipped prior cdc-avif-m-prior decoded at its MSE end (1 step, γ 0) against AVIF at Pillow's
defaults (fast) and at its strong settings (best: speed 2, 4:4:4, tune=psnr), and against the network it
was trained from (cdc-avif-m-mse), in one run on held-out photos: PSNR, SSIMULACRA2, Butteraugli
(none of them a training loss), encode CPU seconds, BD-rates.

    OMP_NUM_THREADS=1 python results/prior-vs-avif/compare.py > results/prior-vs-avif/README.md
"""
import statistics
import time

import numpy as np
import torch

from model import load_codec
from model.evaluation.bdrate import bd_rate
from model.evaluation.inputs import load_images
from model.evaluation.metrics import psnr, ssimulacra2, tool_values
from pipeline.imagefiles.pixels import held_out

torch.set_num_threads(1)
QUALITIES = (4, 10, 20, 30)
images = load_images("../shared/data/train", 8, lambda name: held_out(name, 10), 512, spread=True)
curves = {  # name -> (codec, effort)
    "avif fast": ("avif-q10", "fast"), "avif best": ("avif-q10", "best"),
    "cdc-avif-m-prior fast": ("cdc-avif-m-prior", "fast"), "cdc-avif-m-prior best": ("cdc-avif-m-prior", "best"),
    "cdc-avif-m-mse best": ("cdc-avif-m-mse", "best"),
}
codecs = {n: load_codec(n) for n in {c for c, _ in curves.values()}}
points = {c: [] for c in curves}
for q in QUALITIES:
    acc = {c: {"bpp": [], "psnr": [], "ssimulacra2": [], "butteraugli": [], "enc": []} for c in curves}
    for name, img in images:
        rgb = img.rgb
        px = rgb.shape[0] * rgb.shape[1]
        for curve, (codec, effort) in curves.items():
            c = codecs[codec]
            t0 = time.process_time()
            blob = c.encode([rgb], quality=q, effort=effort)[0]
            enc = time.process_time() - t0
            kw = {} if codec.startswith("avif") else {"steps": 1, "gamma": 0.0}
            out = np.asarray(c.decode([blob], **kw)[0].convert("RGB"))
            a = acc[curve]
            a["bpp"].append(len(blob) * 8 / px); a["psnr"].append(psnr(rgb, out)); a["enc"].append(enc / px * 1e6)
            a["ssimulacra2"].append(ssimulacra2(rgb, out))
            a["butteraugli"].append(tool_values(["butteraugli"], rgb, out)["butteraugli"])
    for curve in curves:
        points[curve].append({k: statistics.fmean(v) for k, v in acc[curve].items()} | {"q": q})

print("# cdc-avif-m-prior (1 step, γ 0) against AVIF fast and AVIF best, one run\n")
print(f"{len(images)} held-out photos of ../shared/data/train at 512 px (`--holdout-every 10` slice, spread over the "
      f"names), AVIF qualities {', '.join(map(str, QUALITIES))}; means over the photos; encode CPU s/MP on one thread. "
      "Command: the docstring of `compare.py`.\n")
print("| curve | q | bpp | PSNR | SSIMULACRA2 | Butteraugli | encode s/MP |")
print("|---|---|---|---|---|---|---|")
for curve, pts in points.items():
    for p in pts:
        print(f"| {curve} | {p['q']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ssimulacra2']:.2f} | "
              f"{p['butteraugli']:.2f} | {p['enc']:.2f} |")
print("\nBD-rate (%, negative: fewer bits at equal quality; Butteraugli as its negative, lower is better)\n")
print("| curve | vs | PSNR | SSIMULACRA2 | Butteraugli |")
print("|---|---|---|---|---|")
for test, ref in (("cdc-avif-m-prior fast", "avif fast"), ("cdc-avif-m-prior best", "avif fast"),
                  ("cdc-avif-m-prior best", "avif best"), ("cdc-avif-m-mse best", "avif best"),
                  ("cdc-avif-m-prior best", "cdc-avif-m-mse best")):
    r, t = points[ref], points[test]
    row = []
    for m, sign in (("psnr", 1), ("ssimulacra2", 1), ("butteraugli", -1)):
        row.append(bd_rate([p["bpp"] for p in r], [sign * p[m] for p in r],
                           [p["bpp"] for p in t], [sign * p[m] for p in t]))
    print(f"| {test} | {ref} | " + " | ".join(f"{v:+.1f}" for v in row) + " |")
