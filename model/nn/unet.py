"""The conditional U-Net denoiser of CDC and the context decoder that conditions it.

The context decoder turns y_hat (1/16 resolution) into feature maps at 1/8, 1/4, 1/2 and 1; each is
concatenated to the input of the matching one of the first four U-Net levels, as in the paper.
Normalisation is per pixel (LayerNorm over channels), never over the image, so a tile of a large
image is processed exactly as it would be inside the whole (apart from attention's reach).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import UNetConfig


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each pixel; with ``scale`` and ``shift`` (B x C) modulated after it:
    ``norm(x) * (1 + scale) + shift``, in the norm's channels-last layout (an engine folds it into the norm:
    ``model/nn/folded_norm.py``)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = nn.LayerNorm(ch)

    def forward(self, x, scale=None, shift=None):
        y = self.norm(x.permute(0, 2, 3, 1))
        if scale is not None:
            y = y * (1 + scale[:, None, None, :]) + shift[:, None, None, :]
        return y.permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    """Two 3x3 convs; the time embedding modulates the middle (scale and shift)."""

    def __init__(self, cin: int, cout: int, temb: int | None, norm: bool = True):
        super().__init__()
        norm_of = ChannelNorm if norm else (lambda ch: nn.Identity())
        self.norm1, self.conv1 = norm_of(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm_of(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.film = nn.Linear(temb, 2 * cout) if temb else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as identity: stable without batch stats
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, emb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.film is None:
            h = self.norm2(h)
        elif isinstance(self.norm2, ChannelNorm):  # the same values as below, computed by the norm
            h = self.norm2(h, *self.film(emb).chunk(2, dim=1))
        else:
            scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Multi-head self-attention over all pixels of a (low-resolution) feature map."""

    def __init__(self, ch: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm, self.qkv, self.out = ChannelNorm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(o.transpose(-1, -2).reshape(b, c, h, w))


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of continuous t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ContextDecoder(nn.Module):
    """y_hat -> conditioning maps at full, 1/2, 1/4 and 1/8 resolution (returned in that order)."""

    def __init__(self, latent_channels: int, ctx: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Conv2d(latent_channels, ctx[3], 3, padding=1)
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        chans = [ctx[3], ctx[3], ctx[2], ctx[1], ctx[0]]  # 1/16 -> 1/8 -> 1/4 -> 1/2 -> 1
        for cin, cout in zip(chans[:-1], chans[1:]):
            self.ups.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            self.blocks.append(ResBlock(cout, cout, None))

    def forward(self, y_hat):
        h = self.stem(y_hat)
        maps = []
        for up, block in zip(self.ups, self.blocks):
            h = block(F.silu(up(h)))
            maps.append(h)
        return maps[::-1]


class ConditionalUNet(nn.Module):
    """x_t, t, context maps -> prediction of x0 (x-parameterisation)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int):
        super().__init__()
        self.cfg = cfg
        temb = 4 * cfg.base
        self.context = ContextDecoder(latent_channels, cfg.context_channels)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base, temb), nn.SiLU(), nn.Linear(temb, temb))
        chans = [cfg.base * m for m in cfg.mults]
        self.stem = nn.Conv2d(3, chans[0], 3, padding=1)

        self.down = nn.ModuleList()
        skips = []
        cin = chans[0]
        for lvl, ch in enumerate(chans):
            extra = cfg.context_channels[lvl] if lvl < 4 else 0
            blocks = nn.ModuleList()
            for i in range(cfg.res_blocks):
                blocks.append(ResBlock(cin + (extra if i == 0 else 0), ch, temb))
                if lvl in cfg.attention_levels:
                    blocks.append(Attention(ch, cfg.heads))
                cin = ch
            skips.append(ch)
            down = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if lvl < len(chans) - 1 else nn.Identity()
            self.down.append(nn.ModuleList([blocks, down]))

        self.mid = nn.ModuleList([ResBlock(cin, cin, temb), Attention(cin, cfg.heads), ResBlock(cin, cin, temb)])

        self.up = nn.ModuleList()
        for lvl in reversed(range(len(chans))):
            ch = chans[lvl]
            blocks = nn.ModuleList()
            for i in range(cfg.res_blocks):
                blocks.append(ResBlock(cin + (skips[lvl] if i == 0 else 0), ch, temb))
                if lvl in cfg.attention_levels:
                    blocks.append(Attention(ch, cfg.heads))
                cin = ch
            up = nn.ConvTranspose2d(ch, chans[lvl - 1], 4, stride=2, padding=1) if lvl > 0 else nn.Identity()
            cin = chans[lvl - 1] if lvl > 0 else ch
            self.up.append(nn.ModuleList([blocks, up]))
        self.head = nn.Sequential(ChannelNorm(chans[0]), nn.SiLU(), nn.Conv2d(chans[0], 3, 3, padding=1))

    @staticmethod
    def _run(blocks, h, emb):
        for block in blocks:
            h = block(h, emb)
        return h

    def forward(self, x_t, t, context_maps):
        emb = self.time_mlp(time_embedding(t, self.cfg.base))
        h = self.stem(x_t)
        skips = []
        for lvl, (blocks, down) in enumerate(self.down):
            if lvl < 4:
                h = torch.cat([h, context_maps[lvl]], dim=1)
            h = self._run(blocks, h, emb)
            skips.append(h)
            h = down(h)
        h = self._run(self.mid, h, emb)
        for (blocks, up), skip in zip(self.up, reversed(skips)):
            h = self._run(blocks, torch.cat([h, skip], dim=1), emb)
            h = up(h)
        return self.head(h)
