"""Issue 30 route 1, second probe: side information that varies over the image. Per block (16, 32 or 64 px),
one scale of the network's residual, x ~ base + a_k * (net - base), shared over RGB or one per channel,
solved by least squares at encode and quantised to steps of 1/4 or 1/8 in [0, 2]; its cost is what an
adaptive (Krichevsky-Trofimov) code of the block indices takes. "oracle" is the unquantised per-channel
16 or 32 px scale at no cost: a bound for any block-wise scaling of that size. BD-rate on PSNR against the network alone, per
photo over AVIF qualities 4-40 (effort fast), then averaged.

Usage: OMP_NUM_THREADS=1 python results/side-info/block_probe.py [N] (the first N held-out photos of
../shared/data/train, 1 in 10 by name hash, at 512 px; default 12). Writes results/side-info/blocks.md."""
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model import load_codec, unpack
from model.codecs.base_layer import read_base_payload
from model.evaluation.bdrate import bd_rate
from model.evaluation.metrics import psnr
from pipeline.imagefiles.pixels import held_out, to_rgb8

torch.set_num_threads(1)
QUALITIES = (4, 10, 18, 28, 40)
ORACLES = (16, 32)  # unquantised, uncounted: what any block-wise scaling of this size could give at most
VARIANTS = [(size, shared, step) for size in (16, 32, 64) for shared in (True, False) for step in (0.25, 0.125)]


def kt_bits(symbols: np.ndarray, alphabet: int) -> float:
    """Bits an adaptive code with the Krichevsky-Trofimov estimate spends on ``symbols``."""
    counts, bits = np.zeros(alphabet), 0.0
    for s in symbols:
        bits -= math.log2((counts[s] + 0.5) / (counts.sum() + alphabet / 2))
        counts[s] += 1
    return bits


def block_scaled(x, base, residual, size, shared, step):
    """The image with each block's residual scaled by its least-squares factor (quantised when ``step``),
    and the bits of the factors."""
    out, symbols = base + residual, []
    for i in range(0, x.shape[0], size):
        for j in range(0, x.shape[1], size):
            block = (slice(i, i + size), slice(j, j + size))
            err, r = x[block] - base[block], residual[block]
            axes = (0, 1, 2) if shared else (0, 1)
            num, den = (err * r).sum(axes), (r * r).sum(axes)
            scale = np.where(den > 0, num / np.maximum(den, 1e-9), 1.0)
            if step:
                k = np.clip(np.round(scale / step), 0, round(2 / step)).astype(int)
                symbols.append(np.atleast_1d(k))
                scale = k * step
            out[block] = base[block] + scale * r
    bits = kt_bits(np.concatenate(symbols), round(2 / step) + 1) if step else 0.0
    return np.clip(np.round(out), 0, 255).astype(np.uint8), bits


def main(n: int) -> None:
    files = sorted(p for p in Path("../shared/data/train").glob("*.jpg") if held_out(str(p), 10))[:n]
    codec = load_codec("cdc-avif-mse")
    names = [f"{s} px, {'shared' if sh else 'per channel'}, 1/{round(1 / st)}" for s, sh, st in VARIANTS]
    names += [f"oracle: {s} px, per channel, exact, free" for s in ORACLES]
    rows = []  # (photo, bpp, PSNR base, PSNR net, [(PSNR, side bpp) per variant])
    for path in files:
        img = Image.open(path)
        img.thumbnail((512, 512), Image.LANCZOS)
        rgb = to_rgb8(img)
        n_px, x = rgb.shape[0] * rgb.shape[1], rgb.astype(np.float64)
        for q in QUALITIES:
            blob = codec.encode([rgb], quality=q)[0]
            base = np.asarray(read_base_payload(unpack(blob).strings[0], *rgb.shape[:2], "probe").rgb, np.float64)
            net = np.asarray(codec.decode([blob])[0].convert("RGB")).astype(np.float64)
            scored = []
            for size, shared, step in VARIANTS + [(s, False, 0) for s in ORACLES]:
                out, bits = block_scaled(x, base, net - base, size, shared, step)
                scored.append((psnr(rgb, out), bits / n_px))
            rows.append((path.name, len(blob) * 8 / n_px, psnr(rgb, base.astype(np.uint8)),
                         psnr(rgb, net.astype(np.uint8)), scored))
        print(path.name, "done", flush=True)
    lines = [f"{len(files)} held-out photos at 512 px, `cdc-avif-mse` (default engine), AVIF qualities "
             f"{', '.join(map(str, QUALITIES))} at effort fast. Command: see the docstring of `block_probe.py`.", "",
             "| per-block scale | mean ΔPSNR over the network (dB) | side information (% of the bits) "
             "| BD-rate vs the network |", "|---|---:|---:|---:|"]
    photos = list(dict.fromkeys(r[0] for r in rows))
    for v, name in enumerate(names):
        gains = [r[4][v][0] - r[3] for r in rows]
        share = [r[4][v][1] / r[1] * 100 for r in rows]
        bds = []
        for photo in photos:
            mine = [r for r in rows if r[0] == photo]
            bds.append(bd_rate([r[1] for r in mine], [r[3] for r in mine],
                               [r[1] + r[4][v][1] for r in mine], [r[4][v][0] for r in mine]))
        lines.append(f"| {name} | {np.mean(gains):+.3f} | {np.mean(share):.2f} | {np.nanmean(bds):+.2f} % |")
    Path("results/side-info/blocks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
