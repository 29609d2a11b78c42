"""AVIF box headers stripped at encode and rebuilt at decode: 277 bytes saved per image.

A still AVIF from libavif (Pillow) is the AV1 item data (a sequence header OBU and a frame OBU)
inside ISOBMFF boxes: ftyp, meta (hdlr, pitm, iloc, iinf/infe, iprp: ispe, pixi, av1C, colr nclx,
ipma) and the mdat header. Every field of those boxes is either the image size, which our
container already stores, or repeated from the AV1 sequence header (profile, level, tier, bit
depth, subsampling, chroma position, colour description and range). So the compact form is the
AV1 item data alone (less its 2-byte temporal delimiter), and ``rebuild`` writes the boxes again
in libavif's own layout: on Pillow's libavif 1.4 the rebuilt file is byte-identical.

``compact_or_full`` keeps the compact form only when the rebuilt file is byte-identical to the
original or decodes to identical pixels; anything else (alpha, Exif, ICC, grids, another writer)
is stored whole behind tag 0, so stripping can never change a decoded image.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from .av1_obu import OBU_SEQUENCE_HEADER, SequenceHeader, parse_sequence_header, split_obus
from .avif_size import check_declared_size, walk_boxes
from ..format import BitstreamError

TAG_FULL = 0
TAG_COMPACT = 1
OBU_TILE_CARRIERS = {4, 6}  # tile group, frame: the image data, which ends an AV1 still item
TEMPORAL_DELIMITER = b"\x12\x00"  # the OBU libavif puts first in every AV1 item; rebuilt


def _box(kind: bytes, *body: bytes, full: tuple[int, int] | None = None) -> bytes:
    """An ISOBMFF box; ``full`` = (version, flags) makes it a FullBox."""
    head = b"" if full is None else struct.pack(">I", (full[0] << 24) | full[1])
    content = head + b"".join(body)
    return struct.pack(">I", 8 + len(content)) + kind + content


def _av1c(seq: SequenceHeader) -> bytes:
    high, twelve = int(seq.bit_depth > 8), int(seq.bit_depth == 12)
    flags = (seq.tier << 7 | high << 6 | twelve << 5 | seq.monochrome << 4
             | seq.subsampling_x << 3 | seq.subsampling_y << 2 | seq.chroma_sample_position)
    return _box(b"av1C", bytes([0x81, seq.profile << 5 | seq.level, flags, 0]))


def _brands(seq: SequenceHeader) -> bytes:
    """libavif's ftyp: avif, mif1, miaf, then the AV1 profile brand where one applies."""
    brands = b"avifmif1miaf"
    if seq.bit_depth in (8, 10) and not seq.monochrome:
        subsampling = (seq.subsampling_x, seq.subsampling_y)
        brands += {(1, 1): b"MA1B", (0, 0): b"MA1A"}.get(subsampling, b"")
    return _box(b"ftyp", b"avif", bytes(4), brands)


def rebuild(compact: bytes, width: int, height: int) -> bytes:
    """A full AVIF file around compact AV1 data, with libavif's box layout."""
    obus = split_obus(compact)
    if not obus or obus[0][0] != OBU_SEQUENCE_HEADER:
        raise BitstreamError("compact AVIF data must start with an AV1 sequence header OBU")
    if obus[-1][0] not in OBU_TILE_CARRIERS:
        raise BitstreamError("compact AVIF data does not end in a frame OBU: truncated")
    seq = parse_sequence_header(obus[0][1])
    if (seq.width, seq.height) != (width, height):
        raise BitstreamError(
            f"AV1 sequence header says {seq.width}x{seq.height}, container says {width}x{height}"
        )
    item = TEMPORAL_DELIMITER + compact
    data_offset = len(_head(seq, width, height, 0, len(item))) + 8  # mdat's header, then the item
    if data_offset + len(item) >= 1 << 32:
        raise BitstreamError("AV1 item data too large for a 32-bit mdat box")
    return _head(seq, width, height, data_offset, len(item)) + _box(b"mdat", item)


def _head(seq: SequenceHeader, width: int, height: int, data_offset: int, item_size: int) -> bytes:
    """ftyp and meta for one AV1 image item whose data sits at ``data_offset``."""
    channels = 1 if seq.monochrome else 3
    colour = struct.pack(
        ">4sHHHB", b"nclx", seq.primaries, seq.transfer, seq.matrix, seq.full_range << 7
    )
    properties = _box(
        b"ipco",
        _box(b"ispe", struct.pack(">II", width, height), full=(0, 0)),
        _box(b"pixi", bytes([channels] + [seq.bit_depth] * channels), full=(0, 0)),
        _av1c(seq),
        _box(b"colr", colour),
    )
    # item 1 -> properties 1..4 (ispe, pixi, av1C essential, colr)
    association = _box(b"ipma", struct.pack(">IHB4B", 1, 1, 4, 1, 2, 0x83, 4), full=(0, 0))
    # 4-byte offsets and lengths, one item, one extent
    location = struct.pack(">BBHHHHII", 0x44, 0, 1, 1, 0, 1, data_offset, item_size)
    item_info = _box(b"infe", struct.pack(">HH", 1, 0), b"av01Color\0", full=(2, 0))
    return _brands(seq) + _box(
        b"meta",
        _box(b"hdlr", bytes(4), b"pict", bytes(13), full=(0, 0)),
        _box(b"pitm", struct.pack(">H", 1), full=(0, 0)),
        _box(b"iloc", location, full=(0, 0)),
        _box(b"iinf", struct.pack(">H", 1), item_info, full=(0, 0)),
        _box(b"iprp", properties, association),
        full=(0, 0),
    )


def _boxes(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """kind -> (body start, end) of the first box of each kind in data[start:end], looking
    inside container boxes too."""
    found: dict[bytes, tuple[int, int]] = {}
    for kind, body, box_end in walk_boxes(data, start, end):
        found.setdefault(kind, (body, box_end))
    return found


def strip(avif: bytes) -> bytes:
    """The compact form of a single-item AVIF: its AV1 item data (located through iloc) less
    the leading temporal delimiter."""
    boxes = _boxes(avif, 0, len(avif))
    for kind in (b"ftyp", b"meta", b"iloc", b"iinf", b"mdat"):
        if kind not in boxes:
            raise BitstreamError(f"not an AVIF still image: no {kind.decode()} box")
    iinf_start = boxes[b"iinf"][0]
    if avif[iinf_start : iinf_start + 6] != bytes([0, 0, 0, 0, 0, 1]):  # version 0, one entry
        raise BitstreamError("AVIF has more than one item (alpha, Exif, grid): not strippable")
    iloc_start, iloc_end = boxes[b"iloc"]
    libavif_layout = bytes([0, 0, 0, 0, 0x44, 0])  # version 0, 4-byte offsets and lengths
    if avif[iloc_start : iloc_start + 6] != libavif_layout or iloc_end - iloc_start < 22:
        raise BitstreamError("AVIF iloc is not the single-extent layout that libavif writes")
    item_count, _, _, extents, offset, length = struct.unpack_from(">HHHHII", avif, iloc_start + 6)
    if item_count != 1 or extents != 1 or offset + length > len(avif):
        raise BitstreamError("AVIF item data is not one extent inside the file")
    item = avif[offset : offset + length]
    return item[len(TEMPORAL_DELIMITER) :] if item.startswith(TEMPORAL_DELIMITER) else item


def _decode(avif: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(avif)) as img:
        return np.asarray(img)


def _same_pixels(a: bytes, b: bytes) -> bool:
    try:
        pixels_a, pixels_b = _decode(a), _decode(b)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return pixels_a.shape == pixels_b.shape and bool(np.array_equal(pixels_a, pixels_b))


def compact_or_full(avif: bytes, width: int, height: int) -> bytes:
    """Tag 1 + compact form when rebuilding it loses nothing, else tag 0 + the whole file."""
    try:
        compact = strip(avif)
        rebuilt = rebuild(compact, width, height)
    except BitstreamError:
        return bytes([TAG_FULL]) + avif
    if rebuilt == avif or _same_pixels(rebuilt, avif):
        return bytes([TAG_COMPACT]) + compact
    return bytes([TAG_FULL]) + avif


def expand(data: bytes, width: int, height: int) -> bytes:
    """The inverse of ``compact_or_full``: a full AVIF file."""
    if not data:
        raise BitstreamError("AVIF base layer is empty: the bitstream is truncated")
    if data[0] == TAG_FULL:
        if data[5:9] != b"ftyp":
            raise BitstreamError("stored AVIF file does not start with an ftyp box: corrupt")
        check_declared_size(data[1:], width, height)  # before any decoder allocates for it
        return data[1:]
    if data[0] == TAG_COMPACT:
        return rebuild(data[1:], width, height)
    raise BitstreamError(f"unknown AVIF base layer tag {data[0]} (expected 0 or 1)")


def measure(folder: str, qualities: tuple[int, ...] = (10, 20, 30, 40, 60)) -> None:
    """Print the bytes saved by ``compact_or_full`` on every PNG in ``folder`` (AVIF at the base
    layer's settings: speed 6, 4:2:0)."""
    from pathlib import Path

    paths = sorted(Path(folder).glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG images in {folder}: pass a folder such as ../shared/data/kodak")
    images = [Image.open(p).convert("RGB") for p in paths]
    print(f"{len(paths)} images in {folder}")
    print("quality  avif_bpp  avif_bytes  saved_bytes(min-max)  saved_%(min-max)  saved_bpp  "
          "fallbacks")
    for quality in qualities:
        rows = []
        for img in images:
            buf = io.BytesIO()
            img.save(buf, format="AVIF", quality=quality, speed=6, subsampling="4:2:0")
            avif = buf.getvalue()
            packed = compact_or_full(avif, img.width, img.height)
            pixels = img.width * img.height
            rows.append((len(avif), len(avif) - len(packed), packed[0] == TAG_FULL, pixels))
        size, saved, fallback, pixels = (np.array(column) for column in zip(*rows))
        share = 100 * saved / size
        print(f"{quality:7d}  {np.mean(8 * size / pixels):8.4f}  {size.mean():10.0f}  "
              f"{saved.mean():6.1f} ({saved.min()}-{saved.max()})  "
              f"{share.mean():7.2f} ({share.min():.2f}-{share.max():.2f})  "
              f"{np.mean(8 * saved / pixels):9.5f}  {fallback.sum():9d}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", metavar="DIR", required=True, help="folder of PNG images")
    measure(parser.parse_args().measure)
