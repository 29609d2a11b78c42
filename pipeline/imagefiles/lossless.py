"""Lossless JPEG XL through libjxl (the ``imagecodecs`` binding): a JPEG file recompressed so that the
very same file comes back (JPEG XL's transcoding keeps the JPEG's coefficients and its other bytes,
about 20 % smaller), and pixel-exact coding of 8-bit grey / RGB images with or without alpha.

Modes kept exactly: ``L``, ``LA``, ``RGB``, ``RGBA`` (palette and ``1`` images become one of these,
losing nothing; transparency in tRNS form, a palette's or a colour key on grey or RGB, becomes alpha). Deeper images are kept as their original files by the archive (``pipeline.encode.keeping``).
"""

from __future__ import annotations

import imagecodecs
import numpy as np
from PIL import Image


EFFORT = 7  # libjxl's default: ~0.1 s per megapixel lossless on one core
PIXEL_MODES = ("L", "LA", "RGB", "RGBA")


class JpegXLError(ValueError):
    """Kept JPEG XL bytes that do not decode (the row's fault, as a codec's ``BitstreamError`` is); the
    message says why."""


def jpeg_to_jxl(jpeg: bytes) -> bytes:
    """The JPEG file recompressed; raises ``ValueError`` for a JPEG that libjxl cannot transcode
    (CMYK, arithmetic coding, ...): keep the file itself then."""
    try:
        return bytes(imagecodecs.jpegxl_encode_jpeg(jpeg, numthreads=1))
    except Exception as exc:
        raise ValueError(f"JPEG XL cannot recompress this JPEG: {exc}") from None


def jxl_to_jpeg(jxl: bytes) -> bytes:
    """The original JPEG file, byte for byte, from ``jpeg_to_jxl``'s output."""
    try:
        return bytes(imagecodecs.jpegxl_decode_jpeg(jxl, numthreads=1))
    except Exception as exc:
        raise JpegXLError(f"JPEG XL recompressed JPEG does not decode: {exc}") from None


def pixel_mode(img: Image.Image) -> str:
    """The mode ``encode_pixels`` keeps ``img`` in without losing anything (8-bit images only)."""
    keyed = "transparency" in img.info  # tRNS: a palette's alphas, or one grey or RGB colour that is transparent
    if img.mode in ("L", "1"):
        return "LA" if keyed else "L"
    if img.mode == "RGB":
        return "RGBA" if keyed else "RGB"
    if img.mode in PIXEL_MODES:
        return img.mode
    if img.mode in ("P", "PA"):
        return "RGBA" if img.mode == "PA" or keyed else "RGB"
    if img.mode == "La":
        return "LA"
    raise ValueError(f"mode {img.mode} cannot be kept pixel-exact as 8-bit L, LA, RGB or RGBA")


def encode_pixels(img: Image.Image) -> bytes:
    """``img`` (8-bit) coded losslessly: ``decode_pixels`` gives back the same pixels in ``pixel_mode(img)``."""
    arr = np.asarray(img.convert(pixel_mode(img)), dtype=np.uint8)
    return bytes(imagecodecs.jpegxl_encode(arr, lossless=True, effort=EFFORT, numthreads=1))


def decode_pixels(jxl: bytes) -> Image.Image:
    try:
        arr = np.asarray(imagecodecs.jpegxl_decode(jxl, numthreads=1))
    except Exception as exc:
        raise JpegXLError(f"JPEG XL image does not decode: {exc}") from None
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise JpegXLError(f"JPEG XL image is {arr.dtype} of shape {arr.shape}, expected 8-bit L, LA, RGB or RGBA")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    mode = "L" if arr.ndim == 2 else PIXEL_MODES[arr.shape[2] - 1]
    return Image.fromarray(np.ascontiguousarray(arr), mode)
