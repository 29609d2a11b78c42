"""The hyperprior baseline (Ballé 2018's scale hyperprior): ``hyperprior-s-q1`` and other weights files.

No options: the rate is fixed by the weights, and decoding is deterministic.
"""

from __future__ import annotations

from ..nn.config import HyperpriorConfig, LatentConfig
from ..hooks import Networks
from ..registry import CodecRequest, Family

CARD_FIELDS = ("name", "family", "config", "sha256")


SIZES = {
    "hyperprior-tiny": HyperpriorConfig(latent=LatentConfig(16, 16, 8, mean_scale=False)),  # unit tests
    "hyperprior-s": HyperpriorConfig(latent=LatentConfig(128, 192, 128, mean_scale=False)),
}


def load(request: CodecRequest):
    from .latent_shell import load_latent_codec  # torch is imported only when a model is loaded

    return load_latent_codec(request)


def wrap(network, name: str, sha256: str, device: str = "cpu", **settings):
    from .latent_shell import LatentCodec

    return LatentCodec(network, name, sha256, device=device, options=(), **settings)


def network(cfg: HyperpriorConfig):
    from ..nn.networks import HyperpriorModel

    return HyperpriorModel(cfg)


FAMILY = Family(name="hyperprior", load=load, card_fields=CARD_FIELDS, networks=Networks(HyperpriorConfig, network, SIZES, wrap),
                description="Ballé 2018 scale hyperprior (the baseline)")
