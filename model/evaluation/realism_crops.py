"""Side-by-side crops for the eye: original | AVIF | cdc-avif-m-mse | the prior at one decode setting |
one-step realism decoders, at 2x zoom (nearest neighbour), one row per AVIF quality, one PNG per subject.

    python -m model.evaluation.realism_crops --prior cdc-avif-m-prior \\
        --setting 4,0.8,0 --out results/realism

Subjects (``--crop LABEL=PATH:X,Y``, repeatable; X, Y the top-left corner of a ``--size`` crop in
the image brought down to ``--resize-max`` as the realism grid does) default to fur, foliage,
water, faces and text from photos in no training set (the held-out slice and Kodak). Each image is
coded whole; only the crop is shown. Writes ``crops-LABEL.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.imagefiles.pixels import load_image

from ..registry import load_codec
from .inputs import downscaled

DATA = "../shared/data"
DEFAULT_CROPS = (f"fur={DATA}/train/inet_n02128385_leopard.jpg:300,80",
                 f"foliage={DATA}/kodak/kodim13.png:0,80",
                 f"water={DATA}/kodak/kodim13.png:160,210",
                 f"faces={DATA}/kodak/kodim15.png:290,110",
                 f"text={DATA}/train/inet_n04149813_scoreboard.jpg:40,230")
ZOOM, LABEL_H = 2, 18


def parse_crop(spec: str) -> tuple[str, Path, int, int]:
    """``fur=path/to.jpg:300,80`` -> (label, path, x, y)."""
    try:
        label, rest = spec.split("=", 1)
        path, xy = rest.rsplit(":", 1)
        x, y = (int(v) for v in xy.split(","))
    except ValueError:
        raise SystemExit(f"--crop {spec!r}: expected LABEL=PATH:X,Y") from None
    return label, Path(path), x, y


def tile(rgb: np.ndarray, caption: str) -> Image.Image:
    """A crop zoomed ``ZOOM``x (nearest neighbour) under a caption bar."""
    im = Image.fromarray(rgb).resize((rgb.shape[1] * ZOOM, rgb.shape[0] * ZOOM), Image.Resampling.NEAREST)
    out = Image.new("RGB", (im.width, im.height + LABEL_H), "white")
    out.paste(im, (0, LABEL_H))
    ImageDraw.Draw(out).text((3, 3), caption, fill="black")
    return out


def subject_sheet(rgb: np.ndarray, x: int, y: int, size: int, columns: list, qualities, effort: str):
    """Rows of (original | each of ``columns``: (codec, caption, decode options)) crops, one row per quality."""
    h, w = rgb.shape[:2]
    x, y = min(x, w - size), min(y, h - size)
    crop = lambda a: a[y:y + size, x:x + size]  # noqa: E731
    rows = []
    for q in qualities:
        cells = [tile(crop(rgb), "original")]
        for codec, caption, options in columns:
            blob = codec.encode([rgb], quality=q, effort=effort)[0]
            out = np.asarray(codec.decode([blob], **options)[0].convert("RGB"))
            cells.append(tile(crop(out), f"{caption}, q{q}, {len(blob) * 8 / (h * w):.3f} bpp"))
        row = Image.new("RGB", (sum(c.width for c in cells), cells[0].height), "white")
        for i, c in enumerate(cells):
            row.paste(c, (i * c.width, 0))
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    for i, r in enumerate(rows):
        sheet.paste(r, (0, i * r.height))
    return sheet


def main(argv=None) -> None:
    import torch

    p = argparse.ArgumentParser(prog="python -m model.evaluation.realism_crops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", help="the prior: a cdc-avif name or .safetensors path")
    p.add_argument("--realism", action="append", default=[], metavar="WEIGHTS",
                   help="a one-step realism decoder, decoded at 1 step, γ 0 (repeatable)")
    p.add_argument("--setting", default="4,0.8,0", help="the prior's steps,gamma,eta (default 4,0.8,0)")
    p.add_argument("--mse", default="cdc-avif-m-mse")
    p.add_argument("--weights-dir")
    p.add_argument("--crop", action="append", help="LABEL=PATH:X,Y (repeatable; default: five subjects)")
    p.add_argument("--size", type=int, default=128, help="crop side before the 2x zoom (default 128)")
    p.add_argument("--resize-max", type=int, default=512)
    p.add_argument("--qualities", default="4,10,16")
    p.add_argument("--effort", default="medium")
    p.add_argument("--out", type=Path, default=Path("results/realism"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    one_step = {"steps": 1, "gamma": 0.0}
    mse = load_codec(args.mse, weights_dir=args.weights_dir)
    columns = [(load_codec("avif-q30"), "AVIF", {}), (mse, mse.name, one_step)]
    if args.prior:
        steps, gamma, eta = args.setting.split(",")
        setting = {"steps": int(steps), "gamma": float(gamma), "eta": float(eta)}
        label = f"prior steps={steps} gamma={float(gamma):g}{' ancestral' if setting['eta'] else ''}"
        columns.append((load_codec(args.prior, weights_dir=args.weights_dir), label, setting))
    for weights in args.realism:
        codec = load_codec(weights, weights_dir=args.weights_dir)
        columns.append((codec, codec.name, one_step))
    args.out.mkdir(parents=True, exist_ok=True)
    for label, path, x, y in map(parse_crop, args.crop or DEFAULT_CROPS):
        rgb = downscaled(load_image(path.read_bytes()), args.resize_max).rgb
        sheet = subject_sheet(rgb, x, y, args.size, columns, [int(q) for q in args.qualities.split(",")],
                              args.effort)
        sheet.save(args.out / f"crops-{label}.png", optimize=True)
        print(f"crops-{label}.png from {path.name} at ({x}, {y})", flush=True)


if __name__ == "__main__":
    main()
