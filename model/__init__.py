"""diffarc's codecs: CDC (conditional diffusion), the hyperprior baseline and Pillow references.

Public API, the only thing the pipeline imports::

    from model import load_codec, list_codecs, BitstreamError
"""

from .bitstream import BitstreamError, bits_per_pixel, unpack
from .codec import Codec
from .images import ImageError, LoadedImage, load_image
from .registry import list_codecs, load_codec, load_codec_for_id

__all__ = [
    "BitstreamError",
    "Codec",
    "ImageError",
    "LoadedImage",
    "bits_per_pixel",
    "list_codecs",
    "load_codec",
    "load_codec_for_id",
    "load_image",
    "unpack",
]
