"""The cdc-avif benchmark: what the decoder costs on top of AVIF, and what the container adds.

- ``bench_restoration``: parameters, MMAC per pixel per denoiser step, decode seconds at each
  step count (and AVIF's decode alone), encode seconds against the AVIF encode alone.
- ``container_overhead``: over a set of images at one quality, our container's bytes against the
  AVIF file Pillow writes at the same settings (the payload strips AVIF's box headers, so the
  container is usually smaller), and the encode time ratio, measured per image, alternating order.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..codecs.avif_base import decode_base, encode_base
from ..registry import load_codec
from ..zoo import named_sizes, random_codec
from .network_cost import count_macs, timed


def restoration_codec(name: str):
    """A codec of a cdc-avif config with random weights (speed does not depend on them), or a shipped one."""
    return random_codec(name) if name in named_sizes() else load_codec(name)


def bench_restoration(codec, image: np.ndarray, steps: list[int], repeats: int, quality: int) -> dict:
    """Cost of one ``image`` (uint8 H x W x 3) through ``codec`` at AVIF ``quality``."""
    h, w = image.shape[:2]
    model = codec.model
    avif = encode_base(image, quality)
    blob = codec.encode([image], quality=quality)[0]
    row = {"codec": codec.name, "size": f"{w}x{h}", "quality": quality,
           "params_M": sum(p.numel() for p in model.parameters()) / 1e6}  # fmt: skip
    m = model.pad_multiple
    hp, wp = -(-h // m) * m, -(-w // m) * m
    x, ones = torch.zeros(1, 3, hp, wp), torch.ones(1)
    macs = count_macs(model.denoiser, lambda: model.denoiser(x, x, ones, ones * quality, ones))
    row["mmac_px_step"] = macs / (h * w) / 1e6
    row["avif_encode_s"] = timed(lambda: encode_base(image, quality), repeats)
    row["encode_s"] = timed(lambda: codec.encode([image], quality=quality), repeats)
    row["encode_ratio"] = row["encode_s"] / row["avif_encode_s"]
    row["avif_decode_s"] = timed(lambda: decode_base(avif), repeats)
    for s in steps:
        row[f"decode_s@{s}"] = timed(lambda: codec.decode([blob], steps=s), repeats)
    return row


def container_overhead(codec, images: list[np.ndarray], quality: int) -> dict:
    """Bytes of our container against the AVIF file, summed over ``images``, and encode time ratio."""
    avif_bytes = ours = pixels = 0
    avif_s = ours_s = 0.0
    per_image = []
    for i, rgb in enumerate(images):
        runs = [lambda: encode_base(rgb, quality), lambda: codec.encode([rgb], quality=quality)[0]]
        seconds, outputs = [0.0, 0.0], [b"", b""]
        for k in ((0, 1) if i % 2 == 0 else (1, 0)):  # alternate: neither side always runs on a warm cache
            t0 = time.perf_counter()
            outputs[k] = runs[k]()
            seconds[k] = time.perf_counter() - t0
        avif_bytes, ours, pixels = avif_bytes + len(outputs[0]), ours + len(outputs[1]), pixels + rgb[..., 0].size
        avif_s, ours_s = avif_s + seconds[0], ours_s + seconds[1]
        per_image.append(100.0 * (len(outputs[1]) - len(outputs[0])) / len(outputs[0]))
    n = len(images)
    return {"codec": codec.name, "images": n, "quality": quality, "avif_bpp": 8 * avif_bytes / pixels,
            "bpp": 8 * ours / pixels, "avif_bytes": avif_bytes / n, "bytes": ours / n,
            "overhead_pct": 100.0 * (ours - avif_bytes) / avif_bytes, "overhead_pct_min": min(per_image),
            "overhead_pct_max": max(per_image), "avif_encode_s": avif_s / n, "encode_s": ours_s / n,
            "encode_ratio": ours_s / avif_s}  # fmt: skip
