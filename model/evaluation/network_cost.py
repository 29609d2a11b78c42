"""What a network costs: multiply-accumulates counted with forward hooks, and seconds per call
(``benchmark`` and ``benchmark_avif`` report both)."""

from __future__ import annotations

import time

import torch
from torch import nn

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


def timed(fn, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()  # warm-up: first calls allocate and pick kernels
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats
