"""Each decode engine against eager torch on content unlike the photos int8 was calibrated on.

    OMP_NUM_THREADS=1 python results/engines/content/probe.py            # writes results/engines/content/

Inputs: drawn images (text, a smooth gradient, a checkerboard, uniform noise, a flat grey, saturated
primaries), one Kodak photo darkened to 1/8 (Kodak: evaluation only), and every image of
``tests/files/real/`` (PngSuite and Pillow's test files: graphics, palettes, grey levels; sources in its
README) with both sides >= 32 px; each encoded by the codec at AVIF qualities 10, 30 and 60 and decoded
by each engine. The figure per engine is the PSNR of its decode minus eager torch's (fp32) on the same
bitstream: mean and the worst cases, with eager's PSNR beside them; and how many decodes fall more than
0.05 dB below the AVIF base layer alone (eager's count beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model.codecs.base_layer import read_base_payload
from model.evaluation import metrics
from model.format import unpack
from model.registry import load_codec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def drawn() -> dict[str, np.ndarray]:
    h, w = 256, 384
    text = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(text)
    for row in range(12):
        draw.text((8, 8 + 20 * row), "The quick brown fox jumps over the lazy dog 0123456789 " * 2, fill=(0, 0, 0))
    gradient = np.zeros((h, w, 3), np.uint8)
    gradient[..., 0], gradient[..., 1], gradient[..., 2] = np.linspace(0, 255, w)[None], np.linspace(0, 255, h)[:, None], 128
    checker = np.repeat(((np.indices((h, w)).sum(0) // 16 % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    primaries = np.zeros((h, w, 3), np.uint8)
    for c in range(3):
        primaries[:, c * w // 3:(c + 1) * w // 3, c] = 255
    primaries[100:150] = 255 - primaries[100:150]
    return {"text": np.asarray(text), "gradient": gradient, "checkerboard": checker,
            "noise": np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8),
            "flat grey": np.full((h, w, 3), 200, np.uint8), "primaries": primaries}


def inputs(kodak: Path) -> dict[str, np.ndarray]:
    images = drawn()
    photos = sorted(kodak.glob("*.png"))
    if photos:
        images["dark photo"] = np.asarray(Image.open(photos[3]).convert("RGB").resize((384, 256))) // 8
    for path in sorted((ROOT / "tests/files/real").iterdir()):
        try:
            rgb = Image.open(path).convert("RGB")
        except OSError:
            continue  # not an image Pillow reads here (its README, an HEIF without the plugin)
        if min(rgb.size) >= 32:
            images[path.name] = np.asarray(rgb)
    return images


def psnr(a, b) -> float:
    """``model.evaluation.metrics.psnr``, 99 dB for identical images (JSON has no infinity)."""
    return min(metrics.psnr(a, b), 99.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codecs", nargs="+", default=["cdc-avif-mse", "cdc-avif-m-mse", "cdc-avif-fast-mse"])
    p.add_argument("--engines", nargs="+", default=["torch-bf16", "onnx", "onnx-int8"])
    p.add_argument("--qualities", type=int, nargs="+", default=[10, 30, 60])
    p.add_argument("--kodak", type=Path, default=ROOT.parent / "shared/data/kodak")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    images, rows = inputs(args.kodak), []
    print(f"{len(images)} images x {len(args.qualities)} qualities", file=sys.stderr)
    for name in args.codecs:
        codec = load_codec(name)
        cases = []
        for label, rgb in images.items():
            for q in args.qualities:
                blob = codec.encode([rgb], quality=q)[0]
                eager = psnr(rgb, codec.decode([blob], engine="torch")[0])
                base = psnr(rgb, read_base_payload(unpack(blob).strings[0], *rgb.shape[:2], "probe").rgb)
                cases.append({"image": label, "quality": q, "eager_psnr": eager, "base": base - eager,
                              **{e: psnr(rgb, codec.decode([blob], engine=e)[0]) - eager for e in args.engines}})
        for e in args.engines:
            worst = sorted(cases, key=lambda c: c[e])[:3]
            rows.append({"codec": name, "engine": e, "cases": len(cases), "mean": float(np.mean([c[e] for c in cases])),
                         "beyond_0.05": sum(c[e] < -0.05 for c in cases),
                         "below_base": sum(c[e] < c["base"] - 0.05 for c in cases),
                         "eager_below_base": sum(0 < c["base"] - 0.05 for c in cases),
                         "worst": [{"image": c["image"], "quality": c["quality"], "delta": c[e],
                                    "eager_psnr": c["eager_psnr"]} for c in worst]})
            print(f"{name} {e}: mean {rows[-1]['mean']:+.3f} dB, worst {worst[0][e]:+.3f}", file=sys.stderr)
    head = ("| codec | engine | mean ΔPSNR dB | cases below -0.05 dB | decodes below the AVIF base (eager's) | "
            "worst three (image, quality, Δ dB, eager's PSNR) |")
    lines = [head, "|---|---|---:|---:|---:|---|"]
    for r in rows:
        worst = "; ".join(f"{w['image']} q{w['quality']} {w['delta']:+.3f} ({w['eager_psnr']:.1f})" for w in r["worst"])
        lines.append(f"| {r['codec']} | {r['engine']} | {r['mean']:+.3f} | {r['beyond_0.05']} of {r['cases']} | "
                     f"{r['below_base']} ({r['eager_below_base']}) | {worst} |")
    write_results(args.out, lines, "content.json", rows)
    return 0


def write_results(out: Path, lines: list[str], json_name: str, rows) -> None:
    """``table.md`` (``lines``) and the figures as JSON in ``out``; the table printed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / json_name).write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
