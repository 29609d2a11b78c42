"""cdc-avif's encoder gate (``gate=True``) on photos and on content unlike them: how often it writes a
strength, what that buys against the full network and the AVIF base, what it costs in bytes and encode time.

    OMP_NUM_THREADS=1 python results/gate/probe.py          # writes results/gate/table.md and gate.json

Sets: the held-out slice of ``../shared/data/train`` (``--holdout-every 10``, ``--photos`` spread over
the names, at most 512 px), Kodak (24, at most 768 px; in no training set) and the drawn and
``tests/files/real/`` images of ``results/engines/content/probe.py``; each at AVIF qualities 10, 30 and 60
with the codec's defaults, decoded by eager torch (the reference).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "results" / "engines" / "content"))

from probe import (  # the content probe's images and table writer
    inputs,
    psnr,
    write_results,
)

from model.codecs.base_layer import read_base_payload
from model.evaluation.inputs import load_images
from model.format import unpack
from model.registry import load_codec
from pipeline.imagefiles.pixels import held_out


def photo_sets(data: Path, kodak: Path, photos: int) -> dict[str, dict[str, np.ndarray]]:
    sets = {}
    if data.is_dir():
        held = load_images(data, limit=photos, spread=True, select=lambda n: held_out(n, 10), resize_max=512)
        sets["held-out photos"] = {n: im.rgb for n, im in held}
    if kodak.is_dir():
        sets["Kodak"] = {n: im.rgb for n, im in load_images(kodak, resize_max=768)}
    sets["text, graphics, flat"] = inputs(kodak)
    return sets


def measure(codec, rgb: np.ndarray, quality: int) -> dict:
    cpu = time.process_time()
    plain = codec.encode([rgb], quality=quality)[0]
    plain_s, cpu = time.process_time() - cpu, time.process_time()
    gated = codec.encode([rgb], quality=quality, gate=True)[0]
    gated_s = time.process_time() - cpu
    base = read_base_payload(unpack(gated).strings[0], *rgb.shape[:2], "probe")
    full = psnr(rgb, codec.decode([plain], engine="torch")[0])
    weighed = full if gated == plain else psnr(rgb, codec.decode([gated], engine="torch")[0])
    return {"strength": base.strength, "bytes": len(plain), "extra_bytes": len(gated) - len(plain),
            "base": psnr(rgb, base.rgb), "full": full, "gated": weighed, "pixels": rgb.shape[0] * rgb.shape[1],
            "encode_s": plain_s, "gated_encode_s": gated_s}


def summary(cases: list[dict]) -> dict:
    gated = [c for c in cases if c["strength"] < 1]
    mp = sum(c["pixels"] for c in cases) / 1e6
    capped = lambda v: min(v, 60.0)  # a lossless base reads 99 dB: cap so one image cannot swamp a mean
    return {"decodes": len(cases), "gated": len(gated),
            "mean_gain_db": float(np.mean([capped(c["gated"]) - capped(c["full"]) for c in cases])),
            "mean_gain_gated_db": float(np.mean([capped(c["gated"]) - capped(c["full"]) for c in gated])) if gated else 0.0,
            "below_base_full": sum(c["full"] < c["base"] - 0.01 for c in cases),
            "below_base_gated": sum(c["gated"] < c["base"] - 0.01 for c in cases),
            "extra_bytes_pct": 100 * sum(c["extra_bytes"] for c in cases) / sum(c["bytes"] for c in cases),
            "encode_s_per_mp": sum(c["encode_s"] for c in cases) / mp,
            "gated_encode_s_per_mp": sum(c["gated_encode_s"] for c in cases) / mp}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="cdc-avif-mse")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/train")
    p.add_argument("--kodak", type=Path, default=ROOT.parent / "shared/data/kodak")
    p.add_argument("--photos", type=int, default=48)
    p.add_argument("--qualities", type=int, nargs="+", default=[10, 30, 60])
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    codec, rows = load_codec(args.codec), {}
    for name, images in photo_sets(args.data, args.kodak, args.photos).items():
        cases = []
        for label, rgb in images.items():
            cases += [{"image": label, "quality": q, **measure(codec, rgb, q)} for q in args.qualities]
        rows[name] = {"summary": summary(cases), "cases": cases}
        print(f"{name}: {rows[name]['summary']}", file=sys.stderr)
    head = ("| images | decodes | strength written | mean ΔPSNR gated - full, dB (where written) | "
            "below the AVIF base: full -> gated | bytes added | encode CPU s/MP: without -> with the gate |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        s = r["summary"]
        lines.append(f"| {name} | {s['decodes']} | {s['gated']} | {s['mean_gain_db']:+.3f} ({s['mean_gain_gated_db']:+.3f}) | "
                     f"{s['below_base_full']} -> {s['below_base_gated']} | {s['extra_bytes_pct']:.2f} % | "
                     f"{s['encode_s_per_mp']:.2f} -> {s['gated_encode_s_per_mp']:.2f} |")
    write_results(args.out, lines, "gate.json", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
