"""The coarse DiffC schedule: which noise levels the encoder communicates, and each step's posterior.

The schedule is training steps n_0 = N > n_1 > ... > n_S (t = n / N, the grid the network was trained
on). n_0 is t = 1, where alpha_bar is clamped to 1e-6: r_T there is drawn from the shared generator
at no cost (its KL to q(r_T | r_0) is alpha_bar / 2 * |r_0|^2 nats, under 0.1 bit for a 256x256
image). n_1..n_S are the steps nearest to S log-SNR values spaced evenly from ``first_log_snr`` to
``last_log_snr``: a step's KL grows with the log-SNR it spans, so an even log-SNR grid spreads the
bits evenly over the steps, and every step costs the same RCC search (D * 2^cap_bits normals), so
few coarse steps are cheaper to encode than many fine ones (they cost more bits: the measured
trade-off is in results/diffc).

Step k communicates r_{s} ~ q(r_s | r_t, r_0) = N(a r_0 + b r_t, sigma^2) (t = n_{k-1}, s = n_k)
against p = N(a r0_pred + b r_t, sigma^2), r0_pred the network's prediction from r_t: the DDPM
posterior, whose variance does not depend on r_0, so q and p share sigma as RCC requires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..nn.config import DiffusionConfig


@dataclass(frozen=True)
class ScheduleConfig:
    levels: int = 6  # S coded steps (noise levels after t = 1)
    first_log_snr: float = -2.0  # log(alpha_bar / (1 - alpha_bar)) reached by the first coded step
    last_log_snr: float = 3.0  # ... and by the last

    def __post_init__(self):
        if not 1 <= self.levels <= 250:
            raise ValueError(f"levels must be 1..250, got {self.levels}")
        if not self.first_log_snr < self.last_log_snr:
            raise ValueError("first_log_snr must be below last_log_snr")


def alpha_bar_at(t: float, diffusion: DiffusionConfig) -> float:
    """alpha_bar(t) in float64 (both sides compute it alike)."""
    import torch  # here: the codec families import this module without loading torch

    from ..nn.diffusion import alpha_bar

    return float(alpha_bar(torch.tensor(t, dtype=torch.float64), diffusion))


def training_steps(cfg: ScheduleConfig, diffusion: DiffusionConfig) -> tuple[int, ...]:
    """(N, n_1, ..., n_S), strictly decreasing: the schedule a bitstream records."""
    n_all = np.arange(1, diffusion.train_steps)
    ab = np.array([alpha_bar_at(n / diffusion.train_steps, diffusion) for n in n_all])
    log_snr = np.log(ab / (1 - ab))
    targets = np.linspace(cfg.first_log_snr, cfg.last_log_snr, cfg.levels)
    chosen = [int(n_all[np.argmin(np.abs(log_snr - v))]) for v in targets]
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"{cfg.levels} levels between log-SNR {cfg.first_log_snr} and {cfg.last_log_snr} "
                         f"do not fit {diffusion.train_steps} training steps: use fewer levels or a wider range")
    return (diffusion.train_steps, *chosen)


@dataclass(frozen=True)
class Transition:
    """q(r_s | r_t, r_0) = N(x0_coef * r_0 + xt_coef * r_t, sigma^2), s < t."""

    t: float
    s: float
    x0_coef: float
    xt_coef: float
    sigma: float

    def mean(self, r0, r_t):
        """The posterior mean in float64 (elementwise, so the same bits under any thread count),
        returned as float32, the network's input type."""
        return (self.x0_coef * r0.double() + self.xt_coef * r_t.double()).float()


def transition(t: float, s: float, diffusion: DiffusionConfig) -> Transition:
    """The DDPM posterior from noise level t down to s (0 <= s < t <= 1)."""
    if not 0 <= s < t <= 1:
        raise ValueError(f"need 0 <= s < t <= 1, got t={t}, s={s}")
    ab_t, ab_s = alpha_bar_at(t, diffusion), alpha_bar_at(s, diffusion)
    alpha = ab_t / ab_s  # alpha_{t|s}
    x0_coef = math.sqrt(ab_s) * (1 - alpha) / (1 - ab_t)
    xt_coef = math.sqrt(alpha) * (1 - ab_s) / (1 - ab_t)
    sigma = math.sqrt((1 - ab_s) * (1 - alpha) / (1 - ab_t))
    return Transition(t, s, x0_coef, xt_coef, sigma)
