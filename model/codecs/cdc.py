"""CDC, the conditional diffusion codec (Yang & Mandt): ``cdc-s-q2`` and other weights files.

Decode options: the number of DDIM steps (default: the card's ``default_steps``), the scale of the
start noise x_N (0: deterministic) and its seed. Encoding takes none: the rate is the weights'.
"""

from __future__ import annotations

from ..codec import Option
from ..nn.config import CDCConfig, DiffusionConfig, LatentConfig, UNetConfig
from ..hooks import Networks
from ..registry import CodecRequest, Family
from .hyperprior import CARD_FIELDS


# Named sizes. "tiny" exists for unit tests only; "s" is the CPU-sized model that ships;
# "paper" is the published size (about 54M parameters) for GPU training.
SIZES = {
    "cdc-tiny": CDCConfig(
        latent=LatentConfig(channels=16, latent_channels=16, hyper_channels=8),
        unet=UNetConfig(base=8, mults=(1, 1, 2, 2), attention_levels=(3,), heads=1,
                        context_channels=(4, 4, 8, 8)),
        diffusion=DiffusionConfig(train_steps=100),
    ),
    "cdc-s": CDCConfig(
        latent=LatentConfig(channels=128, latent_channels=128, hyper_channels=96),
        # Sized for CPUs: thin full-resolution level, attention only at 1/16 and 1/32 where the
        # token count stays small (1,536 and 384 for a 768x512 image).
        unet=UNetConfig(base=16, mults=(1, 2, 4, 6, 8, 8), attention_levels=(4, 5), heads=4,
                        context_channels=(8, 16, 32, 64)),
    ),
    # About the paper's size: 55M parameters, about 1 MMAC per pixel per step (768x512).
    "cdc-paper": CDCConfig(
        latent=LatentConfig(channels=192, latent_channels=256, hyper_channels=192),
        unet=UNetConfig(base=48, mults=(1, 2, 4, 6, 8), res_blocks=2, attention_levels=(3, 4),
                        heads=8, context_channels=(48, 96, 192, 256)),
    ),
}

DEFAULT_STEPS = 8  # CDC's few-step decode (the card may set its own)
OPTIONS = (
    Option("steps", int, None, "decode", f"DDIM steps from x_N to the image (default: the weights card's "
           f"default_steps, else {DEFAULT_STEPS})", min=1),
    Option("gamma", float, 0.0, "decode", "start-noise scale: 0 deterministic, 0.8 stochastic", min=0.0),
    Option("seed", int, 0, "decode", "seed of the start noise when gamma > 0"),
)


def load(request: CodecRequest):
    from .latent_shell import load_latent_codec  # torch is imported only when a model is loaded

    return load_latent_codec(request, OPTIONS, DEFAULT_STEPS)


def wrap(network, name: str, sha256: str, device: str = "cpu", **settings):
    from .latent_shell import LatentCodec

    return LatentCodec(network, name, sha256, device=device, options=OPTIONS, **settings)


def network(cfg: CDCConfig):
    from ..nn.networks import CDCModel

    return CDCModel(cfg)


FAMILY = Family(name="cdc", load=load, options=OPTIONS, card_fields=CARD_FIELDS,
                networks=Networks(CDCConfig, network, SIZES, wrap, default_steps=DEFAULT_STEPS),
                description="conditional diffusion codec (Yang & Mandt)")
