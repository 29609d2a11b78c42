"""AV1 OBUs and the sequence header, read without decoding (AV1 spec 5.3, 5.5).

The AVIF base layer needs the sequence header twice: ``avif_box`` rebuilds the AVIF boxes from its
fields, and ``avif_size`` compares the image size it declares with the container's before any
decoder allocates for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..format import BitstreamError

OBU_SEQUENCE_HEADER = 1


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


def split_obus(data: bytes) -> list[tuple[int, bytes]]:
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
