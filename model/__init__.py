"""diffarc's codecs: the AVIF base-layer diffusion codec (cdc-avif, the default), DiffC's progressive
bitstreams, CDC (conditional diffusion) with its hyperprior baseline, and Pillow's JPEG/WebP/AVIF.

The public interface, what the pipeline and the jobs import::

    from model import load_codec, load_codec_for_id, list_codecs, BitstreamError, load_image

This package re-exports no metric: they live with the evaluation (``model.evaluation.metrics``: ``psnr``,
``ms_ssim``), above the codecs (ARCHITECTURE.md: Layers).

Importing this package registers the built-in families (``model/codecs/__init__.py``); new codec
families register through ``register_family(Family(...))`` (see ``model.registry``), their networks and
benchmarks as hooks (``model.hooks``: ``Networks``, ``Evaluation``).
"""

from pipeline.imagefiles.pixels import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, LoadedImage, load_image

from .codec import Codec, Encoded, Option, OptionError
from .format import BitstreamError, bits_per_pixel, unpack
from . import codecs  # noqa: F401  (registers the built-in families)
from .hooks import Evaluation, Networks
from .plugins import plugin_env
from .registry import (CodecInfo, CodecRequest, Family, ParsedName, families, get_family, list_codecs, load_codec,
                       load_codec_for_id, register_family, runs_network)
from .zoo import build_network, codec_from_network, load_network, named_config, named_sizes, random_codec
from .weights import Weights, WeightsError, WeightsResolver, make_codec_id, split_codec_id


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "BitstreamError",
    "Codec",
    "Encoded",
    "CodecInfo",
    "CodecRequest",
    "Evaluation",
    "Family",
    "ImageError",
    "LoadedImage",
    "Networks",
    "Option",
    "OptionError",
    "ParsedName",
    "Weights",
    "WeightsError",
    "WeightsResolver",
    "bits_per_pixel",
    "build_network",
    "codec_from_network",
    "families",
    "runs_network",
    "get_family",
    "list_codecs",
    "load_codec",
    "load_codec_for_id",
    "load_image",
    "load_network",
    "make_codec_id",
    "named_config",
    "named_sizes",
    "plugin_env",
    "random_codec",
    "register_family",
    "split_codec_id",
    "unpack",
]
