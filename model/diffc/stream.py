"""A DiffC bitstream: the container's strings are the header, the base layer (DiffC over AVIF only)
and one string per coded step, so every prefix of steps is a valid, coarser bitstream.

Header (strings[0], integers big-endian)::

    magic        3 bytes  b"DFC"
    version      u8       2: step payloads in RCC payload format 2 (model/rcc/ans.py, constriction);
                          1: format 1 (model/rcc/coding.py, big-integer rANS; written before issue 33)
    fixed        u8       strings before the first step: 1 (header) or 2 (header, AVIF base)
    cap_bits     u8       RCC: 2^cap_bits candidates per chunk
    chunk_bits   u8       RCC: target KL per chunk, in quarter bits
    max_chunk    u8       RCC: chunks above this are halved, in quarter bits
    check_bits   u8       RCC: integrity bits per step payload
    levels       u8       S, the steps the schedule has (a bitstream holds 0..S of them)
    schedule     (S + 1) x u16   training steps N = n_0 > n_1 > ... > n_S

Truncation (``truncate``) drops trailing step strings and needs no weights: ``python -m model
truncate`` and the decode options ``truncate_step`` / ``truncate_bpp`` both use it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..format import BitstreamError, Container, pack, unpack

if TYPE_CHECKING:  # model.rcc imports torch, which truncation does not need
    from ..rcc import RCCConfig

MAGIC, VERSIONS = b"DFC", (1, 2)  # the version is the RCC payload format of the steps
_FIXED = struct.Struct(">3sBBBBBBB")


@dataclass(frozen=True)
class Header:
    fixed: int  # strings before the first step
    rcc: RCCConfig
    schedule: tuple[int, ...]  # N, n_1, ..., n_S

    @property
    def levels(self) -> int:
        return len(self.schedule) - 1

    def pack(self) -> bytes:
        r = self.rcc
        return (_FIXED.pack(MAGIC, r.payload_format, self.fixed, r.cap_bits, round(r.chunk_bits * 4),
                            round(r.max_chunk_bits * 4), r.check_bits, self.levels)
                + struct.pack(f">{len(self.schedule)}H", *self.schedule))


def read_header(data: bytes, owner: str = "diffc") -> Header:
    if len(data) < _FIXED.size or data[:3] != MAGIC:
        raise BitstreamError(f"{owner}: not a DiffC bitstream (its first string is not a DiffC header)")
    magic, version, fixed, cap, chunk_q, max_q, check, levels = _FIXED.unpack_from(data)
    if version not in VERSIONS:
        raise BitstreamError(f"{owner}: DiffC header version {version}, this build reads versions "
                             f"{', '.join(map(str, VERSIONS))}: it was written by a newer diffarc, or is corrupt")
    if len(data) != _FIXED.size + 2 * (levels + 1):
        raise BitstreamError(f"{owner}: DiffC header of {len(data)} bytes does not hold {levels} levels")
    schedule = struct.unpack_from(f">{levels + 1}H", data, _FIXED.size)
    if fixed not in (1, 2) or any(a <= b for a, b in zip(schedule, schedule[1:])) or schedule[-1] < 1:
        raise BitstreamError(f"{owner}: DiffC header is malformed (fixed strings {fixed}, schedule {schedule})")
    from ..rcc import RCCConfig  # torch: only once a header is read

    try:
        rcc = RCCConfig(chunk_bits=chunk_q / 4, max_chunk_bits=max_q / 4, cap_bits=cap, check_bits=check,
                        payload_format=version)
    except ValueError as exc:
        raise BitstreamError(f"{owner}: DiffC header has an invalid RCC config: {exc}") from None
    return Header(fixed, rcc, schedule)


def split(c: Container, owner: str = "diffc") -> tuple[Header, tuple[bytes, ...], tuple[bytes, ...]]:
    """(header, the strings before the steps, the step payloads) of a DiffC container."""
    if not c.strings:
        raise BitstreamError(f"{owner}: the bitstream holds no strings")
    header = read_header(c.strings[0], owner)
    steps = c.strings[header.fixed:]
    if len(c.strings) < header.fixed or len(steps) > header.levels:
        raise BitstreamError(f"{owner}: {len(c.strings)} strings do not fit a DiffC bitstream of "
                             f"{header.fixed} fixed strings and at most {header.levels} steps")
    return header, c.strings[:header.fixed], steps


def truncated(c: Container, step: int | None = None, bpp: float | None = None) -> Container:
    """The container with its first ``step`` steps only, or the most steps within ``bpp`` (at least
    none: the header and base alone are the floor); both given: the smaller."""
    header, fixed, steps = split(c)
    if step is not None and step < 0:
        raise ValueError(f"truncation step must be >= 0, got {step}")
    keep = len(steps) if step is None else min(step, len(steps))
    if bpp is not None:
        budget_bytes = bpp * c.height * c.width / 8
        while keep > 0 and len(pack(_with_strings(c, fixed + steps[:keep]))) > budget_bytes:
            keep -= 1
    return _with_strings(c, fixed + steps[:keep])


def _with_strings(c: Container, strings: tuple[bytes, ...]) -> Container:
    return Container(c.codec_id, c.height, c.width, c.mode, strings)


def truncate(blob: bytes, step: int | None = None, bpp: float | None = None) -> bytes:
    """A shorter valid bitstream (see ``truncated``); raises BitstreamError for non-DiffC input."""
    c = unpack(blob)
    if not c.codec_name.startswith("diffc"):
        raise BitstreamError(f"only DiffC bitstreams are progressive; this one is '{c.codec_id}'")
    return pack(truncated(c, step, bpp))
