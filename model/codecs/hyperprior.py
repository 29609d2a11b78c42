"""The hyperprior baseline (Ballé 2018's scale hyperprior): ``hyperprior-s-q1`` and other weights files.

No options: the rate is fixed by the weights, and decoding is deterministic.
"""

from __future__ import annotations

from ..nn.config import HyperpriorConfig
from ..registry import CodecRequest, Family

CARD_FIELDS = ("name", "family", "config", "sha256")


def load(request: CodecRequest):
    from .neural import load_neural_codec  # torch is imported only when a model is loaded

    return load_neural_codec(request, options=())


def wrap(network, name: str, sha256: str, device: str = "cpu", **settings):
    from .neural import NeuralCodec

    return NeuralCodec(network, name, sha256, device=device, options=(), **settings)


def network(cfg: HyperpriorConfig):
    from ..nn.networks import HyperpriorModel

    return HyperpriorModel(cfg)


FAMILY = Family(name="hyperprior", load=load, config=HyperpriorConfig, network=network, wrap=wrap,
                       card_fields=CARD_FIELDS, description="Ballé 2018 scale hyperprior (the baseline)")
