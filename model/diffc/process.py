"""DiffC's two halves over any x0-predicting prior: communicate r at the schedule's noise levels
through RCC, then denoise the last one.

``prior(r_t, t)`` is the network's r_0 prediction for one image (float32, 1 x C x H x W). Encoder
and decoder call it on the same bits, so it must return the same bits: the codec runs it on one
image at a time under one thread (measured: conv outputs differ in the last bits between 1 and 2
threads, between batch sizes and between memory layouts, by up to 4e-6). Everything else on the
decoder's path is elementwise (float64 posterior means) or the RCC module's counter-based draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..nn.config import DiffusionConfig
from ..nn.diffusion import ddim_sample
from ..rcc import RCCConfig, decode_sample, encode_sample
from ..rcc import random as rng
from . import DENOISERS
from .schedule import alpha_bar_at, transition

Prior = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class CodedStep:
    payload: bytes  # the RCC payload of this step
    state: torch.Tensor  # r at the step's noise level: what the decoder rebuilds from the payload
    kl_bits: float  # KL(q || p) of the step
    chunks: int  # RCC chunks of the step


def start_state(shape: tuple[int, ...], diffusion: DiffusionConfig, rcc: RCCConfig) -> torch.Tensor:
    """r_T at t = 1: sqrt(1 - alpha_bar(1)) times keyed normals (key 0; steps use keys 1..S)."""
    keys = rng.row_keys(rng.derive_key(rcc.seed, (0,), rng.STREAM_CANDIDATES), 1)
    eps = rng.standard_normals(keys, np.zeros((1, 1), dtype=np.int64), math.prod(shape))
    return (math.sqrt(1 - alpha_bar_at(1.0, diffusion)) * eps).float().view(shape)


def _times(steps: Sequence[int], diffusion: DiffusionConfig) -> list[float]:
    return [n / diffusion.train_steps for n in steps]


def encode_steps(prior: Prior, r0: torch.Tensor, steps: Sequence[int], diffusion: DiffusionConfig,
                 rcc: RCCConfig) -> Iterator[CodedStep]:
    """One ``CodedStep`` per transition of the schedule ``steps`` (N, n_1, ..., n_S), lazily: the
    caller stops when the rate is reached."""
    times = _times(steps, diffusion)
    r = start_state(tuple(r0.shape), diffusion, rcc)
    for k, (t, s) in enumerate(zip(times, times[1:]), start=1):
        step = transition(t, s, diffusion)
        result = encode_sample(step.mean(r0, r), step.mean(prior(r, t), r), step.sigma, (k,), rcc)
        r = result.sample
        yield CodedStep(result.data, r, result.kl_bits, result.n_chunks)


def decode_steps(prior: Prior, payloads: Sequence[bytes], steps: Sequence[int], shape: tuple[int, ...],
                 diffusion: DiffusionConfig, rcc: RCCConfig) -> list[torch.Tensor]:
    """r_T and the states after each payload (bit-exact with the encoder's); raises RCCError."""
    times = _times(steps, diffusion)
    states = [start_state(shape, diffusion, rcc)]
    for k, payload in enumerate(payloads, start=1):
        step, r = transition(times[k - 1], times[k], diffusion), states[-1]
        states.append(decode_sample(payload, step.mean(prior(r, times[k - 1]), r), step.sigma, (k,), rcc))
    return states


def denoise(prior: Prior, r_t: torch.Tensor, t: float, diffusion: DiffusionConfig, method: str, steps: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """The r_0 estimate from r_t: ``ode`` runs ``steps`` DDIM (probability-flow) steps, one step
    being the posterior mean E[r_0 | r_t]; ``ancestral`` samples the reverse process in ``steps``
    steps (noise from ``generator``), its last step the posterior mean."""
    if method not in DENOISERS:
        raise ValueError(f"denoiser must be one of {DENOISERS}, got {method!r}")
    if method == "ode":
        return ddim_sample(lambda x, tt: prior(x, float(tt[0])), r_t, steps, diffusion, t_start=t, clip=None)
    times = torch.linspace(t, 0.0, steps + 1, dtype=torch.float64).tolist()
    r = r_t
    for t_now, t_next in zip(times, times[1:]):
        r0 = prior(r, t_now)
        if t_next == 0.0:
            return r0
        step = transition(t_now, t_next, diffusion)
        r = step.mean(r0, r) + step.sigma * torch.randn(r.shape, generator=generator)
    return r0
