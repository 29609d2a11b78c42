"""The image size a whole AVIF file declares, read without decoding it.

A stored AVIF file (avif_box tag 0) is checked before Pillow sees it: every ``ispe`` box and the
AV1 sequence header of every ``av01`` item (and of ``av1C``) must give the container's size, so a
small container header cannot front a giant AV1 image, nor the reverse, and the codec's pixel cap
(checked on the container header) bounds what the decoder allocates.
"""

from __future__ import annotations

import struct

from .av1_obu import OBU_SEQUENCE_HEADER, parse_sequence_header, split_obus
from ..format import BitstreamError

CONTAINER_BOXES = {b"meta", b"iprp", b"ipco", b"iinf"}  # boxes whose children we walk
MAX_BOX_DEPTH = 4  # meta > iprp > ipco > property in libavif's files; deeper is hostile
ILOC_FIELD_SIZES = (0, 4, 8)  # bytes of an iloc offset, length, base offset or index


def walk_boxes(data: bytes, start: int, end: int, depth: int = 0):
    """(kind, body start, end) of every box in data[start:end], each container box followed by
    its children; a FullBox's version and flags stay in its body."""
    if depth > MAX_BOX_DEPTH:
        raise BitstreamError(f"AVIF boxes nest deeper than {MAX_BOX_DEPTH} levels: corrupt")
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise BitstreamError(f"AVIF box header at byte {pos} is truncated")
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            raise BitstreamError(f"AVIF box {kind!r} at byte {pos} has bad size {size}")
        yield kind, pos + 8, pos + size
        if kind in CONTAINER_BOXES:
            skip = {b"meta": 4, b"iinf": 6}.get(kind, 0)  # FullBox header, iinf entry count
            yield from walk_boxes(data, pos + 8 + skip, pos + size, depth + 1)
        pos += size


def check_declared_size(avif: bytes, width: int, height: int) -> None:
    """Raise BitstreamError unless every size the file declares is ``width`` x ``height``."""
    boxes = list(walk_boxes(avif, 0, len(avif)))
    declared = [("ispe box", _ispe(avif, body, end)) for kind, body, end in boxes if kind == b"ispe"]
    if not declared:
        raise BitstreamError("stored AVIF file has no ispe box (image size): not an AVIF image")
    av1_data = [avif[body + 4 : end] for kind, body, end in boxes if kind == b"av1C"]  # its config OBUs
    locations = {}
    for kind, body, end in boxes:
        if kind == b"iloc":
            locations.update(_item_locations(avif, body, end))
    for item_id in _av1_items(avif, boxes):
        av1_data.append(_item_data(avif, item_id, locations))
    sequence_sizes = [("AV1 sequence header", _sequence_size(payload)) for data in av1_data
                      for obu_type, payload in split_obus(data) if obu_type == OBU_SEQUENCE_HEADER]
    if not sequence_sizes:
        raise BitstreamError("stored AVIF file has no AV1 sequence header: not an AV1 image")
    for what, size in declared + sequence_sizes:
        if size != (width, height):
            raise BitstreamError(f"stored AVIF file's {what} says {size[0]}x{size[1]}, container says "
                                 f"{width}x{height}: edited or hostile, refused before decoding")


def _ispe(avif: bytes, body: int, end: int) -> tuple[int, int]:
    if end - body < 12:
        raise BitstreamError("AVIF ispe box is truncated")
    return struct.unpack_from(">II", avif, body + 4)


def _sequence_size(payload: bytes) -> tuple[int, int]:
    seq = parse_sequence_header(payload)
    return seq.width, seq.height


def _av1_items(avif: bytes, boxes) -> list[int]:
    """Ids of the items whose infe (version 2 or 3) says av01."""
    ids = []
    for kind, body, end in boxes:
        if kind == b"infe" and end - body >= 8 and avif[body] in (2, 3):
            id_size = 2 if avif[body] == 2 else 4
            item_id, pos = _uint(avif, body + 4, id_size, end)
            if avif[pos + 2 : pos + 6] == b"av01":  # after the protection index
                ids.append(item_id)
    return ids


def _item_data(avif: bytes, item_id: int, locations: dict) -> bytes:
    if item_id not in locations:
        raise BitstreamError(f"AVIF item {item_id} has no iloc entry: corrupt")
    method, extents = locations[item_id]
    if method != 0:
        raise BitstreamError(f"AVIF item {item_id} is not stored in the file's data (iloc construction "
                             f"method {method}): not a layout we write")
    if any(offset + length > len(avif) for offset, length in extents):
        raise BitstreamError(f"AVIF item {item_id} reaches past the end of the file: truncated")
    return b"".join(avif[offset : offset + length] for offset, length in extents)


def _item_locations(avif: bytes, body: int, end: int) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """item id -> (construction method, [(file offset, length)]) from an iloc box of version 0..2."""
    version = avif[body] if body < end else 255
    if version > 2:
        raise BitstreamError(f"AVIF iloc box version {version} is not 0..2")
    sizes, pos = _uint(avif, body + 4, 2, end)
    offset_size, length_size, base_size = sizes >> 12, sizes >> 8 & 15, sizes >> 4 & 15
    index_size = sizes & 15 if version else 0
    if any(n not in ILOC_FIELD_SIZES for n in (offset_size, length_size, base_size, index_size)):
        raise BitstreamError(f"AVIF iloc box has field sizes 0x{sizes:04x}, not 0, 4 or 8 bytes")
    id_size = 4 if version == 2 else 2
    count, pos = _uint(avif, pos, id_size, end)
    items = {}
    for _ in range(count):
        item_id, pos = _uint(avif, pos, id_size, end)
        method, pos = _uint(avif, pos, 2 if version else 0, end)
        _, pos = _uint(avif, pos, 2, end)  # data reference index
        base, pos = _uint(avif, pos, base_size, end)
        n_extents, pos = _uint(avif, pos, 2, end)
        extents = []
        for _ in range(n_extents):
            _, pos = _uint(avif, pos, index_size, end)
            offset, pos = _uint(avif, pos, offset_size, end)
            length, pos = _uint(avif, pos, length_size, end)
            extents.append((base + offset, length))
        items[item_id] = (method & 15, extents)
    return items


def _uint(data: bytes, pos: int, size: int, end: int) -> tuple[int, int]:
    """A big-endian unsigned int of ``size`` bytes at ``pos`` (0 bytes: 0), and the position after it."""
    if pos + size > end:
        raise BitstreamError("AVIF box is truncated inside a field")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size
