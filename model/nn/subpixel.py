"""A 4x4, stride-2 transposed convolution rewritten as a 3x3 convolution and a pixel shuffle: the same map.

Each output pixel of ``ConvTranspose2d(cin, cout, 4, stride=2, padding=1)`` at row parity ``a`` and
column parity ``b`` sums four kernel taps over a 2x2 neighbourhood of input pixels; a 3x3 convolution
with ``4 * cout`` outputs (one group per parity pair, zero at the taps that parity never reads) followed
by ``pixel_shuffle(2)`` computes exactly that. Engines quantise convolutions but not transposed ones
(ONNX Runtime's CPU provider has no int8 ConvTranspose), so the exported graph uses this form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# output parity -> {input offset: kernel tap} of the transposed convolution (out = 2 * in - 1 + tap)
TAPS = {0: {0: 1, -1: 3}, 1: {0: 2, 1: 0}}


class SubPixelUp(nn.Module):
    """``transposed`` (k=4, s=2, p=1) as a 3x3 convolution to 4x the channels and a pixel shuffle."""

    def __init__(self, transposed: nn.ConvTranspose2d):
        super().__init__()
        if (transposed.kernel_size, transposed.stride, transposed.padding) != ((4, 4), (2, 2), (1, 1)):
            raise ValueError(f"SubPixelUp rewrites 4x4 stride-2 padding-1 transposed convolutions, not {transposed}")
        w_t = transposed.weight.detach()  # cin x cout x 4 x 4
        cin, cout = w_t.shape[:2]
        w = torch.zeros(cout, 2, 2, cin, 3, 3, dtype=w_t.dtype)
        for a, rows in TAPS.items():
            for b, cols in TAPS.items():
                for dy, ky in rows.items():
                    for dx, kx in cols.items():
                        w[:, a, b, :, dy + 1, dx + 1] = w_t[:, :, ky, kx].T
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)  # channel c * 4 + 2a + b: pixel_shuffle's order
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(4 * cout, cin, 3, 3))
            self.conv.bias.copy_(transposed.bias.detach().repeat_interleave(4))

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), 2)


def with_subpixel_upsampling(module: nn.Module) -> nn.Module:
    """``module`` with every 4x4 stride-2 ConvTranspose2d replaced by its SubPixelUp, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.ConvTranspose2d):
            setattr(module, name, SubPixelUp(child))
        else:
            with_subpixel_upsampling(child)
    return module
