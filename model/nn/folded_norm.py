"""A modulated channel norm with the modulation folded into the LayerNorm's scale and bias: the same map.

``ChannelNorm(x, scale, shift)`` is ``layer_norm(x) * w * (1 + scale) + (b * (1 + scale) + shift)`` per
image, so the exported graph gives ONNX's LayerNormalization that per-image scale and bias (B x 1 x 1 x C,
which ONNX Runtime broadcasts) instead of a full-size multiply and add after it: two fewer passes over
the feature map per residual block, and none of the transposes those passes held between the norm and
the NHWC int8 convolutions. Only the exported copy is rewritten (``model/nn/one_step.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet import ChannelNorm


class _ScaledLayerNorm(torch.autograd.Function):
    """``layer_norm(x) * weight + bias`` over the last axis, weight and bias broadcast (B x 1 x 1 x C)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        return F.layer_norm(x, x.shape[-1:], None, None, eps) * weight + bias

    @staticmethod
    def symbolic(g, x, weight, bias, eps: float):
        return g.op("LayerNormalization", x, weight, bias, axis_i=-1, epsilon_f=eps)


class FoldedChannelNorm(ChannelNorm):
    """``norm`` (a ChannelNorm, whose LayerNorm it shares), its modulation folded into the LayerNorm."""

    def __init__(self, norm: ChannelNorm):
        nn.Module.__init__(self)
        self.norm = norm.norm

    def forward(self, x, scale=None, shift=None):
        if scale is None:
            return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        weight = (self.norm.weight * (1 + scale))[:, None, None, :]
        bias = (self.norm.bias * (1 + scale) + shift)[:, None, None, :]
        return _ScaledLayerNorm.apply(x.permute(0, 2, 3, 1), weight, bias, self.norm.eps).permute(0, 3, 1, 2)


def with_folded_norms(module: nn.Module) -> nn.Module:
    """``module`` with every ChannelNorm replaced by its FoldedChannelNorm, in place."""
    for name, child in module.named_children():
        if type(child) is ChannelNorm:
            setattr(module, name, FoldedChannelNorm(child))
        else:
            with_folded_norms(child)
    return module
