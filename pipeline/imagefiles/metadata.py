"""What an image file carries besides its pixels, read once and written back into restored files.

Kept, by name (the names are the keys of an archive row's ``image_info``):

- ``exif``: the EXIF block as the file holds it (thumbnail and maker notes included). When the pixels
  are turned to the display orientation (``pipeline.imagefiles.pixels.load_image`` does that), its orientation tag
  is set to 1 in place (``segments.reset_orientation``), and XMP's ``tiff:Orientation`` and a PNG's
  ``Raw profile type exif`` text are reset the same way: a restored file never turns twice. Files kept
  byte for byte keep their own orientation and their pixels as stored.
- ``icc_profile``: the colour profile. Pixels are coded in their own colour space, never converted,
  so the profile written back describes them again. PNG's gAMA, cHRM, sRGB and cICP are decided the
  same way: they travel with the pixels (in ``png:chunks``).
- ``xmp``: the XMP packet (JPEG, WebP, AVIF, TIFF, PNG's ``XML:com.adobe.xmp`` text chunk, kept once).
- ``text:KEYWORD``: each other PNG text chunk (tEXt, zTXt, iTXt), UTF-8.
- ``jpeg:segments``: a JPEG's APPn and COM segments in order: raw (JFIF density, IPTC APP13, comments,
  extended XMP, maker segments), or a placeholder (marker and signature) for a named one above, so
  that the restored file has every segment in the original's order.
- ``png:chunks``: a PNG's other ancillary chunks, raw and in order (gAMA, cHRM, sRGB, pHYs, bKGD, sBIT,
  tIME, private safe-to-copy chunks); a palette's bKGD is turned into the colour it names.
- ``comment``: a GIF's comment. ``tiff:tags``: a TIFF's descriptive tags and resolution (JSON).

What cannot be carried is named in ``FileFacts.dropped`` with the reason (the row's ``notes``): APP14
Adobe (the original coding's colour transform), APP2 MPF (offsets into the original file), hIST, an
sBIT or 16-bit bKGD of another colour type, unsafe-to-copy private chunks, other TIFF tags, metadata
the restored format cannot hold.

``file_facts`` also says what a lossy 8-bit RGB codec would lose: alpha (an alpha channel or tRNS in
any form), bit depth, frames or pages, a colour model that is not RGB or grey, data after the image.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin, TiffTags

from . import segments as seg

ORIENTATION = 0x0112
TEXT = "text:"
JPEG_SEGMENTS, PNG_CHUNKS, COMMENT, TIFF_TAGS = "jpeg:segments", "png:chunks", "comment", "tiff:tags"
XMP_TEXT_KEY = "XML:com.adobe.xmp"  # where PNG keeps XMP
RAW_EXIF_KEYS = ("Raw profile type exif", "Raw profile type APP1")  # ImageMagick's EXIF as PNG text
XMP_ORIENTATION = (r'tiff:Orientation="([0-9])"', r"<tiff:Orientation>([0-9])</tiff:Orientation>")  # Pillow's
JPEG_RESTORE_QUALITY = 95  # a JPEG restored from decoded pixels is written at this quality, 4:4:4
ALPHA_MODES = frozenset({"RGBA", "LA", "La", "RGBa", "PA"})
MPF_APP2 = b"MPF\x00"
PNG_NAMED = {"IHDR", "PLTE", "IDAT", "IEND", "tEXt", "zTXt", "iTXt", "iCCP", "eXIf", "tRNS", "acTL", "fcTL", "fdAT"}
PNG_KEPT = {"gAMA", "cHRM", "sRGB", "cICP", "mDCV", "cLLI", "pHYs", "sPLT", "tIME", "oFFs", "pCAL", "sCAL", "sTER"}
PNG_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
SBIT_BYTES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # by colour type; a palette's are of its RGB entries
TIFF_KEPT = {269, 270, 271, 272, 282, 283, 285, 296, 305, 306, 315, 316, 33432}  # names, dates, resolution
TIFF_STRUCTURE = {254, 255, 256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 279, 284, 317, 320, 322, 323, 324,
                  325, 338, 339, 340, 341, 530, 531, 532}  # the layout of the pixels
TIFF_NAMED = {700: "xmp", 34675: "icc_profile"}  # tags Pillow reads by name (where it does)
WRITES = {"JPEG": {"exif", "icc_profile", "xmp", JPEG_SEGMENTS}, "PNG": {"exif", "icc_profile", "xmp", PNG_CHUNKS},
          "WEBP": {"exif", "icc_profile", "xmp"}, "AVIF": {"exif", "icc_profile", "xmp"},
          "TIFF": {"exif", "icc_profile", "xmp", TIFF_TAGS}, "GIF": {COMMENT}}


@dataclass(frozen=True)
class FileFacts:
    """What an image file holds beyond 8-bit RGB, and its metadata (``image_info``, by name)."""

    format: str | None
    mode: str
    size: tuple[int, int]  # as stored (before orientation)
    frames: int
    bits: int  # per channel sample: 8, or 16 for 16-bit PNG/TIFF
    alpha: bool  # an alpha channel, or transparency in tRNS form (palette or colour key)
    orientation: int
    image_info: dict[str, bytes] = field(default_factory=dict)
    trailing: int = 0  # bytes after the image's end (a JPEG's EOI, a PNG's IEND): a motion photo's video
    dropped: tuple[str, ...] = ()  # metadata not carried, each with the reason


def _bits(img: Image.Image) -> int:
    """Bits per sample, from the mode and the decoder's raw mode (Pillow reads 48-bit RGB PNG as 8-bit RGB)."""
    raw = " ".join(str(t.args) for t in getattr(img, "tile", None) or [])
    if img.mode.startswith("I;16") or img.mode in ("I", "F") or ";16" in raw:
        return 16
    return 8


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ALPHA_MODES or "transparency" in img.info


def restored_png_mode(img: Image.Image) -> str:
    """The mode pixels of ``img`` come back in (either path): grey or RGB, with alpha where it has any."""
    grey = img.mode in ("1", "L", "LA", "La") or img.mode.startswith("I")
    return ("LA" if grey else "RGBA") if _has_alpha(img) else ("L" if grey else "RGB")


def _xmp_without_orientation(xmp: str) -> str:
    """XMP's copy of the orientation removed, as ``ImageOps.exif_transpose`` does."""
    for pattern in XMP_ORIENTATION:
        xmp = re.sub(pattern, "", xmp)
    return xmp


def _jpeg_info(data: bytes, img: Image.Image, oriented: bool, info: dict[str, bytes], dropped: list[str]) -> None:
    """Every APPn and COM segment in order: raw, or a placeholder where a named one (``exif``, ``xmp``,
    ``icc_profile``) is written back by Pillow."""
    kept, placed = [], set()
    transform = 0 if restored_png_mode(img) == "L" else 1  # what Pillow's writer codes: grey, or YCbCr
    for s in seg.jpeg_segments(data):
        marker, payload = seg.segment_marker(s), seg.segment_payload(s)
        name = ("exif" if marker == 0xE1 and payload.startswith(seg.EXIF_PREFIX) else
                "xmp" if marker == 0xE1 and payload.startswith(seg.XMP_SIGNATURE) else
                "icc_profile" if marker == 0xE2 and payload.startswith(seg.ICC_SIGNATURE) else None)
        if name in info and (name not in placed or name == "icc_profile"):
            if name not in placed:  # a second EXIF or XMP is kept raw; ICC chunks are one profile
                kept.append(seg.placeholder(s))
            if name == "exif":  # this segment's own block (Pillow joins a second EXIF segment to the first)
                info["exif"] = seg.reset_orientation(payload) if oriented else payload
            placed.add(name)
        elif marker == 0xE2 and payload.startswith(MPF_APP2):
            dropped.append("APP2 MPF (an MPO's index of images: offsets into the original file)")
        elif marker == 0xEE and payload.startswith(b"Adobe") and payload[11:12] != bytes([transform]):
            dropped.append("APP14 Adobe (names the original coding's colour transform, not the restored file's)")
        else:
            kept.append(s)
    if kept:
        info[JPEG_SEGMENTS] = b"".join(kept)


def _png_info(data: bytes, img: Image.Image, info: dict[str, bytes], dropped: list[str]) -> None:
    """The ancillary chunks a restored PNG (of ``restored_png_mode``, 8-bit) can hold as they are."""
    chunks = seg.png_chunks(data)
    if not chunks or seg.chunk_type(chunks[0]) != "IHDR":
        return
    depth, colour_type = seg.chunk_data(chunks[0])[8:10]
    restored = PNG_COLOUR_TYPES[restored_png_mode(img)]
    same = depth == 8 and colour_type == restored
    sbit_fits = SBIT_BYTES[colour_type] == SBIT_BYTES[restored] and (depth == 8 or colour_type == 3)
    kept = []
    for c in chunks:
        kind = seg.chunk_type(c)
        if kind in PNG_NAMED:
            continue
        if kind == "bKGD" and (background := _background(c, img, depth, colour_type, restored)) is not None:
            kept.append(background)
        elif kind in PNG_KEPT or (kind == "sBIT" and sbit_fits):
            kept.append(c)
        elif kind == "hIST":
            dropped.append("hIST (the palette's histogram: the restored file has no palette)")
        elif kind in ("sBIT", "bKGD"):  # a bKGD of a grey original restored as RGB, an sBIT of another layout
            dropped.append(f"{kind} (written for {depth}-bit colour type {colour_type}, not the restored 8-bit pixels)")
        elif kind[3].islower():  # safe to copy, by the PNG spec's naming rule
            kept.append(c)
        else:
            dropped.append(f"{kind} (a private chunk not safe to copy once the pixels change)")
    if kept:
        info[PNG_CHUNKS] = b"".join(kept)


def _background(chunk: bytes, img: Image.Image, depth: int, colour_type: int, restored: int) -> bytes | None:
    """bKGD for the restored 8-bit pixels: a palette index as the colour it names, a grey or RGB level
    scaled from the original's depth; None where the colour types do not match (grey against RGB)."""
    data = seg.chunk_data(chunk)
    if colour_type == 3:
        rgb = (img.getpalette() or [0] * 768)[3 * data[0]:3 * data[0] + 3]
        levels = rgb + [0] * (3 - len(rgb))
    elif (colour_type in (0, 4)) == (restored in (0, 4)) and len(data) in (2, 6):
        levels = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        levels = [v >> 8 if depth == 16 else v * 255 // ((1 << depth) - 1) for v in levels]
    else:
        return None
    if restored in (0, 4) and len(levels) == 3:
        return None
    return seg.make_chunk("bKGD", b"".join(v.to_bytes(2, "big") for v in levels))


def _tiff_info(img: Image.Image, info: dict[str, bytes], dropped: list[str]) -> None:
    """Descriptive tags and resolution (JSON); every other tag that is not layout or read by name is named
    as dropped (an EXIF or GPS IFD, IPTC, private tags)."""
    tags = getattr(img, "tag_v2", None) or {}
    kept = {}
    for tag, value in tags.items():
        if tag in TIFF_KEPT:
            kept[str(tag)] = float(value) if tag in (282, 283) else value
        elif tag not in TIFF_STRUCTURE and TIFF_NAMED.get(tag) not in info:
            dropped.append(f"TIFF tag {TiffTags.lookup(tag).name} ({tag}: not carried)")
    if kept:
        info[TIFF_TAGS] = json.dumps(kept, default=str).encode()


def _raw_exif_text(text: str) -> str:
    """A PNG's raw-profile EXIF text with its orientation reset, in the layout it came in."""
    data = seg.raw_profile(text)
    return text if data is None else seg.as_raw_profile(text, seg.reset_orientation(data))


def read_image_info(img: Image.Image, oriented: bool, data: bytes = b"") -> tuple[dict[str, bytes], list[str]]:
    """The metadata of an opened image by name (module docstring), and what is dropped; ``oriented``:
    the pixels will be turned to display orientation, so every copy of the orientation is reset;
    ``data``: the file's bytes, for the segments and chunks Pillow does not read."""
    info: dict[str, bytes] = {}
    dropped: list[str] = []
    exif = img.info.get("exif")
    if exif:
        info["exif"] = seg.reset_orientation(bytes(exif)) if oriented else bytes(exif)
    if img.info.get("icc_profile"):
        info["icc_profile"] = bytes(img.info["icc_profile"])
    xmp = img.info.get("xmp")
    if xmp:
        xmp = xmp if isinstance(xmp, str) else bytes(xmp).decode("utf-8", errors="surrogateescape")
        info["xmp"] = (_xmp_without_orientation(xmp) if oriented else xmp).encode("utf-8", errors="surrogateescape")
    for key, value in (getattr(img, "text", None) or {}).items():
        value = str(value)
        if key == XMP_TEXT_KEY:
            if "xmp" in info:
                continue  # the same packet, kept once
            value = _xmp_without_orientation(value) if oriented else value
        if key in RAW_EXIF_KEYS and oriented:
            value = _raw_exif_text(value)
        info[TEXT + key] = value.encode()
    if img.format in ("JPEG", "MPO"):
        _jpeg_info(data, img, oriented, info, dropped)
    elif img.format == "PNG":
        _png_info(data, img, info, dropped)
    elif img.format == "TIFF":
        _tiff_info(img, info, dropped)
    if img.info.get("comment") and img.format not in ("JPEG", "MPO"):  # a JPEG's COM is in its segments
        comment = img.info["comment"]
        info[COMMENT] = comment if isinstance(comment, bytes) else str(comment).encode()
    if img.format in WRITES:
        dropped += [f"{name} ({img.format} files restored from pixels cannot hold it)"
                    for name in info if not name.startswith(TEXT) and name not in WRITES[img.format]]
    return info, dropped


def file_facts(data: bytes) -> FileFacts:
    """Facts and metadata of image file bytes, from the header (and, for PNG, its text chunks)."""
    with Image.open(io.BytesIO(data)) as img:
        bits = _bits(img)  # before anything loads the image (PNG's getexif does), which clears the tiles
        orientation = int(img.getexif().get(ORIENTATION, 1) or 1)
        if img.format in ("PNG", "GIF"):
            img.load()  # text chunks (a comment) after the (first) image's data are read only now
        info, dropped = read_image_info(img, oriented=orientation != 1, data=data)
        frames = getattr(img, "n_frames", 1)
        end = seg.image_end(data, img.format) if frames == 1 else None  # an MPO's other images are its frames
        return FileFacts(format=img.format, mode=img.mode, size=img.size, frames=frames,
                         bits=bits, alpha=_has_alpha(img), orientation=orientation, image_info=info,
                         trailing=len(data) - end if end is not None else 0, dropped=tuple(dropped))


def save_kwargs(fmt: str, image_info: dict[str, bytes]) -> dict:
    """Pillow save arguments that write ``image_info`` back into a file of format ``fmt`` (the raw
    segments and chunks are spliced in after, by ``with_segments``)."""
    kwargs: dict = {}
    if fmt in ("JPEG", "PNG", "WEBP", "AVIF", "TIFF"):
        for name in ("exif", "icc_profile"):
            if name in image_info:
                kwargs[name] = image_info[name]
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
    elif "xmp" in image_info and fmt in ("JPEG", "WEBP", "AVIF"):
        kwargs["xmp"] = image_info["xmp"]
    if fmt == "GIF" and COMMENT in image_info:
        kwargs["comment"] = image_info[COMMENT]
    if fmt == "TIFF" and (TIFF_TAGS in image_info or "xmp" in image_info):
        tags = {int(k): v for k, v in json.loads(image_info.get(TIFF_TAGS, b"{}")).items()}
        kwargs["tiffinfo"] = {**tags, **({700: image_info["xmp"]} if "xmp" in image_info else {})}  # XMP is tag 700
    return kwargs


def with_segments(fmt: str, written: bytes, image_info: dict[str, bytes]) -> bytes:
    """A file Pillow wrote with ``save_kwargs``, with the raw JPEG segments or PNG chunks put back."""
    if fmt == "JPEG" and JPEG_SEGMENTS in image_info:
        return seg.with_jpeg_segments(written, _split(image_info[JPEG_SEGMENTS], seg.jpeg_segments))
    if fmt == "PNG" and PNG_CHUNKS in image_info:
        return seg.with_png_chunks(written, _split(image_info[PNG_CHUNKS], seg.png_chunks))
    return written


def _split(joined: bytes, parse) -> list[bytes]:
    """Stored segments (or chunks) one by one, parsed as a file holding only them."""
    if parse is seg.jpeg_segments:
        return parse(seg.SOI + joined + b"\xff\xda\x00\x02")
    return parse(seg.PNG_SIGNATURE + joined)
