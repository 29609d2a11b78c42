"""A corpus of hostile bitstreams, each with a valid CRC (``pack`` computes it): what a dishonest or
broken writer can put in an archive, for every codec family we ship. Each comes with a phrase its
error row must contain."""

from __future__ import annotations

import numpy as np

from model.codecs.av1_obu import _Bits, _read_operating_points
from model.codecs.avif_box import TAG_FULL, rebuild
from model.format import Container, pack, unpack

GIANT = 30000  # 900 MP: over any pixel cap


def _edit(blob: bytes, **changes) -> bytes:
    c = unpack(blob)
    fields = {"codec_id": c.codec_id, "height": c.height, "width": c.width, "mode": c.mode, "strings": c.strings}
    return pack(Container(**{**fields, **changes}))


def av1_resized(compact: bytes, width: int, height: int) -> bytes:
    """Compact AV1 item data (sequence header OBU first) whose sequence header declares
    ``width`` x ``height``; the frame OBU is left as it was."""
    assert compact[0] == 0x0A and compact[1] < 0x80, "a sequence header OBU with a one-byte size first"
    payload, frame = compact[2 : 2 + compact[1]], compact[2 + compact[1] :]
    read = _Bits(payload)
    _profile, _still, reduced_still = read(3), read(1), read(1)
    read(5) if reduced_still else _read_operating_points(read)
    size_start = read.pos
    width_bits, height_bits = read(4) + 1, read(4) + 1
    read(width_bits), read(height_bits)
    bits = "".join(f"{b:08b}" for b in payload)
    new_w, new_h = max(1, (width - 1).bit_length()), max(1, (height - 1).bit_length())
    edited = (bits[:size_start] + f"{new_w - 1:04b}{new_h - 1:04b}" + f"{width - 1:0{new_w}b}"
              + f"{height - 1:0{new_h}b}" + bits[read.pos :].rstrip("0"))  # ends in the trailing one bit
    edited += "0" * (-len(edited) % 8)
    header = int(edited, 2).to_bytes(len(edited) // 8, "big")
    return bytes([0x0A, len(header)]) + header + frame


def _random_like(strings: tuple[bytes, ...], seed: int) -> tuple[bytes, ...]:
    rng = np.random.default_rng(seed)
    return tuple(bytes(rng.integers(0, 256, len(s), dtype=np.uint8)) for s in strings)


def hostile_corpus(hp: bytes, cdc: bytes, webp: bytes, jpeg: bytes, avif: bytes) -> dict[str, tuple[str, bytes, str]]:
    """name -> (codec id the row claims, bitstream, phrase of the expected error), from one honest
    64x48 bitstream of each codec."""
    h, c = unpack(hp), unpack(cdc)
    small_webp = _edit(webp, height=16, width=16)
    y_cut = c.strings[1][: len(c.strings[1]) // 8 * 4]
    return {
        "hp-header-4096": (h.codec_id, _edit(hp, height=4096, width=4096), "too short for the image size"),
        "hp-header-doubled": (h.codec_id, _edit(hp, height=128, width=128), "too short for the image size"),
        "hp-empty-strings": (h.codec_id, _edit(hp, strings=(b"", b"")), "cannot be an rANS stream"),
        "hp-z-cut": (h.codec_id, _edit(hp, strings=(h.strings[0][:8], h.strings[1])),
                     "z string of 8 bytes is too short"),
        "hp-random-payload": (h.codec_id, _edit(hp, strings=_random_like(h.strings, 1)), "string ends early"),
        "hp-wrong-weights": (h.codec_id, _edit(hp, codec_id=h.codec_name + "@00000000"), "was written by codec"),
        "cdc-header-30000": (c.codec_id, _edit(cdc, height=GIANT, width=GIANT), "over the decode cap"),
        "cdc-y-cut": (c.codec_id, _edit(cdc, strings=(c.strings[0], y_cut)),
                      f"y string of {len(y_cut)} bytes is too short"),
        "cdc-random-payload": (c.codec_id, _edit(cdc, strings=_random_like(c.strings, 2)), "string ends early"),
        "cdc-three-strings": (c.codec_id, _edit(cdc, strings=(*c.strings, b"1234")), "must hold 2 strings"),
        "cdc-strings-as-hp": (h.codec_id, _edit(cdc, codec_id=h.codec_id), "string ends early"),
        "webp-header-vs-payload": ("webp-q80", small_webp, "header says 16x16"),
        "jpeg-random-payload": ("jpeg-q80", _edit(jpeg, strings=_random_like(unpack(jpeg).strings, 3)),
                                "payload does not decode"),
        "avif-header-30000": ("avif-q60", _edit(avif, height=GIANT, width=GIANT), "over the decode cap"),
        "unknown-codec": ("nosuch-q1", _edit(webp, codec_id="nosuch-q1"), "refused: no weights for codec 'nosuch-q1'"),
    }


def new_family_corpus(cdc_avif: bytes, diffc_avif: bytes, diffc: bytes) -> dict[str, tuple[str, bytes, str]]:
    """As ``hostile_corpus``, for cdc-avif and the two DiffC families (one honest 64x48 bitstream of
    each; the DiffC ones with at least two coded steps)."""
    a, da, d = unpack(cdc_avif), unpack(diffc_avif), unpack(diffc)
    base = a.strings[0]  # quality byte, avif_box tag, AVIF data
    giant_av1 = av1_resized(base[2:], GIANT, GIANT)
    giant_file = rebuild(giant_av1, GIANT, GIANT)

    def garbage(data: bytes, seed: int, keep: int = 0) -> bytes:
        return data[:keep] + _random_like((data[keep:],), seed)[0]

    def cut(step: bytes) -> bytes:
        return step[: len(step) // 2]  # mid-chunk: chunks are a few bits each

    return {
        "cdc-avif-quality-200": (a.codec_id, _edit(cdc_avif, strings=(bytes([200]) + base[1:],)), "quality byte 200"),
        "cdc-avif-avif-cut": (a.codec_id, _edit(cdc_avif, strings=(cut(base),)), "AVIF base does not decode"),
        "cdc-avif-avif-garbage": (a.codec_id, _edit(cdc_avif, strings=(garbage(base, 4, keep=2),)),
                                  "AVIF base does not decode"),
        "cdc-avif-av1-30000": (a.codec_id, _edit(cdc_avif, strings=(base[:2] + giant_av1,)),
                               f"AV1 sequence header says {GIANT}x{GIANT}, container says 64x48"),
        "cdc-avif-file-30000": (a.codec_id, _edit(cdc_avif, strings=(bytes([base[0], TAG_FULL]) + giant_file,)),
                                f"ispe box says {GIANT}x{GIANT}, container says 64x48"),
        "cdc-avif-two-strings": (a.codec_id, _edit(cdc_avif, strings=(base, base)), "must hold one string"),
        "cdc-avif-wrong-weights": (a.codec_id, _edit(cdc_avif, codec_id=a.codec_name + "@00000000"),
                                   "was written by codec"),
        "diffc-avif-header-rcc": (da.codec_id, _edit(diffc_avif, strings=(_header_byte(da.strings[0], 5, 0),
                                                                           *da.strings[1:])), "invalid RCC config"),
        "diffc-avif-header-levels": (da.codec_id, _edit(diffc_avif, strings=(_header_byte(da.strings[0], 9, 200),
                                                                              *da.strings[1:])), "does not hold 200 levels"),
        "diffc-avif-base-garbage": (da.codec_id, _edit(diffc_avif, strings=(da.strings[0], garbage(da.strings[1], 5, keep=2),
                                                                             *da.strings[2:])), "AVIF base does not decode"),
        "diffc-avif-steps-garbage": (da.codec_id, _edit(diffc_avif, strings=(*da.strings[:2],
                                                                              *_random_like(da.strings[2:], 6))),
                                     "a coded step does not decode"),
        "diffc-avif-step-cut": (da.codec_id, _edit(diffc_avif, strings=(*da.strings[:-1], cut(da.strings[-1]))),
                                "a coded step does not decode"),
        "diffc-avif-as-cdc-avif": (a.codec_id, _edit(diffc_avif, codec_id=a.codec_id), "must hold one string"),
        "diffc-header-garbage": (d.codec_id, _edit(diffc, strings=(garbage(d.strings[0], 7), *d.strings[1:])),
                                 "not a DiffC bitstream"),
        "diffc-step-cut": (d.codec_id, _edit(diffc, strings=(*d.strings[:2], cut(d.strings[2]))),
                           "a coded step does not decode"),
        "diffc-extra-steps": (d.codec_id, _edit(diffc, strings=d.strings + d.strings[1:]), "do not fit"),
        "diffc-as-diffc-avif": (da.codec_id, _edit(diffc, codec_id=da.codec_id), "lacks a base layer"),
    }


def _header_byte(header: bytes, index: int, value: int) -> bytes:
    """A DiffC header with one byte changed (model/diffc/stream.py: byte 5 cap_bits, 9 levels)."""
    return header[:index] + bytes([value]) + header[index + 1 :]
