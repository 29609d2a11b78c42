"""A row back into the sample it came from: the image member under its own name and extension, the
other members (sidecars, second images) as they were.

What the image member holds, by the row's ``stored_as`` (``keeping``):

- ``original``, ``jpeg-xl``: the original file, byte for byte (JPEG XL gives the JPEG back exactly);
  so does an error row that kept its file.
- ``codec``, ``lossless``: the decoded pixels written in the member's own format, with the row's
  metadata (EXIF, ICC, XMP, PNG text) written back: ``.png`` PNG, ``.jpg``/``.jpeg`` JPEG at quality
  ``JPEG_RESTORE_QUALITY`` (4:4:4), ``.webp`` lossless WebP, others Pillow's writer for the extension.
- ``none`` (a sample without an image): nothing; its members pass through.

``--format png`` writes decoded pixels as ``KEY.png``, kept files under their own extension (a PNG of
them would lose what was kept: frames, depth, the file itself), and every other member next to them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from model.lossless import decode_pixels, jxl_to_jpeg
from model.metadata import JPEG_RESTORE_QUALITY, save_kwargs

from .keeping import CODEC, JPEG_XL, LOSSLESS, NONE, ORIGINAL

PIXEL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP",
                 "tif": "TIFF", "tiff": "TIFF", "avif": "AVIF", "ppm": "PPM", "pgm": "PPM", "pnm": "PPM"}
FORMAT_OPTIONS = {"JPEG": {"quality": JPEG_RESTORE_QUALITY, "subsampling": 0}, "PNG": {"compress_level": 3},
                  "WEBP": {"lossless": True}, "AVIF": {"quality": 95}}


@dataclass
class Restored:
    """What a row gives back: ``image`` (decoded pixels) or ``file`` (the kept file's bytes), or
    ``error`` (not restored now: fails the row); ``noted``: the row was an error row at compress
    time (reported, not a failure)."""

    image: Image.Image | None = None
    file: bytes | None = None
    error: str | None = None
    noted: str | None = None


def stored_as(row: dict) -> str | None:
    """The row's path; archives written before the column was added hold codec rows and error rows."""
    return row.get("stored_as") or (CODEC if row["error"] is None else None)


def needs_codec(row: dict) -> bool:
    return row["error"] is None and not row.get("refused") and stored_as(row) == CODEC


def restore_kept(row: dict) -> Restored:
    """A row that is not the codec's: its kept file, lossless pixels, or nothing."""
    if row.get("refused"):
        return Restored(error=row["refused"])
    noted = f"archived as an error row: {row['error']}" if row["error"] is not None else None
    path = stored_as(row)
    try:
        if path == ORIGINAL and row["bitstream"] is not None:
            return Restored(file=row["bitstream"], noted=noted)
        if path == JPEG_XL:
            return Restored(file=jxl_to_jpeg(row["bitstream"]))
        if path == LOSSLESS:
            return Restored(image=decode_pixels(row["bitstream"]))
    except Exception as exc:  # BitstreamError: the row's fault
        return Restored(error=f"decode failed: {exc}")
    if path == NONE or noted:
        return Restored(noted=noted)
    return Restored(error=f"row stored as {path!r} holds nothing to restore")


def image_file(img: Image.Image, ext: str, image_info: dict[str, bytes]) -> bytes:
    """Decoded pixels as a file of the format ``ext`` names, with ``image_info`` written into it."""
    fmt = PIXEL_FORMATS.get(ext.lower(), "PNG")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **FORMAT_OPTIONS.get(fmt, {}), **save_kwargs(fmt, image_info))
    return buf.getvalue()


def image_member(row: dict, restored: Restored, as_png: bool) -> tuple[str, bytes] | None:
    """(extension, bytes) of the restored image member, or None when there is none."""
    member = row["member"]
    if restored.file is not None:
        return member, restored.file
    if restored.image is not None:
        ext = "png" if as_png else member
        return ext, image_file(restored.image, ext, dict(row.get("image_info") or []))
    return None


def sample_members(row: dict, restored: Restored, as_png: bool = False) -> dict[str, bytes]:
    """The sample's members by extension: its image as ``image_member`` says, then the carried members."""
    members: dict[str, bytes] = {}
    if (image := image_member(row, restored, as_png)) is not None:
        members[image[0]] = image[1]
    for ext, data in row["metadata"] or []:
        members.setdefault(ext, data)
    return members
