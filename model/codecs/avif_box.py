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
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..format import BitstreamError

TAG_FULL = 0
TAG_COMPACT = 1
OBU_SEQUENCE_HEADER = 1
OBU_TILE_CARRIERS = {4, 6}  # tile group, frame: the image data, which ends an AV1 still item
TEMPORAL_DELIMITER = b"\x12\x00"  # the OBU libavif puts first in every AV1 item; rebuilt
CONTAINER_BOXES = {b"meta", b"iprp", b"ipco", b"iinf"}  # boxes whose children we walk


@dataclass(frozen=True)
class SequenceHeader:
    """The AV1 sequence header fields the AVIF boxes repeat (AV1 spec 5.5)."""

    profile: int
    level: int
    tier: int
    bit_depth: int
    monochrome: int
    subsampling_x: int
    subsampling_y: int
    chroma_sample_position: int
    primaries: int
    transfer: int
    matrix: int
    full_range: int
    width: int
    height: int


class _Bits:
    """MSB-first bit reader that refuses to run past its end."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def __call__(self, n: int) -> int:
        if self.pos + n > 8 * len(self.data):
            raise BitstreamError("AV1 sequence header is truncated")
        value = 0
        for _ in range(n):
            value = (value << 1) | (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self(1):
            zeros += 1
            if zeros >= 32:
                raise BitstreamError("AV1 sequence header has a malformed uvlc field")
        return self(zeros) + (1 << zeros) - 1


def _read_operating_points(read: _Bits) -> tuple[int, int]:
    """Skip timing/decoder-model/operating-point info; return (level, tier) of operating point 0."""
    decoder_model, buffer_delay_bits = 0, 0
    if read(1):  # timing_info_present_flag
        read(32), read(32)
        if read(1):  # equal_picture_interval
            read.uvlc()
        decoder_model = read(1)
        if decoder_model:
            buffer_delay_bits = read(5) + 1
            read(32), read(5), read(5)
    initial_display_delay = read(1)
    points = []
    for _ in range(read(5) + 1):
        read(12)  # operating_point_idc
        level = read(5)
        points.append((level, read(1) if level > 7 else 0))
        if decoder_model and read(1):
            read(buffer_delay_bits), read(buffer_delay_bits), read(1)
        if initial_display_delay and read(1):
            read(4)
    return points[0]


def _skip_coding_tools(read: _Bits, reduced_still: int) -> None:
    """Skip the coding-tool flags between the frame size and the colour config."""
    if not reduced_still and read(1):  # frame_id_numbers_present_flag
        read(4), read(3)
    read(3)  # use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if not reduced_still:
        read(4)  # interintra, masked compound, warped motion, dual filter
        order_hint = read(1)
        if order_hint:
            read(2)  # jnt_comp, ref_frame_mvs
        force_screen_content = 2 if read(1) else read(1)
        if force_screen_content and not read(1):  # seq_choose_integer_mv
            read(1)
        if order_hint:
            read(3)
    read(3)  # enable_superres, enable_cdef, enable_restoration


def parse_sequence_header(payload: bytes) -> SequenceHeader:
    """Decode the fields of an AV1 sequence header OBU payload that the AVIF boxes repeat."""
    read = _Bits(payload)
    profile, _still, reduced_still = read(3), read(1), read(1)
    if profile > 2:
        raise BitstreamError(f"AV1 sequence header has reserved profile {profile}")
    level, tier = (read(5), 0) if reduced_still else _read_operating_points(read)
    width_bits, height_bits = read(4) + 1, read(4) + 1
    width, height = read(width_bits) + 1, read(height_bits) + 1
    _skip_coding_tools(read, reduced_still)
    high_bitdepth = read(1)
    twelve_bit = read(1) if profile == 2 and high_bitdepth else 0
    monochrome = read(1) if profile != 1 else 0
    primaries, transfer, matrix = (read(8), read(8), read(8)) if read(1) else (2, 2, 2)
    sub_x = sub_y = 1
    position = 0
    if monochrome:
        full_range = read(1)
    elif (primaries, transfer, matrix) == (1, 13, 0):  # sRGB with identity matrix: 4:4:4 implied
        full_range, sub_x, sub_y = 1, 0, 0
    else:
        full_range = read(1)
        if profile == 1:
            sub_x = sub_y = 0
        elif profile == 2:
            sub_x = read(1) if twelve_bit else 1
            sub_y = read(1) if twelve_bit and sub_x else 0
        if sub_x and sub_y:
            position = read(2)
    read(1 if monochrome else 2)  # separate_uv_delta_q (not when monochrome), film_grain_params
    if read(1) != 1 or any(read(1) for _ in range(-read.pos % 8)):
        raise BitstreamError("AV1 sequence header does not end in its trailing bits: corrupt")
    if read.pos != 8 * len(payload):
        raise BitstreamError("AV1 sequence header has bytes after its trailing bits: corrupt")
    return SequenceHeader(
        profile, level, tier, 8 + 2 * high_bitdepth + 2 * twelve_bit, monochrome, sub_x, sub_y,
        position, primaries, transfer, matrix, full_range, width, height,
    )


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise BitstreamError("AV1 OBU size field is truncated")
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    raise BitstreamError("AV1 OBU size field is longer than 8 bytes")


def _obus(data: bytes) -> list[tuple[int, bytes]]:
    """Split AV1 item data into (obu_type, payload), checking every size against the data."""
    obus, pos = [], 0
    while pos < len(data):
        header = data[pos]
        if header & 0x80 or not header & 0x02:
            raise BitstreamError(
                f"byte {pos} is not an AV1 OBU header with a size field (0x{header:02x})"
            )
        pos += 2 if header & 0x04 else 1  # extension byte
        size, pos = _leb128(data, pos)
        if pos + size > len(data):
            raise BitstreamError(f"AV1 OBU needs {size} bytes, {len(data) - pos} left: truncated")
        obus.append(((header >> 3) & 0x0F, data[pos : pos + size]))
        pos += size
    return obus


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
    obus = _obus(compact)
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
    inside container boxes too; a FullBox's version and flags stay in its body."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise BitstreamError(f"AVIF box header at byte {pos} is truncated")
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            raise BitstreamError(f"AVIF box {kind!r} at byte {pos} has bad size {size}")
        found.setdefault(kind, (pos + 8, pos + size))
        if kind in CONTAINER_BOXES:
            skip = {b"meta": 4, b"iinf": 6}.get(kind, 0)  # FullBox header, iinf entry count
            for inner, span in _boxes(data, pos + 8 + skip, pos + size).items():
                found.setdefault(inner, span)
        pos += size
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
