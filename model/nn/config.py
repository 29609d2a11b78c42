"""The configs of the networks' shared parts (latent coder, U-Net, diffusion schedule) and their JSON form.

Each network's config is here too, beside the shared parts it is made of (``CDCConfig`` and
``HyperpriorConfig``: ``networks.py``; ``RestorationConfig``: ``restoration.py``): a config fully
determines its network's shapes and is stored (as JSON) inside every weights file, so a ``.safetensors``
file is enough to rebuild its model (``model.zoo.load_network``). The families name their sizes from
them (``model/codecs``). Here, not in the network modules, because this module imports no torch: the
registry and the codecs load without it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field


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


@dataclass(frozen=True)
class CDCConfig:
    """CDC (Yang & Mandt): a hyperprior latent coder conditioning a diffusion U-Net (``networks.CDCModel``)."""

    latent: LatentConfig = field(default_factory=LatentConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    family: str = "cdc"


@dataclass(frozen=True)
class HyperpriorConfig:
    """compressai's ScaleHyperprior (Ballé 2018) architecture: N = channels, M = latent_channels
    (``networks.HyperpriorModel``)."""

    latent: LatentConfig = field(default_factory=lambda: LatentConfig(mean_scale=False))
    family: str = "hyperprior"


@dataclass(frozen=True)
class RestorationConfig:
    """The cdc-avif denoiser: a U-Net over (noisy residual, AVIF base), pixel-unshuffled by 2
    (``restoration.AvifRestorationModel``)."""

    widths: tuple[int, ...] = (32, 64, 128, 192)  # channels at 1/2, 1/4, 1/8, 1/16 resolution
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # residual blocks per level on the way down (one up)
    emb: int = 128  # width of the (time, quality) embedding
    residual_scale: float = 4.0  # the diffusion sees (x - base) * scale: AVIF residuals are small
    base_dropout: float = 0.1  # training: share of samples without the base (an unconditional prior)
    settings_features: int = 0  # 3: told the base's encoder settings (speed, 4:4:4, tune); 0: Pillow's default only
    # a fast decoder's levers (the defaults are every network shipped before them): the stem's pixel-unshuffle
    # factor (4: the first level runs at 1/4 resolution) and the blocks' normalisation ("none": no LayerNorm,
    # which is about a third of a small network's CPU time and not a convolution an engine speeds up)
    unshuffle: int = 2
    norm: str = "layer"
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    family: str = "cdc-avif"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.widths) != len(self.blocks):
            raise ValueError("widths and blocks need one entry per level")
        if self.norm not in ("layer", "none") or self.unshuffle not in (1, 2, 4):
            raise ValueError(f"norm is 'layer' or 'none' (got {self.norm!r}); unshuffle 1, 2 or 4 (got {self.unshuffle})")
