"""Calibrate the int8 decode engine (``engine="onnx-int8"``) of cdc-avif weights on training crops.

    diffarc-calibrate-engine cdc-avif-mse                 # writes model/calibration/cdc-avif-mse.json
    diffarc-calibrate-engine cdc-avif-m-realism --photos 48 --crop 128

ONNX Runtime's MinMax activation ranges of the one-step graph over AVIF bases of random crops of
training photos spread over their names, less the held-out slice (``--holdout-every``, as training:
evaluation reads it), at qualities spread over ``--qualities`` and the weights card's default effort
and fast in turn. The file names the weights' sha256: ranges of other weights are refused
(``model/engine.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from model.codecs.avif_base import EFFORTS, decode_base, encode_base
from model.engine import CALIBRATION_DIR, calibrate, cached_graph, versions
from pipeline.imagefiles.pixels import to_rgb8
from model.nn.one_step import export_onnx
from model.training.data import find_sources, photos_once, random_crop
from model.weights import WeightsResolver
from model.zoo import load_network


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="cdc-avif weights name (python -m model list) or a .safetensors path")
    p.add_argument("--data", default="../shared/data/train", help="training photos (folder or shards)")
    p.add_argument("--holdout-every", type=int, default=10, help="leave out 1 in N files by name hash (as training)")
    p.add_argument("--photos", type=int, default=32, help="photos to calibrate on (one crop each)")
    p.add_argument("--crop", type=int, default=128, help="crop side in pixels")
    p.add_argument("--qualities", type=int, nargs=2, default=(5, 60), metavar=("LO", "HI"), help="AVIF qualities")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"output JSON (default: {CALIBRATION_DIR}/NAME.json)")
    return p


def photos(args):
    """``--photos`` training photos: spread over the sorted file names (every source of a folder sorted by
    source), or the first of the shards."""
    files, _, _ = find_sources([args.data], args.holdout_every)
    if files:
        return (Image.open(f) for f in files[:: max(1, len(files) // args.photos)])
    return photos_once([args.data], args.holdout_every)


def feeds(args, efforts: tuple[str, ...]):
    """(feed, ...) of AVIF bases of training crops: the graph's inputs."""
    rng, out = random.Random(args.seed), []
    for photo in photos(args):
        if len(out) >= args.photos:
            break
        crop = random_crop(Image.fromarray(to_rgb8(photo)), args.crop, rng, 0.75)
        quality, effort = rng.randint(*args.qualities), EFFORTS[efforts[len(out) % len(efforts)]]
        base = decode_base(encode_base(crop, quality, effort)).astype(np.float32) / 127.5 - 1
        out.append({"base": base.transpose(2, 0, 1)[None].copy(), "quality": np.array([quality], np.float32),
                    "settings": np.array([effort.features()], np.float32)})
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    weights = WeightsResolver.from_env().find(args.weights) if not args.weights.endswith(".safetensors") else None
    path = Path(args.weights) if weights is None else weights.path
    if weights is None and not path.exists():
        raise SystemExit(f"weights {args.weights!r} not found (python -m model list)")
    from model.weights import Weights

    weights = weights or Weights.open(path)
    model = load_network(weights.path).eval()
    cpu = time.process_time()
    efforts = tuple(dict.fromkeys((weights.card.get("default_effort", "fast"), "fast")))
    data = feeds(args, efforts)
    graph = cached_graph(weights.sha256, "onnx", lambda p: export_onnx(model, p))
    ranges = calibrate(graph, data)
    out = Path(args.out or CALIBRATION_DIR / f"{weights.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"weights": weights.name, "weights_sha256": weights.sha256, "versions": versions(),
                               "data": f"{args.data} (--holdout-every {args.holdout_every} left out)",
                               "photos": len(data), "crop": args.crop, "qualities": list(args.qualities),
                               "efforts": list(efforts), "seed": args.seed, "ranges": ranges}, indent=1) + "\n")
    print(f"{weights.name}: {len(ranges['data'])} activation ranges from {len(data)} training crops of {args.crop} px "
          f"in {time.process_time() - cpu:.1f} CPU s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
