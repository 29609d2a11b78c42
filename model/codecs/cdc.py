"""CDC, the conditional diffusion codec (Yang & Mandt): ``cdc-s-q2`` and other weights files.

Decode options: the number of DDIM steps (default: the card's ``default_steps``), the scale of the
start noise x_N (0: deterministic) and its seed. Encoding takes none: the rate is the weights'.
"""

from __future__ import annotations

from ..codec import Option
from ..nn.config import CDCConfig
from ..registry import CodecRequest, Family
from .hyperprior import CARD_FIELDS

OPTIONS = (
    Option("steps", int, None, "decode", "diffusion decoding steps (default: the model card's default_steps)",
           min=1),
    Option("gamma", float, 0.0, "decode", "start-noise scale: 0 deterministic, 0.8 stochastic", min=0.0),
    Option("seed", int, 0, "decode", "seed of the start noise when gamma > 0"),
)


def load(request: CodecRequest):
    from .neural import load_neural_codec  # torch is imported only when a model is loaded

    return load_neural_codec(request, options=OPTIONS)


def wrap(network, name: str, sha256: str, device: str = "cpu", **settings):
    from .neural import NeuralCodec

    return NeuralCodec(network, name, sha256, device=device, options=OPTIONS, **settings)


def network(cfg: CDCConfig):
    from ..nn.networks import CDCModel

    return CDCModel(cfg)


FAMILY = Family(name="cdc", load=load, options=OPTIONS, config=CDCConfig, network=network, wrap=wrap,
                       card_fields=CARD_FIELDS, description="conditional diffusion codec (Yang & Mandt)")
