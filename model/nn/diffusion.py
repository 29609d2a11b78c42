"""Cosine noise schedule, the training prediction (x0 from x_t at a random t) and the DDIM sampler
(x-parameterisation).

Images live in [-1, 1]. Time is continuous, t = n / N_train in (0, 1]; the network predicts x0.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .config import DiffusionConfig

ALPHA_BAR_MIN = 1e-6  # alpha_bar(1) of the cosine schedule is 0; keep divisions finite
DECODE_GAMMAS = (0.0, 0.8, 1.0)  # x_N scales trained at t = 1 (see training_prediction)


def image_generator(seed: int, salt: int) -> torch.Generator:
    """The CPU generator of one image's decoding noise, seeded by (``seed``, ``salt``: a CRC-32 of the
    image's bitstream): the same noise whatever the batch or the device, different for each image."""
    return torch.Generator().manual_seed((int(seed) * 0x9E3779B1 + salt) % 2**63)


def alpha_bar(t: torch.Tensor, cfg: DiffusionConfig) -> torch.Tensor:
    s = cfg.cosine_offset
    return (torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2).clamp(ALPHA_BAR_MIN, 1.0)


def training_prediction(
    predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    cfg: DiffusionConfig,
    final_step_fraction: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted x0 from x_t at a random t, and each image's SNR at its t (what an SNR-weighted
    x0 loss needs: ``model.training.objectives``).

    ``final_step_fraction`` of the batch is put at t = 1, the first step of every deterministic
    decode: with little compute, the few-step decoder then learns as fast as an autoencoder.
    """
    b = x0.shape[0]
    n = torch.randint(1, cfg.train_steps + 1, (b,), generator=generator)
    final = torch.rand(b, generator=generator) < final_step_fraction
    n[final] = cfg.train_steps
    n = n.to(x0.device)
    t = n.float() / cfg.train_steps
    ab = alpha_bar(t, cfg)[:, None, None, None]
    noise = torch.randn(x0.shape, generator=generator)
    # At t = 1 a decode starts from x_N = gamma * noise, gamma = 0 (deterministic) or 0.8: show the
    # network those inputs, not only unit noise, or x_N = 0 is out of distribution (about 1 dB).
    gammas = torch.tensor(DECODE_GAMMAS)[torch.randint(len(DECODE_GAMMAS), (b,), generator=generator)]
    noise = noise * torch.where(final, gammas, torch.ones(b))[:, None, None, None]
    noise = noise.to(x0.device)
    # at t = 1 the input is exactly a decode's x_N: alpha_bar(1) is clamped above 0, and even
    # sqrt(1e-6) * x0 lets the network read the answer when gamma = 0
    signal = torch.where(final.to(x0.device)[:, None, None, None], torch.zeros_like(ab), ab.sqrt())
    x_t = signal * x0 + (1 - ab).sqrt() * noise
    return predict_x0(x_t, t), (ab / (1 - ab)).flatten()


@torch.no_grad()
def ddim_sample(
    predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_start: torch.Tensor,
    steps: int,
    cfg: DiffusionConfig,
    t_start: float = 1.0,
    clip: float | None = 1.0,
    eta: float = 0.0,
    step_noise: Callable[[int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """DDIM from x_N = x_start at t = ``t_start`` down to t = 0; deterministic at ``eta`` 0.

    ``t_start`` < 1 starts late (the AVIF codec starts from the base, a partly restored image);
    ``clip`` bounds each x0 prediction (images: 1; a scaled residual: its own range, or None).
    ``eta`` 1 is the ancestral (DDPM-like) sampler: step i adds fresh noise ``step_noise(i)``
    (unit Gaussian, x's shape) with DDIM's sigma (Song et al. 2021, eq. 16), so detail is drawn at
    every scale rather than only from x_N; eta 0 never calls it (the same bits as before).
    """
    if not 1 <= steps <= cfg.train_steps:
        raise ValueError(f"steps must be 1..{cfg.train_steps}, got {steps}")
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start must be in (0, 1], got {t_start}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if eta > 0 and step_noise is None:
        raise ValueError("eta > 0 needs step_noise (the source of each step's fresh noise)")
    x = x_start
    b = x.shape[0]
    times = torch.linspace(t_start, 0.0, steps + 1)
    x0 = x
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        x0 = predict_x0(x, t.expand(b).to(x.device))
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        if i == steps - 1:
            break
        ab, ab_next = alpha_bar(t, cfg), alpha_bar(t_next, cfg)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if eta == 0:
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
            continue
        sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).sqrt()
        x = ab_next.sqrt() * x0 + (1 - ab_next - sigma**2).clamp(min=0).sqrt() * eps + sigma * step_noise(i).to(x)
    return x0
