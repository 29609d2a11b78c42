"""Turning arbitrary input images into the 8-bit RGB the codecs work on, and back.

Every codec sees 8-bit RGB. What the original was is recorded (``mode``) so that decoding can hand
back a greyscale image for a greyscale original. The conversion, by Pillow mode:

- ``RGB``                         as is
- ``L``, ``LA``, ``1``            grey copied to R=G=B; decode restores ``L`` (alpha is dropped)
- ``I;16*``, ``I``                16/32-bit grey scaled to 8 bits (top byte); decode restores ``L``
- ``F``                           clipped to 0..255; decode restores ``L``
- ``RGBA``, ``P``, ``PA``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``RGBX``, ...
                                  Pillow's own conversion to ``RGB`` (alpha dropped); decode gives ``RGB``

Alpha is not archived: the codecs are for photographs, and the dropped alpha is visible in the
recorded mode, so a caller can tell.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# The one list of image file extensions (shard members, folders of images): what Pillow reads here.
# HEIF (heic, heif) is listed so that such members are images (kept as files: Pillow cannot decode them).
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif", "ppm", "pgm", "pnm", "mpo",
                    "heic", "heif")
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb cap; callers may raise it


class ImageError(ValueError):
    """An input that cannot be turned into an image to compress (the message says why)."""


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for a codec, plus what the original looked like."""

    rgb: np.ndarray  # uint8, H x W x 3
    mode: str  # Pillow mode of the original
    format: str | None  # Pillow format of the original file (JPEG, PNG, ...), None for arrays
    orientation: int  # EXIF orientation that was applied (1 = none)
    frames: int  # number of frames in the original (first one is used)


def sniff_format(data: bytes) -> str | None:
    """``HEIF`` or ``AVIF`` from an ISO-BMFF file's ``ftyp`` brand, else None (Pillow names the others)."""
    if data[4:8] != b"ftyp":
        return None
    brand = data[8:12]
    return "AVIF" if brand in (b"avif", b"avis") else "HEIF" if brand in HEIF_BRANDS else None


def without_reprs(text: str) -> str:
    """Pillow's messages name the file object (``<_io.BytesIO object at 0x...>``): leave it out."""
    return re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-fA-F]+>", "", text)


def is_image_name(name: str) -> bool:
    """Whether a file name or a shard member's extension (``photo.JPG``, ``seg.png``, ``jpg``) is an image."""
    return name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS


def held_out(path: str, every: int) -> bool:
    """Whether a training file belongs to the held-out slice (1 in ``every`` by a hash of its name;
    0: none). Training never reads it, so evaluation can use it (``jobs/evaluate.py --held-out``)."""
    if every <= 0:
        return False
    return int(hashlib.sha256(Path(path).name.encode()).hexdigest(), 16) % every == 0


def restored_mode(original_mode: str) -> str:
    """The mode decode hands back for an original of ``original_mode``."""
    return "L" if original_mode in GREY_MODES else "RGB"


def to_rgb8(img: Image.Image) -> np.ndarray:
    """8-bit RGB array (H x W x 3) from a Pillow image of any mode, per the table above."""
    mode = img.mode
    if mode == "RGB":
        arr = np.asarray(img, dtype=np.uint8)
    elif mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        wide = np.asarray(img).astype(np.int64)
        bits = 16 if mode.startswith("I;16") or wide.max(initial=0) <= 0xFFFF else 32
        arr = np.clip(wide >> (bits - 8), 0, 255).astype(np.uint8)
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif mode == "F":
        arr = np.clip(np.asarray(img), 0, 255).round().astype(np.uint8)
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif mode in GREY_MODES:
        arr = np.asarray(img.convert("L"), dtype=np.uint8)
        arr = np.repeat(arr[..., None], 3, axis=2)
    else:
        if mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # avoids Pillow's warning about palette transparency
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(arr)


def from_rgb8(rgb: np.ndarray, original_mode: str) -> Image.Image:
    """A Pillow image of the restored mode from a decoded 8-bit RGB array."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    return img.convert("L") if restored_mode(original_mode) == "L" else img


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode image file bytes: first frame, EXIF orientation applied, pixel cap enforced.

    Raises ``ImageError`` with a one-line reason for empty, truncated, corrupt or oversized input.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image is {width}x{height} = {width * height} pixels, over the cap of "
                    f"{max_pixels} (decompression-bomb guard; raise the job's --max-pixels to allow it)"
                )
            fmt = img.format
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            img.load()
            img = ImageOps.exif_transpose(img) if orientation != 1 else img
            mode = img.mode
            rgb = to_rgb8(img)
    except (ImageError, MemoryError):  # out of memory is the machine's fault, not the file's
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard, at twice its limit, fires on open
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageError(f"image is {pixels.group(1) if pixels else 'more than'} pixels, over the cap of {max_pixels} "
                         "(decompression-bomb guard; raise the job's --max-pixels to allow it)") from None
    except Exception as exc:  # Pillow raises many kinds for bad bytes; all mean "not an image"
        reason = without_reprs(str(exc)) or type(exc).__name__
        raise ImageError(f"cannot decode image: {reason}") from None
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError("image has zero width or height")
    return LoadedImage(rgb=rgb, mode=mode, format=fmt, orientation=orientation, frames=frames)


def as_loaded(image) -> LoadedImage:
    """Accept what callers pass to ``Codec.encode``: LoadedImage, Pillow image, array or file bytes."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        return load_image(bytes(image))
    if isinstance(image, Image.Image):
        return LoadedImage(to_rgb8(image), image.mode, image.format, 1, 1)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ImageError(f"arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return LoadedImage(np.repeat(arr[..., None], 3, axis=2), "L", None, 1, 1)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return LoadedImage(np.ascontiguousarray(arr), "RGB", None, 1, 1)
    raise ImageError(f"arrays must be H x W or H x W x 3, got shape {arr.shape}")
