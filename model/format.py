"""The diffarc container: the one place that knows how a compressed image is laid out in bytes.

Layout (all integers big-endian), version 1::

    magic        4 bytes   b"DARC"
    version      u8        1
    codec_id     u8 length + UTF-8    e.g. "cdc-s-q2@3f9a1c07" (registry name @ weights hash)
    height       u32       original height in pixels
    width        u32       original width in pixels
    mode         u8 length + ASCII    Pillow mode of the original (decode restores grey)
    n_strings    u8        number of payload strings (z and y for neural codecs; 1 for Pillow)
    strings      n x (u32 length + bytes)
    crc32        u32       over every byte before it

bpp is always ``len(container) * 8 / (height * width)``: the header counts against the codec.
A CRC-32 detects every single-byte change and every burst of up to 32 bits, which is the damage
archives actually see (truncation, flipped bits); it is not a defence against tampering.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .weights import split_codec_id

MAGIC = b"DARC"
VERSION = 1
MAX_SIDE = 1 << 20  # sanity bound on decoded dimensions, far above any real photograph


class BitstreamError(ValueError):
    """A bitstream that cannot be decoded; the message names what is wrong."""


@dataclass(frozen=True)
class Container:
    codec_id: str
    height: int
    width: int
    mode: str
    strings: tuple[bytes, ...]

    @property
    def codec_name(self) -> str:
        return split_codec_id(self.codec_id)[0]


def pack(container: Container) -> bytes:
    """Serialise a container; the inverse of ``unpack``."""
    codec_id = container.codec_id.encode("utf-8")
    mode = container.mode.encode("ascii")
    if len(codec_id) > 255 or len(mode) > 255 or len(container.strings) > 255:
        raise ValueError("codec id, mode and string count must each fit in one byte")
    parts = [
        MAGIC,
        struct.pack(">BB", VERSION, len(codec_id)),
        codec_id,
        struct.pack(">IIB", container.height, container.width, len(mode)),
        mode,
        struct.pack(">B", len(container.strings)),
    ]
    for s in container.strings:
        parts += [struct.pack(">I", len(s)), bytes(s)]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(
                f"truncated bitstream: {what} needs {n} bytes at offset {self.pos}, "
                f"only {len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]


def unpack(data: bytes) -> Container:
    """Parse and validate a container; raises ``BitstreamError`` naming the problem."""
    data = bytes(data)
    if len(data) < len(MAGIC) + 4:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes is shorter than any header")
    if data[:4] != MAGIC:
        raise BitstreamError(f"not a diffarc bitstream: magic is {data[:4]!r}, expected {MAGIC!r}")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError(
            "checksum mismatch: the bitstream is corrupt or truncated "
            f"({len(data)} bytes, stored crc32 {crc:08x}, computed {zlib.crc32(body):08x})"
        )
    r = _Reader(body)
    r.take(4, "magic")
    version = r.u(">B", "version")
    if version != VERSION:
        raise BitstreamError(f"unsupported format version {version} (this build reads {VERSION})")
    try:
        codec_id = r.take(r.u(">B", "codec id length"), "codec id").decode("utf-8")
        height = r.u(">I", "height")
        width = r.u(">I", "width")
        mode = r.take(r.u(">B", "mode length"), "mode").decode("ascii")
    except UnicodeDecodeError as exc:
        raise BitstreamError(f"malformed header text: {exc}") from None
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise BitstreamError(f"implausible image size {width}x{height} in header")
    n = r.u(">B", "string count")
    strings = tuple(r.take(r.u(">I", f"string {i} length"), f"string {i}") for i in range(n))
    if r.pos != len(body):
        raise BitstreamError(f"{len(body) - r.pos} unexpected trailing bytes before the checksum")
    return Container(codec_id, height, width, mode, strings)


def bits_per_pixel(data: bytes, height: int, width: int) -> float:
    """Real bpp: the whole container's size over the original pixel count."""
    return len(data) * 8.0 / (height * width)
