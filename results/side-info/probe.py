"""Issue 30 route 1 probe: how much would a few bytes of per-image least-squares weights (solved at encode,
no gradient steps) add on top of the restoration network? x ~ A [y, base, 1], per output channel (9 bytes at
1/256 steps) or across channels (21 bytes). Usage: OMP_NUM_THREADS=1 python results/side-info/probe.py
[TRAIN_FOLDER] (default ../shared/data/train; its held-out slice, 1 in 10, the first 10 at 512 px)."""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model import load_codec, unpack
from model.evaluation.metrics import psnr
from pipeline.imagefiles.pixels import held_out, to_rgb8

torch.set_num_threads(1)

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/train")
files = sorted(str(p) for p in folder.glob("*.jpg") if held_out(str(p), 10))[:10]
codec = load_codec("cdc-avif-mse")


def fit(feats, x, bits=None):
    """The least-squares combination of ``feats`` (N x k) nearest ``x`` (N), its weights quantised to 1/256."""
    w, *_ = np.linalg.lstsq(feats, x, rcond=None)
    if bits:
        w = np.round(w * 256) / 256
    return feats @ w


def as_image(flat: np.ndarray, shape) -> np.ndarray:
    return np.clip(np.round(flat), 0, 255).astype(np.uint8).reshape(shape)


rows = []
for f in files:
    img = Image.open(f)
    img.thumbnail((512, 512), Image.LANCZOS)
    rgb = to_rgb8(img)
    for q in (10, 25, 40):
        blob = codec.encode([rgb], quality=q)[0]
        base = codec._base(unpack(blob)).rgb
        restored = np.asarray(codec.decode([blob])[0].convert("RGB"))
        n = rgb.shape[0] * rgb.shape[1]
        Y, B, X = (a.reshape(n, 3).astype(np.float64) for a in (restored, base, rgb))
        one = np.ones(n)
        per = np.stack([fit(np.c_[Y[:, c], B[:, c], one], X[:, c], 8) for c in range(3)], 1)
        full = np.stack([fit(np.c_[Y, B, one], X[:, c], 8) for c in range(3)], 1)
        rows.append((Path(f).name, q, len(blob) * 8 / n, psnr(rgb, base), psnr(rgb, restored),
                     psnr(rgb, as_image(per, rgb.shape)), psnr(rgb, as_image(full, rgb.shape))))
        print(*[f"{v:.3f}" if isinstance(v, float) else v for v in rows[-1]], flush=True)
a = np.array([r[3:] for r in rows])
print("mean PSNR base / net / +LS per channel (9 B) / +LS 3x7 (21 B):", a.mean(0).round(3), "gain over net:", (a[:, 2:] - a[:, 1:2]).mean(0).round(3))
