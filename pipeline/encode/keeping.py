"""How each image is kept: the storage decision of one archive row, made before and after coding.

Paths (the row's ``stored_as``, ``records.paths.StoragePath``), and what comes back from each:

- ``codec``: the job's lossy codec; decoded pixels, turned to display orientation (EXIF orientation
  tag removed), metadata (``image_info``) written back into the restored file.
- ``lossless``: JPEG XL pixel-exact (PNG inputs); the same pixels, turned as above, metadata written back.
- ``jpeg-xl``: a JPEG recompressed by JPEG XL; the original file, byte for byte.
- ``original``: the original file's bytes; the file, byte for byte.
- ``none``: a sample without an image; its members come back as they were.

Why (``stored_because``): ``policy`` (the job's mode: lossy by default, ``--lossless``), ``alpha``
(an alpha channel or tRNS transparency), ``16-bit``, ``animation`` (GIF, APNG, WebP), ``multi-page`` (TIFF),
``multi-image`` (MPO), ``data after the image`` (bytes after a JPEG's EOI or a PNG's IEND, e.g. a motion
photo's video: only the file itself keeps them), ``HEIF`` (a format Pillow cannot decode, kept as
the file), ``colour model MODE`` (CMYK, ...: a lossy RGB codec would convert it),
``too small`` (under ``min_side`` pixels: the codec's overhead dominates), ``original smaller`` (the
coded row would not be ``margin`` smaller than the file), ``error`` (the image could not be coded:
its bytes are kept). A flag can let 16-bit and animated inputs through the codec (``allow_8bit``,
``allow_first_frame``); the reason then says what was reduced.

The format is read from the bytes, never from the member's name: a PNG named ``.jpg`` takes the PNG
paths and comes back as a PNG under its own name (``restore``; the row's ``notes`` say so).

A row never holds more than its original file: the lossless paths keep whichever is smaller, and a
coded row whose bitstream plus metadata is not smaller than the file by ``margin`` keeps the file.

A ``jpeg-xl`` row is proven before it is kept: its JPEG XL is reconstructed to the JPEG, and only a file
with the original's sha256 is kept that way; otherwise the original file is, and the row's ``notes``
say why (``diffarc-verify`` checks the same on the archive later, ``pipeline.inspection.verify``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..imagefiles.lossless import decode_pixels, encode_pixels, jpeg_to_jxl, jxl_to_jpeg, pixel_mode
from ..imagefiles.metadata import FileFacts

from ..records.paths import StoragePath, oriented, pixels_sha256

CODEC, LOSSLESS, JPEG_XL, ORIGINAL = StoragePath.CODEC, StoragePath.LOSSLESS, StoragePath.JPEG_XL, StoragePath.ORIGINAL
CODEC_MODES = frozenset({"RGB", "L", "P", "1"})  # what the codec takes without converting the colours


@dataclass(frozen=True)
class Policy:
    """The job's storage flags."""

    lossless: bool = False  # --lossless: every image on a lossless path
    margin: float = 0.0  # --keep-original-margin: a coded row must be this fraction smaller than its file
    min_side: int = 16  # --min-side: smaller images are kept losslessly
    allow_8bit: bool = False  # --allow-8bit: 16-bit inputs may be coded at 8 bits
    allow_first_frame: bool = False  # --allow-first-frame: animations may be coded as their first frame


@dataclass(frozen=True)
class Kept:
    """A decided row's stored bytes (the ``bitstream`` column) and what it says about them."""

    stored_as: StoragePath
    because: str
    data: bytes | None  # None: the codec's bitstream, still to be made
    note: str | None = None  # why it is not kept the smaller way (for the row's ``notes``)
    pixels_sha256: str | None = None  # ``lossless``: the digest of the pixels its bytes decode to


def forced(facts: FileFacts, policy: Policy) -> str | None:
    """Why this image must not go through the lossy codec, or None."""
    if policy.lossless:
        return "policy"
    if facts.frames > 1 and not policy.allow_first_frame:
        return frames_kind(facts)
    if facts.trailing:
        return "data after the image"
    if facts.bits > 8 and not policy.allow_8bit:
        return "16-bit"
    if facts.alpha:
        return "alpha"
    if facts.mode not in CODEC_MODES and not facts.mode.startswith("I") and facts.mode != "F":
        return f"colour model {facts.mode}"
    if min(facts.size) < policy.min_side:
        return "too small"
    return None


def frames_kind(facts: FileFacts) -> str:
    """What several frames of this format are: pages of a TIFF, images of an MPO, or an animation."""
    return {"TIFF": "multi-page", "MPO": "multi-image"}.get(facts.format or "", "animation")


def reductions(facts: FileFacts) -> str:
    """What the codec path loses of an image that the flags let through (the reason recorded)."""
    unit = {"multi-page": "pages", "multi-image": "images"}.get(frames_kind(facts), "frames")
    lost = ([f"first of {facts.frames} {unit}"] if facts.frames > 1 else []) + (["8 of 16 bits"] if facts.bits > 8 else [])
    return "policy, " + " and ".join(lost) + " kept (flag)" if lost else "policy"


def keep_losslessly(data: bytes, facts: FileFacts, because: str,
                    reconstruct: Callable[[bytes], bytes] = jxl_to_jpeg) -> Kept:
    """The smallest lossless way to keep this file: JPEG XL recompression (JPEG), JPEG XL pixels
    (8-bit still PNG), or the file itself. ``reconstruct``: how a JPEG XL row is turned back into the
    JPEG to prove it (the archive's restore rule; a test passes one that alters the file)."""
    if facts.format == "JPEG":
        try:
            jxl = jpeg_to_jxl(data)
        except ValueError:
            return Kept(ORIGINAL, because, data)
        if len(jxl) >= len(data):
            return Kept(ORIGINAL, because, data)
        note = jxl_unfaithful(jxl, data, reconstruct)
        return Kept(ORIGINAL, because, data, note) if note else Kept(JPEG_XL, because, jxl)
    if facts.format == "PNG" and facts.frames == 1 and facts.bits == 8 and not facts.trailing:
        img = oriented(data)
        try:
            pixel_mode(img)
        except ValueError:
            return Kept(ORIGINAL, because, data)
        jxl = encode_pixels(img)
        info = sum(len(v) for v in facts.image_info.values())
        if len(jxl) + info < len(data):
            back = decode_pixels(jxl)  # proven here, as a JPEG XL row is: what the archive will give back
            if back.tobytes() != img.convert(back.mode).tobytes() or back.size != img.size:
                return Kept(ORIGINAL, because, data, "JPEG XL lossless did not give the same pixels back: "
                                                     "the original file is kept")
            return Kept(LOSSLESS, because, jxl, pixels_sha256=pixels_sha256(back))
    return Kept(ORIGINAL, because, data)


def jxl_unfaithful(jxl: bytes, jpeg: bytes, reconstruct: Callable[[bytes], bytes]) -> str | None:
    """Why ``jxl`` does not give ``jpeg`` back byte for byte (the row's note), or None when it does."""
    try:
        back = reconstruct(jxl)
    except ValueError as exc:  # JpegXLError
        return f"JPEG XL recompression did not reconstruct ({exc}): the original file is kept"
    if back != jpeg:  # the same bytes: the same sha256 as the row's orig_sha256
        return (f"JPEG XL recompression reconstructed {len(back)} bytes that differ from the {len(jpeg)}-byte "
                "original: the original file is kept")
    return None


def decide(data: bytes, facts: FileFacts, policy: Policy) -> Kept:
    """Before coding: a lossless path and its bytes, or ``codec`` (bytes still to be made)."""
    because = forced(facts, policy)
    if because is not None:
        return keep_losslessly(data, facts, because)
    return Kept(CODEC, reductions(facts), None)


def after_coding(kept: Kept, bitstream: bytes, info_bytes: int, original: bytes, policy: Policy) -> Kept:
    """The codec's row, or the original file when the row (bitstream + metadata) would not be smaller
    than the file by ``policy.margin``."""
    if len(bitstream) + info_bytes >= len(original) * (1 - policy.margin):
        return Kept(ORIGINAL, "original smaller", original)
    return Kept(CODEC, kept.because, bitstream)
