"""The latent y and its two-level hyperprior: g_a, h_a, h_s and the entropy models.

Shared by CDC (mean-scale, Minnen 2018) and the baseline (scale-only, Ballé 2018).

Why the hyper-synthesis has an exact path
-----------------------------------------
Encoder and decoder must select the same CDF for every symbol of y, or rANS decodes garbage.
The CDF index comes from the scales that h_s computes from z_hat, and float convolutions are not
reproducible across thread counts or devices (summation order changes the last bits, and a scale
that sits on a table boundary then picks a different CDF). At inference h_s therefore runs in
fixed point (the "integer networks" idea of Ballé et al. 2019): activations carry ``FRAC_ACT``
fractional bits, weights ``FRAC_W``, every value is an integer held in float64, and every product
and partial sum stays below 2**53, so float64 arithmetic is exact in any summation order, on any
thread count or device. Rounding between layers is ``floor`` of an exact value. The result, and
so y_hat = round(y - mean) + mean, is bit-identical wherever it is computed. Training uses the
ordinary float path; the 2**-14 weight grid changes its output by far less than a quantisation step.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

with warnings.catch_warnings():
    # compressai 1.2.8 calls torch.jit.script at import; torch 2.14 warns about it in every process
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.layers import GDN
    from compressai.models import CompressionModel
    from compressai.models.utils import conv, deconv

from . import guard
from .config import LatentConfig

FRAC_ACT = 8  # fractional bits of activations in the exact h_s
FRAC_W = 14  # fractional bits of weights
EXACT_LIMIT = 2.0**52  # float64 represents every integer below 2**53 exactly


def analysis_transform(c: LatentConfig) -> nn.Sequential:
    """g_a: image in [0, 1] -> y at 1/16 resolution (Ballé 2018)."""
    n, m = c.channels, c.latent_channels
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def synthesis_transform(c: LatentConfig) -> nn.Sequential:
    """g_s of the baseline: y_hat -> image (Ballé 2018)."""
    n, m = c.channels, c.latent_channels
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )


class LatentCoder(nn.Module):
    """y -> (z, y) strings and back; likelihoods for the rate term in training."""

    def __init__(self, c: LatentConfig):
        super().__init__()
        self.cfg = c
        m, hz = c.latent_channels, c.hyper_channels
        self.h_a = nn.Sequential(
            conv(m, hz, stride=1, kernel_size=3), nn.ReLU(),
            conv(hz, hz), nn.ReLU(), conv(hz, hz),
        )
        if c.mean_scale:  # Minnen 2018: predict mean and scale
            self.h_s = nn.Sequential(
                deconv(hz, m), nn.ReLU(), deconv(m, m * 3 // 2), nn.ReLU(),
                conv(m * 3 // 2, 2 * m, stride=1, kernel_size=3),
            )
        else:  # Ballé 2018: scales only, non-negative
            self.h_s = nn.Sequential(
                deconv(hz, hz), nn.ReLU(), deconv(hz, hz), nn.ReLU(),
                conv(hz, m, stride=1, kernel_size=3), nn.ReLU(),
            )
        self.entropy_bottleneck = EntropyBottleneck(hz)
        self.gaussian_conditional = GaussianConditional(None)
        self._exact = None  # cached fixed-point weights, built on first use

    # ----- training ---------------------------------------------------------------------------
    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """y_hat for the decoder (straight-through rounding) and likelihoods under noise."""
        z = self.h_a(y if self.cfg.mean_scale else y.abs())
        z_tilde, z_likelihoods = self.entropy_bottleneck(z)
        means, scales = self._split(self.h_s(z_tilde))
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        centred = y - means if means is not None else y
        y_hat = centred + (torch.round(centred) - centred).detach()
        if means is not None:
            y_hat = y_hat + means
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def _split(self, params: torch.Tensor):
        if self.cfg.mean_scale:
            means, scales = params.chunk(2, dim=1)
            return means, scales
        return None, params

    # ----- exact hyper-synthesis ----------------------------------------------------------------
    def train(self, mode: bool = True):
        self._exact = None  # weights may change: rebuild the fixed-point copy when next needed
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._exact = None  # new weights: the cached fixed-point copy is stale
        return super()._load_from_state_dict(*args, **kwargs)

    def _exact_layers(self):
        if self._exact is None:
            layers = []
            for layer in self.h_s:
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                    w = torch.round(layer.weight.detach().double().cpu() * 2**FRAC_W)
                    b = torch.round(layer.bias.detach().double().cpu() * 2 ** (FRAC_ACT + FRAC_W))
                    layers.append((layer, w, b))
                else:
                    layers.append((layer, None, None))
            self._exact = layers
        return self._exact

    @torch.no_grad()
    def hyper_synthesis_exact(self, z_hat: torch.Tensor):
        """means, scales from z_hat, bit-identical on every device and thread count (CPU, float64)."""
        a = torch.round(z_hat.detach().double().cpu() * 2**FRAC_ACT)
        layers = self._exact_layers()
        acc = a
        for i, (layer, w, b) in enumerate(layers):
            if w is None:  # ReLU on an exact integer grid is exact
                a = a.clamp_min(0)
                acc = a
                continue
            if isinstance(layer, nn.ConvTranspose2d):
                acc = F.conv_transpose2d(a, w, b, layer.stride, layer.padding, layer.output_padding)
            else:
                acc = F.conv2d(a, w, b, layer.stride, layer.padding)
            peak = float(acc.abs().max()) if acc.numel() else 0.0
            if peak >= EXACT_LIMIT:
                raise OverflowError(f"exact h_s layer {i} reached {peak:.3g}, beyond exact float64")
            a = torch.floor(acc / 2**FRAC_W)  # back to FRAC_ACT fractional bits
        last_is_conv = layers[-1][1] is not None
        out = acc / 2 ** (FRAC_ACT + FRAC_W) if last_is_conv else a / 2**FRAC_ACT
        return self._split(out.float())

    # ----- real bitstreams ----------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, y: torch.Tensor) -> tuple[list[bytes], list[bytes], torch.Tensor]:
        """z strings, y strings and y_hat (on CPU) for a batch of latents."""
        y = y.detach().float().cpu()
        z = self.h_a(y if self.cfg.mean_scale else y.abs())
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.hyper_synthesis_exact(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return z_strings, y_strings, y_hat

    @torch.no_grad()
    def decompress(self, z_strings: list[bytes], y_strings: list[bytes], z_shape) -> torch.Tensor:
        """y_hat (on CPU) from the strings; z_shape is the (h, w) of z. Strings too short for their
        symbols, or cut short, raise ``BitstreamError`` (``guard``)."""
        z_bits = float(guard.min_bits_per_index(self.entropy_bottleneck).sum()) * z_shape[0] * z_shape[1]
        guard.check_capacity(z_strings, [z_bits] * len(z_strings), "z")
        z_hat = guard.decode_checked(lambda s: self.entropy_bottleneck.decompress(s, tuple(z_shape)), z_strings, "z")
        means, scales = self.hyper_synthesis_exact(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_bits = guard.min_bits_per_index(self.gaussian_conditional)[indexes.long()].flatten(1).sum(1)
        guard.check_capacity(y_strings, y_bits.tolist(), "y")
        return guard.decode_checked(
            lambda s: self.gaussian_conditional.decompress(s, indexes, means=means), y_strings, "y")
