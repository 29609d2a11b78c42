"""A row back into the sample it came from: the image member under its own name and extension, the
other members (sidecars, second images) as they were.

What the image member holds, by the row's ``stored_as`` (``records.paths``, which holds each path's rule):

- ``original``, ``jpeg-xl``: the original file, byte for byte (JPEG XL gives the JPEG back exactly);
  so does an error row that kept its file.
- ``codec``, ``lossless``: the decoded pixels under the member's own name, written in the original
  file's format as its bytes said (``orig_format``; the extension only for rows that do not record
  it), with the row's metadata written back (``pipeline.imagefiles.metadata``: EXIF, ICC, XMP, PNG text and
  ancillary chunks, JPEG APPn and COM segments, ...): JPEG at quality ``JPEG_RESTORE_QUALITY`` (4:4:4),
  WebP lossless, AVIF at quality 95, others Pillow's writer. ``lossless`` rows (PNG originals) are
  always PNG, which holds their pixels and alpha exactly, whatever the member is called.
- ``none`` (a sample without an image): nothing; its members pass through.

``--format png`` writes decoded pixels as ``KEY.png``, kept files under their own extension (a PNG of
them would lose what was kept: frames, depth, the file itself), and every other member next to them;
where the sample has a ``.png`` member of its own, the decoded image is ``KEY.MEMBER.png`` instead.

No member fails its shard: where the writer fails for one image (a mode its format cannot hold), the
pixels are written as a PNG beside the member (``KEY.MEMBER.png``) and the decode marker says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from ..imagefiles.metadata import JPEG_RESTORE_QUALITY, save_kwargs, with_segments

from ..io.faults import is_out_of_memory
from ..records.paths import RESTORE, Restored, StoragePath

PIXEL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP",
                 "tif": "TIFF", "tiff": "TIFF", "avif": "AVIF", "ppm": "PPM", "pgm": "PPM", "pnm": "PPM"}
ORIGINAL_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "GIF": "GIF", "BMP": "BMP",
                    "TIFF": "TIFF", "AVIF": "AVIF", "PPM": "PPM"}  # Pillow's format name -> the format written
FORMAT_OPTIONS = {"JPEG": {"quality": JPEG_RESTORE_QUALITY, "subsampling": 0}, "PNG": {"compress_level": 3},
                  "WEBP": {"lossless": True}, "AVIF": {"quality": 95}}


def stored_as(row: dict) -> str | None:
    """The row's path; archives written before the column was added hold codec rows and error rows."""
    return row.get("stored_as") or (StoragePath.CODEC.value if row["error"] is None else None)


def needs_codec(row: dict) -> bool:
    return row["error"] is None and not row.get("refused") and stored_as(row) == StoragePath.CODEC


def restore_kept(row: dict) -> Restored:
    """A row that is not the codec's: its path's rule on its kept bytes (``records.paths.RESTORE``), or nothing."""
    if row.get("refused"):
        return Restored(error=row["refused"])
    noted = f"archived as an error row: {row['error']}" if row["error"] is not None else None
    path, rule = stored_as(row), RESTORE.get(stored_as(row))
    try:
        restored = rule(row["bitstream"]) if rule is not None else None
    except Exception as exc:  # JpegXLError: the row's fault
        return Restored(error=f"decode failed: {exc}")
    if restored is not None:
        restored.noted = noted
        return restored
    if path == StoragePath.NONE or noted:
        return Restored(noted=noted)
    return Restored(error=f"row stored as {path!r} holds nothing to restore")


def image_file(img: Image.Image, fmt: str, image_info: dict[str, bytes]) -> bytes:
    """Decoded pixels as a file of format ``fmt``, with ``image_info`` written into it."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **FORMAT_OPTIONS.get(fmt, {}), **save_kwargs(fmt, image_info))
    return with_segments(fmt, buf.getvalue(), image_info)


def written_format(row: dict, as_png: bool) -> str:
    """The format decoded pixels are written in: the content's (module docstring), not the name's."""
    if as_png or stored_as(row) == StoragePath.LOSSLESS:
        return "PNG"
    by_name = PIXEL_FORMATS.get(row["member"].rsplit(".", 1)[-1].lower(), "PNG")  # rows that do not record the format
    return ORIGINAL_FORMATS.get(row.get("orig_format") or "") or by_name


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``decoded.name`` (again while taken): never the name of another member of the sample."""
    while name in taken:
        name = "decoded." + name
    return name


@dataclass
class Member:
    """The restored image member: its extension, its bytes, and why it is not where the row says (or None)."""

    ext: str
    data: bytes
    fallback: str | None = None


def image_member(row: dict, restored: Restored, as_png: bool, taken: set[str] = frozenset()) -> Member | None:
    """The restored image member, or None when there is none; ``taken``: the sample's other members."""
    member = row["member"]
    if restored.file is not None:
        return Member(member, restored.file)
    if restored.image is None:
        return None
    info, fmt = dict(row.get("image_info") or []), written_format(row, as_png)
    name = free_name("png", taken) if as_png else member
    try:
        return Member(name, image_file(restored.image, fmt, info),
                      None if name in (member, "png") else f"the sample has its own .png: written as .{name}")
    except Exception as exc:  # the writer refused this image (Pillow says so with OSError, in memory): the others go on
        if is_out_of_memory(exc):
            raise
        beside = free_name(f"{member}.png", taken | {name})
        return Member(beside, image_file(restored.image, "PNG", info),
                      f"{fmt} writer failed ({exc}): written as PNG, .{beside}")


def sample_members(row: dict, restored: Restored, as_png: bool = False) -> tuple[dict[str, bytes], str | None]:
    """(the sample's members by extension: its image as ``image_member`` says, then the carried members;
    why the image is not where the row says, or None)."""
    carried = dict(row["metadata"] or [])
    image = image_member(row, restored, as_png, set(carried))
    members = {image.ext: image.data} if image is not None else {}
    for ext, data in carried.items():
        members.setdefault(ext, data)
    return members, image.fallback if image is not None else None
