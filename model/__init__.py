"""diffarc's codecs: CDC (conditional diffusion), the hyperprior baseline and Pillow references.

Public API, the only thing the pipeline imports::

    from model import load_codec, list_codecs, BitstreamError

New codec families register through ``register_family(Family(...))`` (see ``model.registry``).
"""

from .codec import Codec, Option, OptionError
from .format import BitstreamError, bits_per_pixel, unpack
from .images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, LoadedImage, load_image
from .evaluation.metrics import ms_ssim, psnr
from .registry import (CodecInfo, CodecRequest, Family, ParsedName, codec_from_network, families, get_family,
                       list_codecs, load_codec, load_codec_for_id, plugin_env, register_family)
from .weights import Weights, WeightsError, WeightsResolver, make_codec_id, split_codec_id


def random_codec(config: str = "cdc-tiny", seed: int = 0, device: str = "cpu", **settings) -> Codec:
    """A codec of a named config (``model.nn.config.CONFIGS``) with random weights: tests, speed benchmarks."""
    import torch  # imported only when a model is needed

    from .nn.config import CONFIGS
    from .nn.networks import build_model

    if config not in CONFIGS:
        raise KeyError(f"unknown config '{config}' (known: {', '.join(CONFIGS)})")
    torch.manual_seed(seed)
    return codec_from_network(build_model(CONFIGS[config]), config, device, **settings)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "BitstreamError",
    "Codec",
    "CodecInfo",
    "CodecRequest",
    "Family",
    "ImageError",
    "LoadedImage",
    "Option",
    "OptionError",
    "ParsedName",
    "Weights",
    "WeightsError",
    "WeightsResolver",
    "bits_per_pixel",
    "codec_from_network",
    "families",
    "get_family",
    "list_codecs",
    "load_codec",
    "load_codec_for_id",
    "load_image",
    "make_codec_id",
    "ms_ssim",
    "plugin_env",
    "psnr",
    "random_codec",
    "register_family",
    "split_codec_id",
    "unpack",
]
