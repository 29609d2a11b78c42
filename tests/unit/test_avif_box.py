"""AVIF box headers stripped and rebuilt: same pixels always, a fallback when not, junk refused."""

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hostile import av1_resized
from model.codecs.av1_obu import split_obus
from model.codecs.avif_box import (
    TAG_COMPACT,
    TAG_FULL,
    TEMPORAL_DELIMITER,
    compact_or_full,
    expand,
    parse_sequence_header,
    rebuild,
    strip,
)
from model.codecs.avif_size import _item_locations, walk_boxes
from model.format import BitstreamError

KODAK = Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak" / "kodim23.png"
QUALITIES = [0, 10, 30, 60, 100]


def encode(rgb: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    """AVIF at the cdc-avif base layer's settings (speed 6)."""
    buf = io.BytesIO()
    mode = "RGBA" if rgb.shape[-1] == 4 else "RGB"
    Image.fromarray(rgb, mode).save(
        buf, format="AVIF", quality=quality, speed=6, subsampling=subsampling
    )
    return buf.getvalue()


def decode(avif: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(avif)) as img:
        return np.asarray(img)


def photo(height: int, width: int) -> np.ndarray:
    """A crop of a Kodak photograph, or a smooth synthetic scene where ../shared is absent."""
    if KODAK.exists():
        with Image.open(KODAK) as img:
            return np.asarray(img.convert("RGB"))[100 : 100 + height, 200 : 200 + width].copy()
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    scene = np.stack([np.sin(9 * x) + y, np.cos(7 * y * x), x - y], axis=-1)  # each in [-1, 2]
    return ((scene + 1) * 85).astype(np.uint8)


def greyish(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * 1000 + width)
    grey = rng.integers(90, 160, (height, width, 1))
    return np.clip(grey + rng.integers(-4, 5, (height, width, 3)), 0, 255).astype(np.uint8)


def colourful(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(width * 1000 + height)
    return rng.integers(0, 256, (height, width, 3), np.uint8)


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("height,width", [(1, 1), (5, 3), (48, 64), (33, 127)])
@pytest.mark.parametrize("content", [photo, greyish, colourful])
def test_round_trip_gives_the_same_pixels(content, height, width, quality):
    avif = encode(content(height, width), quality)
    packed = compact_or_full(avif, width, height)
    assert packed[0] == TAG_COMPACT
    assert len(packed) < len(avif) - 200  # the boxes are gone
    assert np.array_equal(decode(expand(packed, width, height)), decode(avif))


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
def test_rebuild_is_byte_identical_to_libavif(subsampling):
    # When this fails, Pillow's libavif writes a new layout: compact_or_full still keeps only
    # pixel-identical rebuilds, but every encode pays two decodes to check.
    avif = encode(photo(40, 56), 30, subsampling)
    assert rebuild(strip(avif), 56, 40) == avif


def test_sequence_header_fields_match_the_encode():
    seq = parse_sequence_header(_obus_of(encode(photo(40, 56), 30, "4:4:4"))[0][1])
    assert (seq.width, seq.height, seq.bit_depth) == (56, 40, 8)
    assert (seq.subsampling_x, seq.subsampling_y, seq.monochrome) == (0, 0, 0)
    seq = parse_sequence_header(_obus_of(encode(photo(40, 56), 30, "4:2:0"))[0][1])
    assert (seq.subsampling_x, seq.subsampling_y) == (1, 1)


def _obus_of(avif: bytes):
    return split_obus(strip(avif))


def test_alpha_is_stored_whole():
    rgba = np.dstack([photo(24, 32), np.full((24, 32), 128, np.uint8)])
    avif = encode(rgba, 30)
    packed = compact_or_full(avif, 32, 24)
    assert packed == bytes([TAG_FULL]) + avif
    assert expand(packed, 32, 24) == avif


def test_colour_info_the_av1_data_does_not_carry_forces_the_full_file():
    # A colr box that disagrees with the sequence header (BT.709 matrix instead of BT.601) changes
    # the decoded RGB, which the rebuilt file cannot know: the file must be kept whole.
    avif = encode(colourful(24, 32), 60)
    colr = avif.index(b"colrnclx") + 8
    edited = avif[:colr] + struct.pack(">HHH", 1, 13, 1) + avif[colr + 6 :]
    assert not np.array_equal(decode(edited), decode(avif))
    assert compact_or_full(edited, 32, 24)[0] == TAG_FULL


def test_a_different_box_layout_with_the_same_pixels_is_still_compacted():
    # the same file with one more compatible brand in ftyp (and the item offset moved to match):
    # not byte-identical to the rebuild, but the pixel check accepts it
    avif = encode(photo(24, 32), 30)
    extent_offset = avif.index(b"iloc") + 18
    offset = struct.unpack_from(">I", avif, extent_offset)[0]
    moved = avif[:extent_offset] + struct.pack(">I", offset + 4) + avif[extent_offset + 4 :]
    ftyp_size = struct.unpack_from(">I", avif)[0]
    other = struct.pack(">I", ftyp_size + 4) + moved[4:ftyp_size] + b"avio" + moved[ftyp_size:]
    assert np.array_equal(decode(other), decode(avif))
    assert rebuild(strip(other), 32, 24) != other
    packed = compact_or_full(other, 32, 24)
    assert packed[0] == TAG_COMPACT
    assert np.array_equal(decode(expand(packed, 32, 24)), decode(avif))


def test_every_truncation_of_the_compact_form_is_refused():
    packed = compact_or_full(encode(photo(24, 32), 30), 32, 24)
    for cut in range(1, len(packed)):
        with pytest.raises(BitstreamError):
            expand(packed[:cut], 32, 24)


def test_wrong_size_is_refused():
    packed = compact_or_full(encode(photo(24, 32), 30), 32, 24)
    with pytest.raises(BitstreamError, match="32x24.*container says 33x24"):
        expand(packed, 33, 24)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"\x07abc", "unknown AVIF base layer tag 7"),
        (bytes([TAG_FULL]) + b"not an avif file", "ftyp"),
        (bytes([TAG_COMPACT]) + b"\x80junk", "OBU header"),
        (bytes([TAG_COMPACT]) + b"\x32\x01\x00", "sequence header"),
        (bytes([TAG_COMPACT]) + b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x01", "longer than 8 bytes"),
        (bytes([TAG_COMPACT]) + b"\x0a\x02\xff\xff", "truncated|reserved profile"),
    ],
)
def test_garbage_is_refused_with_a_reason(data, match):
    with pytest.raises(BitstreamError, match=match):
        expand(data, 32, 24)


def test_random_garbage_never_crashes_or_hangs():
    rng = np.random.default_rng(7)
    for _ in range(300):
        junk = rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes()
        junk = bytes([TAG_COMPACT]) + junk
        with pytest.raises(BitstreamError):
            expand(junk, 32, 24)


def test_strip_refuses_what_is_not_an_avif():
    with pytest.raises(BitstreamError, match="box"):
        strip(b"\x00\x00\x00\x10ftypavif\x00\x00\x00\x00")
    assert compact_or_full(b"garbage", 4, 4) == bytes([TAG_FULL]) + b"garbage"


# ----- the AV1 image's own size against the container's, before any decoder sees it -------------
GIANT = 30000  # 900 MP


def test_a_giant_av1_image_behind_a_small_header_is_refused_before_decoding():
    compact = strip(encode(photo(24, 32), 30))
    giant = av1_resized(compact, GIANT, GIANT)
    assert split_obus(giant)[1:] == split_obus(compact)[1:]  # only the sequence header changed
    seq = parse_sequence_header(split_obus(giant)[0][1])
    assert (seq.width, seq.height) == (GIANT, GIANT)
    with pytest.raises(BitstreamError, match=f"says {GIANT}x{GIANT}, container says 32x24"):
        expand(bytes([TAG_COMPACT]) + giant, 32, 24)
    with pytest.raises(BitstreamError, match=f"says 32x24, container says {GIANT}x{GIANT}"):
        expand(bytes([TAG_COMPACT]) + compact, GIANT, GIANT)  # the reverse


def test_a_stored_avif_file_declaring_another_size_is_refused_before_decoding():
    avif = encode(photo(24, 32), 30)
    assert expand(bytes([TAG_FULL]) + avif, 32, 24) == avif  # honest: accepted
    with pytest.raises(BitstreamError, match="ispe box says 32x24, container says 48x24"):
        expand(bytes([TAG_FULL]) + avif, 48, 24)
    # a file that is all giant (ispe and AV1) behind a small header
    giant_file = rebuild(av1_resized(strip(avif), GIANT, GIANT), GIANT, GIANT)
    with pytest.raises(BitstreamError, match=f"ispe box says {GIANT}x{GIANT}, container says 32x24"):
        expand(bytes([TAG_FULL]) + giant_file, 32, 24)
    # an honest ispe in front of a giant AV1 item: the sequence header is read from the item data
    item = avif.index(strip(avif))
    hidden = avif[:item] + av1_resized(strip(avif), GIANT, GIANT)
    hidden = _with_item_length(hidden, len(hidden) - item + len(TEMPORAL_DELIMITER))
    with pytest.raises(BitstreamError, match=f"AV1 sequence header says {GIANT}x{GIANT}, container says 32x24"):
        expand(bytes([TAG_FULL]) + hidden, 32, 24)


def _with_item_length(avif: bytes, length: int) -> bytes:
    """The file with its one iloc extent and its mdat box resized to ``length`` bytes of item data."""
    extent_length = avif.index(b"iloc") + 22
    mdat = avif.index(b"mdat") - 4
    avif = avif[:extent_length] + struct.pack(">I", length) + avif[extent_length + 4 :]
    return avif[:mdat] + struct.pack(">I", 8 + length) + avif[mdat + 4 :]


def test_a_stored_avif_file_with_alpha_checks_both_items():
    rgba = np.dstack([photo(24, 32), np.full((24, 32), 128, np.uint8)])
    avif = encode(rgba, 30)
    boxes = list(walk_boxes(avif, 0, len(avif)))
    assert sum(kind == b"infe" for kind, _, _ in boxes) == 2  # colour and alpha, both av01
    assert expand(bytes([TAG_FULL]) + avif, 32, 24) == avif
    with pytest.raises(BitstreamError, match="container says 32x25"):
        expand(bytes([TAG_FULL]) + avif, 32, 25)
    # the ispe box is shared: only the alpha item's own sequence header can tell its size
    (body, end), = [(body, end) for kind, body, end in boxes if kind == b"iloc"]
    (offset, length), = _item_locations(avif, body, end)[2][1]  # item 2: the alpha plane
    alpha = avif[offset : offset + length]
    assert alpha.startswith(TEMPORAL_DELIMITER)
    taller = TEMPORAL_DELIMITER + av1_resized(alpha[len(TEMPORAL_DELIMITER) :], 32, 25)
    assert len(taller) == length  # the same size fields' widths: no offsets move
    with pytest.raises(BitstreamError, match="AV1 sequence header says 32x25, container says 32x24"):
        expand(bytes([TAG_FULL]) + avif[:offset] + taller + avif[offset + length :], 32, 24)


@pytest.mark.parametrize("cut", [40, 200, -30, -1])
def test_a_truncated_stored_avif_file_is_refused_with_a_reason(cut):
    avif = encode(photo(24, 32), 30)
    with pytest.raises(BitstreamError, match="truncated|bad size|reaches past"):
        expand(bytes([TAG_FULL]) + avif[:cut], 32, 24)
