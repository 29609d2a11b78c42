"""The byte-level structure of JPEG and PNG files that Pillow neither reads nor writes: their metadata
segments (JPEG APPn and COM) and ancillary chunks (PNG), where the image ends, and the EXIF
orientation reset in place.

- ``jpeg_segments`` / ``png_chunks``: the raw segments or chunks of a file, in order, framing included
  (a JPEG segment is ``FF xx`` + length + payload; a PNG chunk length + type + data + CRC), so a list
  of them joined is self-delimiting and is written back as it was read.
- ``with_jpeg_segments`` / ``with_png_chunks``: a file Pillow wrote, with those segments spliced in
  (for JPEG in the original's order, a ``placeholder`` keeping the place of what Pillow writes itself).
- ``image_end``: the offset where a JPEG's EOI or a PNG's IEND ends; bytes after it are not the image.
- ``reset_orientation``: an EXIF block with its orientation tag set to 1, every other byte as it was
  (thumbnail, maker notes and their offsets included, which rewriting the block would break).
"""

from __future__ import annotations

import struct
import zlib

SOI, EOI, SOS = b"\xff\xd8", 0xD9, 0xDA
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXIF_PREFIX = b"Exif\x00\x00"
XMP_SIGNATURE, ICC_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00", b"ICC_PROFILE\x00"
NAMED_SIGNATURES = (EXIF_PREFIX, XMP_SIGNATURE, ICC_SIGNATURE)  # the APP1/APP2 payloads Pillow writes by name
ORIENTATION = 0x0112


def _is_meta(marker: int) -> bool:
    """APP0..APP15 and COM: the segments that describe, rather than code, the image."""
    return 0xE0 <= marker <= 0xEF or marker == 0xFE


def _jpeg_markers(data: bytes):
    """(marker, start, end) of each segment before the first SOS; stops at anything malformed."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        yield marker, pos, pos + 2 + length
        if marker == SOS:
            return
        pos += 2 + length


def jpeg_segments(data: bytes) -> list[bytes]:
    """The APPn and COM segments of a JPEG file before its first scan, in file order."""
    if not data.startswith(SOI):
        return []
    return [data[start:end] for marker, start, end in _jpeg_markers(data) if _is_meta(marker)]


def segment_marker(segment: bytes) -> int:
    return segment[1]


def segment_payload(segment: bytes) -> bytes:
    return segment[4:]


def placeholder(segment: bytes) -> bytes:
    """A segment Pillow writes from ``image_info`` (EXIF, XMP, ICC) reduced to its marker and signature:
    it keeps the place of those segments among the others."""
    payload = segment_payload(segment)
    sig = next(p for p in NAMED_SIGNATURES if payload.startswith(p))
    return segment[:2] + struct.pack(">H", 2 + len(sig)) + sig


def _placeholder_of(segment: bytes) -> bytes | None:
    payload = segment_payload(segment)
    return payload if payload in NAMED_SIGNATURES else None


def with_jpeg_segments(written: bytes, segments: list[bytes]) -> bytes:
    """``written`` (a JPEG Pillow wrote) with its metadata segments replaced by ``segments`` in their
    order, each placeholder standing for what Pillow wrote of that kind (all its ICC chunks for one)."""
    if not segments or not written.startswith(SOI):
        return written
    head_end, own = 2, {}
    for marker, start, end in _jpeg_markers(written):
        if not _is_meta(marker):
            break
        head_end = end
        segment = written[start:end]
        sig = next((p for p in NAMED_SIGNATURES if segment_payload(segment).startswith(p)), None)
        if sig is not None:  # its JFIF header and a comment from the image's info give way to the original's
            own.setdefault(sig, []).append(segment)
    out = []
    for segment in segments:
        sig = _placeholder_of(segment)
        out += own.pop(sig, []) if sig is not None else [segment]
    out += [s for kind in own.values() for s in kind]  # written, but the original had none of it: after the rest
    return SOI + b"".join(out) + written[head_end:]


def _png_walk(data: bytes):
    """(type, start, end) of each chunk; stops at IEND or anything malformed."""
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end


def png_chunks(data: bytes) -> list[bytes]:
    """Every chunk of a PNG file (critical ones included), in order, framing included."""
    if not data.startswith(PNG_SIGNATURE):
        return []
    return [data[s:e] for _, s, e in _png_walk(data)]


def chunk_type(chunk: bytes) -> str:
    return chunk[4:8].decode("latin-1")


def chunk_data(chunk: bytes) -> bytes:
    return chunk[8:-4]


def make_chunk(kind: str, payload: bytes) -> bytes:
    tag = kind.encode("latin-1")
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def with_png_chunks(written: bytes, chunks: list[bytes]) -> bytes:
    """``written`` (a PNG Pillow wrote, without a palette) with ``chunks`` placed after its IHDR: before
    PLTE and IDAT, where every ancillary chunk that has a place is allowed."""
    if not chunks or not written.startswith(PNG_SIGNATURE):
        return written
    ihdr_end = len(PNG_SIGNATURE) + 25  # IHDR is always first and 13 bytes long
    return written[:ihdr_end] + b"".join(chunks) + written[ihdr_end:]


def image_end(data: bytes, fmt: str | None) -> int | None:
    """Where the image of a JPEG or PNG file ends (bytes after it are not the image), or None when
    the format is another or the file does not parse that far."""
    if fmt in ("JPEG", "MPO") and data.startswith(SOI):
        return _jpeg_end(data)
    if fmt == "PNG" and data.startswith(PNG_SIGNATURE):
        last = None
        for kind, _, end in _png_walk(data):
            last = end if kind == b"IEND" else None
        return last
    return None


def _jpeg_end(data: bytes) -> int | None:
    """The end of the EOI marker, walking segments and skipping entropy-coded data (progressive files
    have several scans)."""
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == EOI:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            pos += 2
            continue
        if pos + 4 > len(data):
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        pos += 2 + length
        if marker == SOS:  # entropy-coded data: up to the next marker that is not a stuffed 0 or a restart
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= len(data):
                    return None
                nxt = data[pos + 1]
                if nxt == 0 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    pos += 1 if nxt == 0xFF else 2
                    continue
                break
    return None


def reset_orientation(exif: bytes, value: int = 1) -> bytes:
    """``exif`` (with or without the ``Exif\\0\\0`` prefix) with IFD0's orientation set to ``value`` (1:
    as stored) in place; unchanged when it has none or does not parse."""
    base = len(EXIF_PREFIX) if exif.startswith(EXIF_PREFIX) else 0
    order = exif[base:base + 2]
    if order not in (b"II", b"MM") or len(exif) < base + 8:
        return exif
    e = "<" if order == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", exif[base + 4:base + 8])
    start = base + ifd
    if start + 2 > len(exif):
        return exif
    (count,) = struct.unpack(e + "H", exif[start:start + 2])
    for i in range(count):
        entry = start + 2 + 12 * i
        if entry + 12 > len(exif):
            return exif
        tag, kind, n = struct.unpack(e + "HHI", exif[entry:entry + 8])
        if tag == ORIENTATION and kind == 3 and n == 1:  # SHORT, one value, stored in the entry
            return exif[:entry + 8] + struct.pack(e + "H", value) + exif[entry + 10:]
    return exif


def raw_profile(text: str) -> bytes | None:
    """The bytes of an ImageMagick ``Raw profile type NAME`` PNG text (``\\nNAME\\n  LENGTH\\nHEX...``)."""
    lines = text.split("\n")
    try:
        return bytes.fromhex("".join(lines[3:]))
    except ValueError:
        return None


def as_raw_profile(text: str, data: bytes) -> str:
    """``data`` in the layout of the raw profile ``text`` it came from (its header, 72 hex digits a line)."""
    lines = text.split("\n")
    digits = data.hex()
    return "\n".join(lines[:3]) + "\n" + "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72)) + "\n"
