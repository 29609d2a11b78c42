"""The RCC payload coder, format 1: one exact rANS stream over a Python big integer.

DiffC bitstreams of version 1 hold these payloads; new ones hold format 2's (``ans``: the same
symbols through constriction, constant time per symbol). This coder stays to read (and, asked for,
write) version 1.

A ``PayloadWriter`` records what the RCC encoder says (counts, split flags, chunk indices) and
renders it; a ``PayloadReader`` hears it back in the same order. The stream starts with one mode
bit: chunk indices are either adaptive (below) or fixed-length cap_bits, whichever is shorter for
this payload. Symbols:

    count    n in 1..limit: n.bit_length() uniform over 1..limit.bit_length(), then its lower bits
    flag     a bit under adaptive Krichevsky-Trofimov counts (start 1, +2 per use)
    index    i in [0, 2^cap_bits): adaptive: e = i.bit_length() under adaptive counts over
             0..cap_bits, then the e-1 bits of i below its leading 1; fixed: cap_bits raw bits

PFR indices spread roughly evenly over the exponents 1..K+4 for a chunk of K bits, so this costs
within ~0.1 bit of their entropy. The decoder must finish on the encoder's start state
x0 = 2^check_bits + pattern, so a corrupt, truncated or mis-configured payload fails with
probability 1 - 2^-check_bits (the container's CRC is the real integrity check). A big integer
needs no renormalisation and no frequency quantisation, so the coder is exact. The encoder pushes
the symbols by halves (``_push``: 0.65 s for 1.5e5 symbols, a 160 kbit state, against 12 s one by
one); the decoder pops them one at a time, each costing O(payload bits): ~0.1 s for 1e4 chunks,
seconds for DiffC steps of 1e5 bits.
"""

from __future__ import annotations

import math
from itertools import accumulate

import numpy as np

FORMAT = 1
_CHECK_PATTERN = 0xA5C3_5A3C_96E1_B4D2


class RCCError(ValueError):
    """An RCC payload that cannot be decoded; the message says what is wrong."""


def check_value(check_bits: int) -> int:
    """The start state of format 1, the last symbol of format 2: a 1, then check_bits bits of a pattern."""
    return (1 << check_bits) | (_CHECK_PATTERN & ((1 << check_bits) - 1))


def header_bits(n: int, dims: int, check_bits: int) -> float:
    """Bits a payload of n base chunks spends on the mode, the count and the check, before split
    flags, indices and the <= 7 bits that round it to whole bytes."""
    return 1 + math.log2(dims.bit_length()) + n.bit_length() - 1 + check_bits


def max_payload_bits(dims: int, cap_bits: int, check_bits: int) -> int:
    """A bound on any payload for ``dims`` dimensions (at most dims chunks and 2 dims flags)."""
    worst_symbol = (cap_bits + 1 + 4 * dims).bit_length()  # the rarest adaptive symbol's bits
    return 8 + 2 * dims.bit_length() + dims * (cap_bits + 3 * worst_symbol) + check_bits


class _Adaptive:
    """Counts over symbols 0..size-1: start 1, +2 per use (Krichevsky-Trofimov)."""

    def __init__(self, size: int):
        self.counts = [1] * size

    def encode(self, s: int) -> tuple[int, int, int]:
        interval = (sum(self.counts[:s]), self.counts[s], sum(self.counts))
        self.counts[s] += 2
        return interval

    def decode(self, x: int) -> tuple[int, int]:
        """(symbol, state after it) for state x."""
        q, r = divmod(x, sum(self.counts))
        s = next(s for s, c in enumerate(accumulate(self.counts)) if r < c)
        start = sum(self.counts[:s])
        x = self.counts[s] * q + r - start
        self.counts[s] += 2
        return s, x


class PayloadWriter:
    def __init__(self, cap_bits: int):
        self.cap_bits = cap_bits
        self._ops: list[tuple[str, int, int]] = []

    def count(self, n: int, limit: int) -> None:
        if not 1 <= n <= limit:
            raise ValueError(f"count {n} outside 1..{limit}")
        top = n.bit_length() - 1
        self._ops += [("uniform", top, limit.bit_length()), ("uniform", n - (1 << top), 1 << top)]

    def flag(self, bit: bool) -> None:
        self._ops.append(("flag", int(bit), 2))

    def index(self, i: int) -> None:
        if not 0 <= i < 1 << self.cap_bits:
            raise ValueError(f"chunk index {i} outside [0, 2^{self.cap_bits})")
        self._ops.append(("index", i, 0))

    def flags(self, bits) -> None:
        for bit in bits:
            self.flag(bool(bit))

    def indices(self, values) -> None:
        for i in values:
            self.index(int(i))

    def _intervals(self, fixed: bool) -> list[tuple[int, int, int]]:
        flags, exponents = _Adaptive(2), _Adaptive(self.cap_bits + 1)
        out = [(int(fixed), 1, 2)]
        for kind, value, total in self._ops:
            if kind == "uniform":
                out.append((value, 1, total))
            elif kind == "flag":
                out.append(flags.encode(value))
            elif fixed:
                out.append((value, 1, 1 << self.cap_bits))
            else:
                e = value.bit_length()
                out.append(exponents.encode(e))
                if e > 1:
                    out.append((value - (1 << (e - 1)), 1, 1 << (e - 1)))
        return out

    def to_bytes(self, check_bits: int) -> bytes:
        """The shorter of the adaptive and the fixed-length rendering."""
        best = None
        for fixed in (False, True):  # rANS: last in, first out
            x = _push(self._intervals(fixed)[::-1], check_value(check_bits))
            best = x if best is None else min(best, x)
        return best.to_bytes((best.bit_length() + 7) // 8, "big")


def _push(intervals: list[tuple[int, int, int]], x: int) -> int:
    """The rANS state after pushing ``intervals`` (start, freq, total) in order onto state ``x``:
    x <- (x // freq) * total + start + x % freq each, computed by halves. Pushing a run whose freqs
    multiply to F and totals to T maps x + k F to its image of x plus k T, so the run's image of x is
    its image of x mod F plus (x // F) T: a few big multiplications and divisions instead of one pass
    over the whole state per symbol (quadratic in the payload: 37 s for one 130 kbit DiffC step)."""
    return _push_run(_ProductTree(intervals), x)


_LEAF = 64  # intervals pushed one by one: their state is small


class _ProductTree:
    """A run of intervals with the products of its freqs and totals, split in halves down to leaves."""

    def __init__(self, intervals: list[tuple[int, int, int]]):
        self.intervals = intervals
        if len(intervals) <= _LEAF:
            self.halves = ()
            self.freqs = math.prod(f for _, f, _ in intervals)
            self.totals = math.prod(t for _, _, t in intervals)
        else:
            self.halves = (_ProductTree(intervals[: len(intervals) // 2]), _ProductTree(intervals[len(intervals) // 2 :]))
            self.freqs = self.halves[0].freqs * self.halves[1].freqs
            self.totals = self.halves[0].totals * self.halves[1].totals


def _push_run(run: _ProductTree, x: int) -> int:
    if not run.halves:
        for start, freq, total in run.intervals:
            x = (x // freq) * total + start + x % freq
        return x
    high, x = divmod(x, run.freqs)
    return _push_run(run.halves[1], _push_run(run.halves[0], x)) + high * run.totals


def refuse_malformed(data: bytes, max_bits: int, dims: int) -> None:
    """Raise RCCError for what no payload of either format is: empty, a leading zero byte, too long."""
    if not data or data[0] == 0:
        raise RCCError("RCC payload is empty or starts with a zero byte: it is not an RCC payload")
    if len(data) * 8 > max_bits:
        raise RCCError(f"RCC payload of {len(data)} bytes is longer than any payload for {dims} dims")


class PayloadReader:
    def __init__(self, data: bytes, dims: int, cap_bits: int, check_bits: int):
        refuse_malformed(data, max_payload_bits(dims, cap_bits, check_bits), dims)
        self.cap_bits, self.check_bits = cap_bits, check_bits
        self._x = int.from_bytes(data, "big")
        self._flags, self._exponents = _Adaptive(2), _Adaptive(cap_bits + 1)
        self._fixed = self._uniform(2) == 1

    def _uniform(self, total: int) -> int:
        self._x, r = divmod(self._x, total)
        return r

    def count(self, limit: int) -> int:
        top = self._uniform(limit.bit_length())
        n = (1 << top) + self._uniform(1 << top)
        if n > limit:
            raise RCCError(f"RCC payload is corrupt: count {n} exceeds {limit}")
        return n

    def flag(self) -> bool:
        bit, self._x = self._flags.decode(self._x)
        return bool(bit)

    def flags(self, k: int) -> np.ndarray:
        return np.array([self.flag() for _ in range(k)], dtype=bool)

    def indices(self, n: int) -> np.ndarray:
        return np.array([self.index() for _ in range(n)], dtype=np.int64)

    def index(self) -> int:
        if self._fixed:
            return self._uniform(1 << self.cap_bits)
        e, self._x = self._exponents.decode(self._x)
        return 0 if e == 0 else (1 << (e - 1)) + self._uniform(1 << (e - 1))

    def finish(self) -> None:
        if self._x != check_value(self.check_bits):
            raise RCCError(
                "RCC payload failed its integrity check: it is corrupt or truncated, or is being decoded "
                "with another cap_bits, check_bits or size than it was encoded with"
            )
