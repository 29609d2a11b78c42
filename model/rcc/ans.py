"""The RCC payload coder, format 2: constriction's ANS (32-bit words, 24-bit probabilities).

The symbols are format 1's (``coding``: a mode bit, the count, the split flags, the chunk indices,
the check), coded in constant time per symbol and in bulk: the stream is the mode, the count, all
flags, then all indices (adaptive: all exponents, then all their lower bits; fixed: cap_bits raw
bits each), then the check, ``1`` followed by check_bits bits of a fixed pattern. Adaptive symbols
use Krichevsky-Trofimov counts (start 1, +2 per use) frozen over blocks of a quarter as many symbols
as were seen (at least 1, at most ``MAX_BLOCK``): one vectorised call per block on either side, and
the same size as adapting after every symbol on the toy payloads of tests/codecs/test_rcc.py
(blocks of as many as were seen cost 8-16 bits more). Raw fields wider than ``RAW_PIECE`` bits go in pieces
(constriction's models take fewer than 2^24 values).

Bytes: constriction's words, the top of the stack first, big-endian, less the leading zero bytes of
the top word (which is never zero): a payload starts with a non-zero byte. The decoder must end on
the check with the coder empty, so a corrupt, truncated or mis-configured payload fails with
probability about 1 - 2^-check_bits (the container's CRC is the real integrity check).
"""

from __future__ import annotations

import constriction
import numpy as np

from .coding import RCCError, check_value, refuse_malformed
from .coding import header_bits as coding_header_bits

# a Rust extension: its submodules are attributes, not importable modules
Categorical, Uniform = constriction.stream.model.Categorical, constriction.stream.model.Uniform
AnsCoder = constriction.stream.stack.AnsCoder
FORMAT = 2
MAX_BLOCK = 1024  # symbols per frozen-count block: adaptation keeps up with drift along the payload
RAW_PIECE = 16  # bits per raw piece
_FLAG, _UNIFORM = Uniform(2), Uniform()  # a family: the size is given per symbol


def header_bits(n: int, dims: int, check_bits: int) -> float:
    """Format 1's ``header_bits`` and the ANS head's termination: 16 to 32 bits more a payload, measured."""
    return coding_header_bits(n, dims, check_bits) + 24


def max_payload_bits(dims: int, cap_bits: int, check_bits: int) -> int:
    """A bound on any payload for ``dims`` dimensions: at most 5 dims + 12 symbols (2 dims flags, dims
    chunks whose index takes at most 3 symbols), none costing more than 24 bits, and the coder's 64-bit head."""
    return 24 * (5 * dims + 12 + (cap_bits + check_bits) // RAW_PIECE) + 64


class _BlockCounts:
    """Adaptive counts over symbols 0..size-1, frozen over each block (see the module doc)."""

    def __init__(self, size: int):
        self.counts = np.ones(size, dtype=np.int64)
        self.seen = 0
        self._block, self._left, self._pending = None, 0, []  # the decoder's current block

    def blocks(self, symbols: np.ndarray) -> list[tuple[np.ndarray, Categorical]]:
        """The encoder's view: ``symbols`` cut into blocks, each with its model."""
        out, start = [], 0
        while start < len(symbols):
            block = symbols[start:start + self._next_block()]
            out.append((block, self._model()))
            self._seen_block(block)
            start += len(block)
        return out

    def decode(self, coder: AnsCoder, n: int) -> np.ndarray:
        """The decoder's view: the next ``n`` symbols (a block may span calls: one level's flags, the next's)."""
        parts = []
        while n > 0:
            if not self._left:
                self._block, self._left, self._pending = self._model(), self._next_block(), []
            take = min(n, self._left)
            parts.append(_decoded(coder, self._block, take))
            self._pending.append(parts[-1])
            self._left, n = self._left - take, n - take
            if not self._left:
                self._seen_block(np.concatenate(self._pending))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def _next_block(self) -> int:
        return min(MAX_BLOCK, max(1, self.seen // 4))

    def _model(self) -> Categorical:
        return Categorical(self.counts / self.counts.sum(), perfect=False)

    def _seen_block(self, block: np.ndarray) -> None:
        self.counts += 2 * np.bincount(block, minlength=len(self.counts))
        self.seen += len(block)


def _pieces(width: int) -> list[tuple[int, int]]:
    """(shift, bits) of each raw piece of a ``width``-bit field, most significant first."""
    shifts = range((width - 1) // RAW_PIECE * RAW_PIECE, -1, -RAW_PIECE) if width > 0 else ()
    return [(s, min(RAW_PIECE, width - s)) for s in shifts]


def _raw(values, width: int) -> list[tuple]:
    """Segments coding ``values`` (ints, all ``width`` bits wide) as raw bits, most significant piece first."""
    values = np.asarray(values)
    return [(((values >> shift) & ((1 << bits) - 1)).astype(np.int32).reshape(-1), Uniform(1 << bits))
            for shift, bits in _pieces(width)]


def _decoded(coder: AnsCoder, model, *params) -> np.ndarray:
    try:
        return coder.decode(model, *params)
    except (ValueError, RuntimeError) as exc:  # constriction refuses, e.g., a model over bad parameters
        raise RCCError(f"RCC payload is corrupt: {exc}") from None


def _decode_raw(coder: AnsCoder, width: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=object if width > 62 else np.int64)
    for shift, bits in _pieces(width):
        out = out + (_decoded(coder, Uniform(1 << bits), n).astype(out.dtype) << shift)
    return out


def _low_bits(exponents: np.ndarray) -> np.ndarray:
    """Bits of each index below its leading 1 (e - 1 for e >= 1), per index."""
    return np.maximum(exponents.astype(np.int64) - 1, 0)


class PayloadWriter:
    """Records the RCC encoder's symbols (in the stream: count, flags, indices, whatever the call order)
    and renders them."""

    def __init__(self, cap_bits: int):
        self.cap_bits = cap_bits
        self._count: tuple[int, int] | None = None
        self._flags: list[np.ndarray] = []
        self._indices: list[np.ndarray] = []

    def count(self, n: int, limit: int) -> None:
        if not 1 <= n <= limit:
            raise ValueError(f"count {n} outside 1..{limit}")
        self._count = (n, limit)

    def flags(self, bits) -> None:
        self._flags.append(np.asarray(bits, dtype=np.int32).reshape(-1))

    def indices(self, values) -> None:
        values = np.asarray(values, dtype=np.int64).reshape(-1)
        if len(values) and (values.min() < 0 or values.max() >= 1 << self.cap_bits):
            raise ValueError(f"chunk index outside [0, 2^{self.cap_bits})")
        self._indices.append(values)

    def to_bytes(self, check_bits: int) -> bytes:
        """The shorter of the adaptive and the fixed-length rendering."""
        return min((self._render(fixed, check_bits) for fixed in (False, True)), key=len)

    def _render(self, fixed: bool, check_bits: int) -> bytes:
        if self._count is None:
            raise ValueError("an RCC payload starts with its count")
        n, limit = self._count
        top = n.bit_length() - 1
        segments = [(np.array([int(fixed)], dtype=np.int32), _FLAG)]
        if limit.bit_length() > 1:
            segments.append((np.array([top], dtype=np.int32), Uniform(limit.bit_length())))
        segments += _raw([n - (1 << top)], top)
        flags = np.concatenate([np.zeros(0, dtype=np.int32), *self._flags])
        segments += _BlockCounts(2).blocks(flags)
        indices = np.concatenate([np.zeros(0, dtype=np.int64), *self._indices])
        if fixed:
            segments += _raw(indices, self.cap_bits)
        else:
            exponents = np.frexp(indices.astype(np.float64))[1].astype(np.int32)  # bit_length, exact below 2^53
            segments += _BlockCounts(self.cap_bits + 1).blocks(exponents)
            segments += _uniform_bits(indices, _low_bits(exponents))
        segments += _raw([check_value(check_bits)], check_bits + 1)
        coder = AnsCoder()
        for segment in reversed(segments):  # a stack: the last pushed is the first read
            if len(segment[0]):
                coder.encode_reverse(*segment)
        words = coder.get_compressed()
        return words[::-1].astype(">u4").tobytes().lstrip(b"\0")


def _uniform_bits(values: np.ndarray, widths: np.ndarray) -> list[tuple]:
    """Segments coding the lowest ``widths[i]`` bits of each ``values[i]`` (widths may differ, and be 0):
    per piece, one vectorised segment over the values that have it."""
    segments = []
    for shift in range(0, int(widths.max(initial=0)), RAW_PIECE)[::-1]:
        has = widths > shift
        bits = np.minimum(widths[has] - shift, RAW_PIECE)
        symbols = ((values[has] >> shift) & ((1 << bits) - 1)).astype(np.int32)
        segments.append((symbols, _UNIFORM, (1 << bits).astype(np.int32)))
    return segments


class PayloadReader:
    """Hears a format-2 payload back: ``count``, ``flags`` (in any number of calls), ``indices``, ``finish``."""

    def __init__(self, data: bytes, dims: int, cap_bits: int, check_bits: int):
        refuse_malformed(data, max_payload_bits(dims, cap_bits, check_bits), dims)
        words = np.frombuffer(bytes(-len(data) % 4) + bytes(data), dtype=">u4")[::-1].astype(np.uint32)
        try:
            self._coder = AnsCoder(words)
        except ValueError as exc:
            raise RCCError(f"RCC payload is corrupt: {exc}") from None
        self.cap_bits, self.check_bits = cap_bits, check_bits
        self._flags = _BlockCounts(2)
        self._fixed = bool(_decoded(self._coder, _FLAG))

    def count(self, limit: int) -> int:
        top = int(_decoded(self._coder, Uniform(limit.bit_length()))) if limit.bit_length() > 1 else 0
        n = (1 << top) + int(_decode_raw(self._coder, top, 1)[0])
        if n > limit:
            raise RCCError(f"RCC payload is corrupt: count {n} exceeds {limit}")
        return n

    def flags(self, k: int) -> np.ndarray:
        return self._flags.decode(self._coder, k).astype(bool)

    def indices(self, n: int) -> np.ndarray:
        if self._fixed:
            return _decode_raw(self._coder, self.cap_bits, n)
        exponents = _BlockCounts(self.cap_bits + 1).decode(self._coder, n).astype(np.int64)
        widths = _low_bits(exponents)
        values = np.where(exponents > 0, np.left_shift(1, widths), 0)
        for shift in range(0, int(widths.max(initial=0)), RAW_PIECE)[::-1]:
            has = widths > shift
            bits = np.minimum(widths[has] - shift, RAW_PIECE)
            values[has] += _decoded(self._coder, _UNIFORM, (1 << bits).astype(np.int32)).astype(np.int64) << shift
        return values

    def finish(self) -> None:
        check = _decode_raw(self._coder, self.check_bits + 1, 1)[0]
        if check != check_value(self.check_bits) or not self._coder.is_empty():
            raise RCCError(
                "RCC payload failed its integrity check: it is corrupt or truncated, or is being decoded "
                "with another cap_bits, check_bits or size than it was encoded with"
            )
