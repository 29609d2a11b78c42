"""The conditional denoiser of the AVIF base-layer codec: restores what AVIF removed.

The diffusion runs over the residual r = x - base (scaled by ``residual_scale``), so the network
only learns what the base layer lost. It predicts r0 from (r_t, base, t, AVIF quality); a zero
output head means an untrained network returns the base exactly. With probability
``base_dropout`` in training the base is replaced by zeros and the quality by a "no base" flag, so
the same network is also an unconditional prior over images (r = x then, scale 1).

Cost at full resolution is kept low by a pixel-unshuffle stem: the U-Net's first level already
runs at 1/2 resolution with 12 input channels per input image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiffusionConfig
from .unet import ChannelNorm, ResBlock, time_embedding


@dataclass(frozen=True)
class RestorationConfig:
    widths: tuple[int, ...] = (32, 64, 128, 192)  # channels at 1/2, 1/4, 1/8, 1/16 resolution
    blocks: tuple[int, ...] = (1, 2, 2, 2)  # residual blocks per level on the way down (one up)
    emb: int = 128  # width of the (time, quality) embedding
    residual_scale: float = 4.0  # the diffusion sees (x - base) * scale: AVIF residuals are small
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    family: str = "cdc-avif"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.widths) != len(self.blocks):
            raise ValueError("widths and blocks need one entry per level")


class RestorationUNet(nn.Module):
    """(r_t, base, t, quality, has_base) -> predicted r0, everything in the scaled residual domain."""

    def __init__(self, cfg: RestorationConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.emb
        # time and quality features, plus a has-base flag (base dropout makes an unconditional prior)
        self.embed = nn.Sequential(nn.Linear(2 * (e // 2) + 1, e), nn.SiLU(), nn.Linear(e, e))
        w = cfg.widths
        self.stem = nn.Conv2d(2 * 3 * 4, w[0], 3, padding=1)  # pixel-unshuffled r_t and base
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = w[0]
        for lvl, (ch, n) in enumerate(zip(w, cfg.blocks)):
            self.down.append(nn.ModuleList(ResBlock(cin if i == 0 else ch, ch, e) for i in range(n)))
            cin = ch
            if lvl < len(w) - 1:
                self.downsample.append(nn.Conv2d(ch, w[lvl + 1], 3, stride=2, padding=1))
                cin = w[lvl + 1]
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(w) - 1)):
            self.upsample.append(nn.ConvTranspose2d(w[lvl + 1], w[lvl], 4, stride=2, padding=1))
            self.up.append(ResBlock(2 * w[lvl], w[lvl], e))
        self.head = nn.Sequential(ChannelNorm(w[0]), nn.SiLU(), nn.Conv2d(w[0], 3 * 4, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # untrained network = the AVIF base, exactly
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, r_t, base, t, quality, has_base):
        """quality in [0, 100]; has_base a 0/1 float per image (0: base is zeros, quality ignored)."""
        half = self.cfg.emb // 2
        feats = torch.cat([
            time_embedding(t, half),
            time_embedding(quality / 100.0, half) * has_base[:, None],
            has_base[:, None],
        ], dim=1)
        emb = self.embed(feats)
        h = self.stem(F.pixel_unshuffle(torch.cat([r_t, base], dim=1), 2))
        skips = []
        for lvl, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            if lvl < len(self.downsample):
                skips.append(h)
                h = self.downsample[lvl](h)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips)):
            h = block(torch.cat([upsample(h), skip], dim=1), emb)
        return F.pixel_shuffle(self.head(h), 2)

    @staticmethod
    def pad_multiple(cfg: RestorationConfig) -> int:
        """Input sides must be multiples of this (the stem halves, each level halves again)."""
        return 2 ** len(cfg.widths)
