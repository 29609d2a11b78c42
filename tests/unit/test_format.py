"""The container format: round trip, and every kind of damage refused with a reason."""

import pytest

from model.format import BitstreamError, Container, bits_per_pixel, pack, unpack

SAMPLE = Container("cdc-s-q2@0123abcd", 512, 768, "RGB", (b"z" * 17, bytes(range(256)) * 3))


def test_round_trip():
    assert unpack(pack(SAMPLE)) == SAMPLE


def test_bpp_is_the_whole_container():
    data = pack(SAMPLE)
    assert bits_per_pixel(data, 512, 768) == len(data) * 8 / (512 * 768)


@pytest.mark.parametrize("pos", [0, 3, 4, 5, 10, 30, 40, 100, 500, -5, -1])
def test_every_flipped_byte_is_detected(pos):
    data = bytearray(pack(SAMPLE))
    data[pos] ^= 0x01
    with pytest.raises(BitstreamError):
        unpack(bytes(data))


def test_all_single_byte_changes_detected():
    data = pack(SAMPLE)
    for pos in range(0, len(data), 7):
        bad = bytearray(data)
        bad[pos] = (bad[pos] + 0x5A) % 256
        with pytest.raises(BitstreamError):
            unpack(bytes(bad))


@pytest.mark.parametrize("cut", [0, 3, 8, 20, 60, 1])
def test_truncation_is_detected(cut):
    data = pack(SAMPLE)
    with pytest.raises(BitstreamError, match="truncated|checksum"):
        unpack(data[: len(data) - cut] if cut else b"")


def test_wrong_magic_named():
    with pytest.raises(BitstreamError, match="not a diffarc bitstream"):
        unpack(b"\x89PNG\r\n\x1a\n" + bytes(40))
