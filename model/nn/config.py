"""The configs of the networks' shared parts (latent coder, U-Net, diffusion schedule) and their JSON form.

A family's config (its module in ``model/codecs``: ``CDCConfig``, ``HyperpriorConfig``,
``RestorationConfig``) fully determines its network's shapes; it is stored (as JSON) inside every
weights file, so a ``.safetensors`` file is enough to rebuild its model (``model.zoo.load_network``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LatentConfig:
    """Analysis transform + two-level hyperprior (Ballé 2018; mean-scale as in Minnen 2018)."""

    channels: int = 128  # hidden width of g_a / g_s
    latent_channels: int = 192  # M: channels of y (1/16 resolution)
    hyper_channels: int = 128  # channels of z (1/64 resolution)
    mean_scale: bool = True  # False: Ballé 2018 scale-only hyperprior


@dataclass(frozen=True)
class UNetConfig:
    """Conditional U-Net denoiser and the context decoder that feeds it."""

    base: int = 32  # channels at full resolution
    mults: tuple[int, ...] = (1, 2, 3, 4)  # channel multipliers per level (level i at 1/2**i)
    res_blocks: int = 1  # residual blocks per level and direction
    attention_levels: tuple[int, ...] = (3,)  # levels with self-attention (keep to low resolutions)
    heads: int = 4
    context_channels: tuple[int, ...] = (16, 32, 48, 64)  # context maps at 1, 1/2, 1/4, 1/8

    def __post_init__(self):
        object.__setattr__(self, "mults", tuple(self.mults))
        object.__setattr__(self, "attention_levels", tuple(self.attention_levels))
        object.__setattr__(self, "context_channels", tuple(self.context_channels))
        if len(self.context_channels) != 4 or len(self.mults) < 4:
            raise ValueError("CDC conditions the first four U-Net levels: need >= 4 levels, 4 context maps")


@dataclass(frozen=True)
class DiffusionConfig:
    train_steps: int = 1000  # N_train; the network sees continuous t = n / N_train
    snr_clip: float = 5.0  # min(SNR, 5) weighting of the x0 loss (paper)
    # The min(SNR, 5) weight vanishes as t -> 1, exactly where a deterministic decode (x_N = 0)
    # starts; without a floor the one- and few-step decoders are barely trained.
    snr_floor: float = 1.0
    cosine_offset: float = 0.008


def config_to_dict(cfg) -> dict:
    return asdict(cfg)


def dataclass_from_dict(cls, d: dict):
    """A (nested) config dataclass from its ``asdict`` form; unknown fields raise TypeError."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in d.items():
        kind = hints.get(key)
        kwargs[key] = dataclass_from_dict(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**kwargs)
