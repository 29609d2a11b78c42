"""DiffC's time per 256x256 crop, one thread, in CPU seconds: encode, decode, and the payload coder's share.

    python -m model.evaluation.benchmark_diffc_coder --images ../shared/data/kodak --crops 2 \
        --encode bitstream_version=1 --encode bitstream_version=2 --out results/rcc/diffc_coder.json

Each ``--encode`` is one set of encode options (KEY=VALUE, comma-separated); every crop is encoded and
its full stream decoded (the default decoder) with each, for both families (diffc-avif, diffc) over the
shipped prior; the payload coder's share of the decode is timed apart (``coder_read_cpu_s``). The
crops are the centre 256x256 of the first ``--crops`` images by name. CPU seconds (``time.process_time``)
are the figure: the machine may be shared, and wall seconds would count the others.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import load_codec, unpack
from ..diffc.stream import split
from ..rcc import PAYLOAD_CODERS, chunks

FAMILIES = ("diffc-avif", "diffc")


def centre_crop(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
    return rgb[top:top + side, left:left + side]


def cpu_seconds(work):
    """(result, CPU seconds of this process) of ``work()``."""
    start = time.process_time()
    result = work()
    return result, time.process_time() - start


def parse_options(text: str) -> dict:
    """``bitstream_version=1,cap_bits=8`` -> {"bitstream_version": 1, "cap_bits": 8} (numbers as numbers)."""
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value[:1].isdigit() or value[:1] == "-" else value
    return options


def coder_read_seconds(blob: bytes) -> float:
    """CPU seconds the payload coder takes to read every step of a DiffC bitstream (counts, flags, indices):
    what ``decode_sample`` spends in it, without the candidates and the prior."""
    c = unpack(blob)
    header, _, payloads = split(c)
    cfg, dims = header.rcc, 3 * c.height * c.width
    start = time.process_time()
    for payload in payloads:
        reader = PAYLOAD_CODERS[cfg.payload_format].PayloadReader(payload, dims, cfg.cap_bits, cfg.check_bits)
        bounds = chunks.leaf_bounds(dims, reader.count(dims), lambda starts, _sizes: reader.flags(len(starts)))
        reader.indices(len(bounds) - 1)
        reader.finish()
    return time.process_time() - start


def measure(family: str, crop: np.ndarray, options: dict) -> dict:
    codec = load_codec(family)
    blob, encode_s = cpu_seconds(lambda: codec.encode([crop], **options)[0])
    image, decode_s = cpu_seconds(lambda: codec.decode([blob])[0])
    mse = float(np.mean((np.asarray(image, dtype=np.float64) - crop) ** 2))
    return {"family": family, "options": options, "bytes": len(blob),
            "bpp": 8 * len(blob) / (crop.shape[0] * crop.shape[1]),
            "step_payload_bytes": [len(s) for s in unpack(blob).strings[1 + (family == "diffc-avif"):]],
            "psnr": 10 * np.log10(255**2 / mse), "encode_cpu_s": encode_s, "decode_cpu_s": decode_s,
            "coder_read_cpu_s": coder_read_seconds(blob)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=Path, required=True, help="folder of images (evaluation only, e.g. kodak)")
    p.add_argument("--crops", type=int, default=2, help="how many images (the first by name)")
    p.add_argument("--side", type=int, default=256, help="crop side in pixels")
    p.add_argument("--encode", action="append", default=None,
                   help="encode options KEY=VALUE[,KEY=VALUE], once per set to compare (default: the defaults)")
    p.add_argument("--out", type=Path, help="write the rows and the machine here as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    paths = sorted(f for f in args.images.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.crops]
    rows = []
    for path in paths:
        crop = centre_crop(path, args.side)
        for family in FAMILIES:
            for options in map(parse_options, args.encode or [""]):
                row = {"image": path.name, **measure(family, crop, options)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("family       options                      encode CPU s  decode CPU s  coder read CPU s  bpp "
          "(means over crops)")
    for family in FAMILIES:
        for options in map(parse_options, args.encode or [""]):
            sel = [r for r in rows if r["family"] == family and r["options"] == options]
            keys = ("encode_cpu_s", "decode_cpu_s", "coder_read_cpu_s", "bpp")
            mean = {k: np.mean([r[k] for r in sel]) for k in keys}
            print(f"{family:12} {json.dumps(options):28} {mean['encode_cpu_s']:12.2f}  {mean['decode_cpu_s']:12.2f}  "
                  f"{mean['coder_read_cpu_s']:16.3f}  {mean['bpp']:.4f}")
    if args.out:
        machine = {"cpu_count": os.cpu_count(), "torch_threads": 1, "load_average": os.getloadavg()}
        args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
