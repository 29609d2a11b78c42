"""An adversarial loss on patches for one-step realism decoders (HiFiC, Mentzer et al. 2020).

A small patch discriminator, conditioned on what the decoder was given (the AVIF base), tells
decoded images from originals; the decoder is trained to fool it beside its MSE and LPIPS terms, so
it draws texture its MSE objective would average away. Non-saturating losses; spectral norm keeps
the discriminator's gradients bounded, so no gradient penalty is needed. ``MultiScaleDiscriminator`` judges the image at several scales
(pix2pixHD, as HiFiC does): the coarser critics see blotches larger than one patch's field.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """(image, condition) -> a map of real/fake logits, one per ~46 px receptive field."""

    def __init__(self, cond_channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        convs = [nn.Conv2d(3 + cond_channels, w, 4, 2, 1), nn.Conv2d(w, 2 * w, 4, 2, 1),
                 nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.Conv2d(4 * w, 4 * w, 3, 1, 1)]
        layers: list[nn.Module] = []
        for conv in convs:
            layers += [spectral_norm(conv), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, spectral_norm(nn.Conv2d(4 * w, 1, 3, 1, 1)))

    def forward(self, image, cond):
        return self.body(torch.cat([image, cond], dim=1))


class MultiScaleDiscriminator(nn.Module):
    """``scales`` patch discriminators, the k-th on image and condition average-pooled by 2^k: fields of
    about 46, 92, 184 px; the logit maps of every scale, finest first."""

    def __init__(self, scales: int = 3, cond_channels: int = 3, width: int = 64):
        super().__init__()
        self.critics = nn.ModuleList(PatchDiscriminator(cond_channels, width) for _ in range(scales))

    def forward(self, image, cond) -> list[torch.Tensor]:
        maps = []
        for k, critic in enumerate(self.critics):
            if k:
                image, cond = F.avg_pool2d(image, 2), F.avg_pool2d(cond, 2)
            maps.append(critic(image, cond))
        return maps


def make_critic(scales: int) -> nn.Module:
    """The run's discriminator: one patch discriminator (the shipped realism decoder's), or several scales."""
    return PatchDiscriminator() if scales == 1 else MultiScaleDiscriminator(scales)


def _mean_over_scales(logits, loss) -> torch.Tensor:
    maps = logits if isinstance(logits, list) else [logits]
    return sum(loss(m).mean() for m in maps) / len(maps)


def discriminator_loss(critic: nn.Module, real, fake, cond) -> torch.Tensor:
    """-log D(real) - log(1 - D(fake)), averaged over scales; ``fake`` is detached by the caller."""
    return (_mean_over_scales(critic(real, cond), lambda m: F.softplus(-m))
            + _mean_over_scales(critic(fake, cond), F.softplus))


def generator_loss(critic: nn.Module, fake, cond) -> torch.Tensor:
    """-log D(fake): the non-saturating generator loss, averaged over scales."""
    return _mean_over_scales(critic(fake, cond), lambda m: F.softplus(-m))
