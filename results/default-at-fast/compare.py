"""cdc-avif-mse against cdc-avif-m-mse at effort fast, the same AVIF base (so the same bits): PSNR and
SSIMULACRA2 per quality on held-out photos. Why the default codec is cdc-avif-mse at fast (issue 25).

    OMP_NUM_THREADS=1 python results/default-at-fast/compare.py > results/default-at-fast/README.md
"""
import statistics
import sys
import time

import numpy as np
import torch

from model import load_codec
from model.evaluation.inputs import load_images
from pipeline.imagefiles.pixels import held_out
from model.evaluation.metrics import psnr, ssimulacra2

torch.set_num_threads(1)
images = load_images("../shared/data/train", 12, lambda name: held_out(name, 10), 512, spread=True)
names = ("cdc-avif-mse", "cdc-avif-m-mse")
codecs = {n: load_codec(n) for n in names}
print("# cdc-avif-mse vs cdc-avif-m-mse at effort fast (same AVIF base, same bits)\n")
print(f"{len(images)} held-out photos of ../shared/data/train at 512 px (--held-out 10 --spread), "
      "1 step, γ 0; means over the photos. Command: see the docstring of `compare.py`.\n")
print("| quality | bpp (mse / m-mse) | PSNR AVIF | PSNR cdc-avif-mse | PSNR cdc-avif-m-mse | SSIMULACRA2 AVIF | cdc-avif-mse | cdc-avif-m-mse |")
print("|---|---|---|---|---|---|---|---|")
t0 = time.process_time()
for q in (4, 10, 18, 28, 40):
    rows = {k: [] for k in ("bpp_a", "bpp_b", "p0", "pa", "pb", "s0", "sa", "sb")}
    for name, img in images:
        rgb = img.rgb
        px = rgb.shape[0] * rgb.shape[1]
        out = {}
        for n, c in codecs.items():
            blob = c.encode([rgb], quality=q, effort="fast")[0]
            out[n] = (len(blob) * 8 / px, np.asarray(c.decode([blob], steps=1, gamma=0.0)[0].convert("RGB")))
        base = np.asarray(load_codec(f"avif-q{q}").decode(load_codec(f"avif-q{q}").encode([rgb]))[0].convert("RGB"))
        rows["bpp_a"].append(out[names[0]][0]); rows["bpp_b"].append(out[names[1]][0])
        rows["p0"].append(psnr(rgb, base)); rows["pa"].append(psnr(rgb, out[names[0]][1])); rows["pb"].append(psnr(rgb, out[names[1]][1]))
        rows["s0"].append(ssimulacra2(rgb, base)); rows["sa"].append(ssimulacra2(rgb, out[names[0]][1])); rows["sb"].append(ssimulacra2(rgb, out[names[1]][1]))
    m = {k: statistics.fmean(v) for k, v in rows.items()}
    print(f"| {q} | {m['bpp_a']:.3f} / {m['bpp_b']:.3f} | {m['p0']:.2f} | {m["pa"]:.2f} | {m['pb']:.2f} | "
          f"{m['s0']:.2f} | {m["sa"]:.2f} | {m['sb']:.2f} |", flush=True)
print(f"\n{time.process_time() - t0:.0f} CPU s on one thread.", file=sys.stderr)
