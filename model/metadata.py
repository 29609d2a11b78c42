"""What an image file carries besides its pixels, read once and written back into restored files.

Kept, by name (the names are the keys of an archive row's ``image_info``):

- ``exif``: the EXIF block as Pillow reads it (``info["exif"]``). When the pixels are turned to the
  display orientation (``model.images.load_image`` does that), the orientation tag is removed from
  it (and from the XMP), as ``ImageOps.exif_transpose`` does: a restored file never turns twice. Files kept byte for
  byte keep their own EXIF, orientation included, and their pixels as stored.
- ``icc_profile``: the colour profile. Pixels are coded in their own colour space, never converted,
  so the profile written back describes them again.
- ``xmp``: the XMP packet (JPEG, WebP, PNG's ``XML:com.adobe.xmp`` text chunk).
- ``text:KEYWORD``: each PNG text chunk (tEXt, zTXt, iTXt), UTF-8.

``file_facts`` also says what a lossy 8-bit RGB codec would lose: alpha, bit depth, frames, a
colour model that is not RGB or grey.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin

ORIENTATION = 0x0112
TEXT = "text:"
XMP_TEXT_KEY = "XML:com.adobe.xmp"  # where PNG keeps XMP
XMP_ORIENTATION = (r'tiff:Orientation="([0-9])"', r"<tiff:Orientation>([0-9])</tiff:Orientation>")  # Pillow's
JPEG_RESTORE_QUALITY = 95  # a .jpg member restored from decoded pixels is a JPEG at this quality, 4:4:4
ALPHA_MODES = frozenset({"RGBA", "LA", "La", "RGBa", "PA"})


@dataclass(frozen=True)
class FileFacts:
    """What an image file holds beyond 8-bit RGB, and its metadata (``image_info``, by name)."""

    format: str | None
    mode: str
    size: tuple[int, int]  # as stored (before orientation)
    frames: int
    bits: int  # per channel sample: 8, or 16 for 16-bit PNG/TIFF
    alpha: bool  # an alpha channel or palette transparency
    orientation: int
    image_info: dict[str, bytes] = field(default_factory=dict)


def _bits(img: Image.Image) -> int:
    """Bits per sample, from the mode and the decoder's raw mode (Pillow reads 48-bit RGB PNG as 8-bit RGB)."""
    raw = " ".join(str(t.args) for t in getattr(img, "tile", None) or [])
    if img.mode.startswith("I;16") or img.mode in ("I", "F") or ";16" in raw:
        return 16
    return 8


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)


def _exif_without_orientation(img: Image.Image) -> bytes:
    exif = img.getexif()
    exif.pop(ORIENTATION, None)
    return exif.tobytes()


def _xmp_without_orientation(xmp: str) -> str:
    """XMP's copy of the orientation removed, as ``ImageOps.exif_transpose`` does."""
    for pattern in XMP_ORIENTATION:
        xmp = re.sub(pattern, "", xmp)
    return xmp


def read_image_info(img: Image.Image, oriented: bool) -> dict[str, bytes]:
    """The metadata of an opened image by name (module docstring); ``oriented``: the pixels will be turned
    to display orientation, so the orientation tag is left out."""
    info: dict[str, bytes] = {}
    exif = img.info.get("exif")
    if exif:
        info["exif"] = _exif_without_orientation(img) if oriented else bytes(exif)
    if img.info.get("icc_profile"):
        info["icc_profile"] = bytes(img.info["icc_profile"])
    xmp = img.info.get("xmp")
    if xmp:
        xmp = xmp if isinstance(xmp, str) else bytes(xmp).decode("utf-8", errors="surrogateescape")
        info["xmp"] = (_xmp_without_orientation(xmp) if oriented else xmp).encode("utf-8", errors="surrogateescape")
    for key, value in (getattr(img, "text", None) or {}).items():
        value = _xmp_without_orientation(str(value)) if oriented and key == XMP_TEXT_KEY else str(value)
        info[TEXT + key] = value.encode()
    return info


def file_facts(data: bytes) -> FileFacts:
    """Facts and metadata of image file bytes, from the header (and, for PNG, its text chunks)."""
    with Image.open(io.BytesIO(data)) as img:
        bits = _bits(img)  # before anything loads the image (PNG's getexif does), which clears the tiles
        orientation = int(img.getexif().get(ORIENTATION, 1) or 1)
        if img.format == "PNG":
            img.load()  # text chunks after the image data are read only now
        return FileFacts(format=img.format, mode=img.mode, size=img.size, frames=getattr(img, "n_frames", 1),
                         bits=bits, alpha=_has_alpha(img), orientation=orientation,
                         image_info=read_image_info(img, oriented=orientation != 1))


def save_kwargs(fmt: str, image_info: dict[str, bytes]) -> dict:
    """Pillow save arguments that write ``image_info`` back into a file of format ``fmt``."""
    kwargs: dict = {}
    if "exif" in image_info:
        kwargs["exif"] = image_info["exif"]
    if "icc_profile" in image_info:
        kwargs["icc_profile"] = image_info["icc_profile"]
    if fmt == "PNG":
        texts = {k[len(TEXT):]: v.decode() for k, v in image_info.items() if k.startswith(TEXT)}
        if "xmp" in image_info and XMP_TEXT_KEY not in texts:
            texts[XMP_TEXT_KEY] = image_info["xmp"].decode(errors="replace")
        if texts:
            chunks = PngImagePlugin.PngInfo()
            for key, value in texts.items():
                if key == XMP_TEXT_KEY or not value.isascii():
                    chunks.add_itxt(key, value)
                else:
                    chunks.add_text(key, value)
            kwargs["pnginfo"] = chunks
    elif "xmp" in image_info and fmt in ("JPEG", "WEBP"):
        kwargs["xmp"] = image_info["xmp"]
    return kwargs
