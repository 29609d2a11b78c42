"""diffarc's codecs: CDC (conditional diffusion), the hyperprior baseline and Pillow references.

Public API, the only thing the pipeline imports::

    from model import load_codec, list_codecs, BitstreamError
"""

from .bitstream import BitstreamError, bits_per_pixel, unpack
from .codec import Codec
from .images import DEFAULT_MAX_PIXELS, ImageError, LoadedImage, load_image
from .metrics import ms_ssim, psnr
from .registry import list_codecs, load_codec, load_codec_for_id


def random_codec(config: str = "cdc-tiny", seed: int = 0, **kw):
    """A randomly initialised neural codec of a named config (tests, speed benchmarks)."""
    from .neural import random_codec as make  # torch is imported only when a model is needed

    return make(config, seed, **kw)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "BitstreamError",
    "Codec",
    "ImageError",
    "LoadedImage",
    "bits_per_pixel",
    "list_codecs",
    "load_codec",
    "load_codec_for_id",
    "load_image",
    "ms_ssim",
    "psnr",
    "random_codec",
    "unpack",
]
