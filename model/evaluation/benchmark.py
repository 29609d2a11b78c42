"""Codec benchmark: parameters, MMAC per pixel per decoder step, encode and decode seconds.

    python -m model.benchmark                      # every shipped config, 768x512, this machine
    python -m model.benchmark --configs cdc-s --steps 1 8 --repeats 1

Timings do not depend on the weights, so configs without shipped weights are timed with random
ones. MACs are counted with forward hooks on convolutions, linear layers and attention.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import torch
from torch import nn

from ..codecs.neural import codec_from_model
from ..nn.config import CONFIGS
from ..nn.networks import build_model
from ..nn.unet import Attention


def count_macs(module: nn.Module, run) -> int:
    """Multiply-accumulates performed by ``run()`` inside ``module``."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.ConvTranspose2d):
            total += inp[0].numel() * m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    def attn_hook(m, inp, out):
        nonlocal total
        b, c, h, w = inp[0].shape
        total += 2 * b * (h * w) ** 2 * c  # QK^T and AV

    hooks = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, Attention):
            hooks.append(m.register_forward_hook(attn_hook))
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in hooks:
            h.remove()
    return total


def bench_config(name: str, height: int, width: int, steps: list[int], repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model(CONFIGS[name])
    params = sum(p.numel() for p in model.parameters())
    codec = codec_from_model(model, name)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)

    def timed(fn):
        fn()  # warm-up: first calls allocate and pick kernels
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats

    enc_s = timed(lambda: codec.encode([image]))
    blob = codec.encode([image])[0]
    row = {"config": name, "params_M": params / 1e6, "encode_s": enc_s, "bytes": len(blob)}
    if model.stochastic_decoder:
        y = torch.zeros(1, model.cfg.latent.latent_channels, height // 16, width // 16)
        x = torch.zeros(1, 3, height, width)
        maps = model.unet.context(y)  # once per decode, not per step: outside the count
        step = count_macs(model.unet, lambda: model.unet(x, torch.ones(1), maps))
        row["mmac_px_step"] = step / (height * width) / 1e6
        for s in steps:
            row[f"decode_s@{s}"] = timed(lambda: codec.decode([blob], steps=s))
    else:
        row["decode_s"] = timed(lambda: codec.decode([blob]))
    return row


def bench_large(name: str, height: int, width: int, steps: int) -> dict:
    """Encode + decode one large image; peak resident memory shows the tiling bound."""
    torch.manual_seed(0)
    codec = codec_from_model(build_model(CONFIGS[name]), name)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    blob = codec.encode([image])[0]
    t1 = time.perf_counter()
    out = codec.decode([blob], steps=steps)[0]
    t2 = time.perf_counter()
    assert out.size == (width, height)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": name, "size": f"{width}x{height}", "steps": steps, "encode_s": t1 - t0,
            "decode_s": t2 - t1, "peak_rss_MiB": peak_mib}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["cdc-s", "hyperprior-s", "cdc-paper"])
    p.add_argument("--size", nargs=2, type=int, default=[512, 768], metavar=("H", "W"))
    p.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--large", action="store_true",
                   help="instead: one 6000x4000 round trip at the first --steps value, with peak memory")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, image {w}x{h}")
    for name in args.configs:
        if args.large:
            row = bench_large(name, 4000, 6000, args.steps[0])
        else:
            row = bench_config(name, h, w, args.steps, args.repeats)
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)


if __name__ == "__main__":
    main()
