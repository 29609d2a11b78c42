"""An adversarial loss on patches for one-step realism decoders (HiFiC, Mentzer et al. 2020).

A small patch discriminator, conditioned on what the decoder was given (the AVIF base), tells
decoded images from originals; the decoder is trained to fool it beside its MSE and LPIPS terms, so
it draws texture its MSE objective would average away. Non-saturating losses; spectral norm keeps
the discriminator's gradients bounded, so no gradient penalty is needed.
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


def discriminator_loss(critic: PatchDiscriminator, real, fake, cond) -> torch.Tensor:
    """-log D(real) - log(1 - D(fake)); ``fake`` is detached by the caller."""
    return F.softplus(-critic(real, cond)).mean() + F.softplus(critic(fake, cond)).mean()


def generator_loss(critic: PatchDiscriminator, fake, cond) -> torch.Tensor:
    """-log D(fake): the non-saturating generator loss."""
    return F.softplus(-critic(fake, cond)).mean()
