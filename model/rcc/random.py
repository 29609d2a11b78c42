"""Shared randomness for reverse-channel coding: a counter-based generator.

Every random number is a pure function of a 64-bit key and a counter, so the encoder and the
decoder draw the same candidate whatever order they draw in, however they batch it and however
many threads torch uses. The generator is SplitMix64 (a Weyl counter through a 64-bit finaliser)
evaluated in numpy uint64 arithmetic, which wraps exactly and runs single-threaded: a chunk's key
is word j of the stream (seed, key), candidate i's key is word i of the chunk's stream, and its
dimension k is word k of the candidate's stream. Uniforms carry
52 random bits; normals come from ``torch.special.ndtri``, whose CPU kernel is scalar (no vector/tail
split), so each output depends only on its own input; tests/codecs/test_rcc.py checks this under 1 and 2
threads and under reslicing.
"""

from __future__ import annotations

import numpy as np
import torch

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # the Weyl increment of SplitMix64
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB

# Streams drawn from one (seed, key): independent sub-keys, so a change in one never moves another.
_CACHE_WORDS = 1 << 15

STREAM_PERMUTATION = 1
STREAM_CANDIDATES = 2
STREAM_TIMES = 3  # encoder-private in principle; keyed too so encoding is reproducible


def mix64(z: int) -> int:
    """The SplitMix64 finaliser on a Python int (a bijection of 64-bit words)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * _MUL1) & MASK64
    z = ((z ^ (z >> 27)) * _MUL2) & MASK64
    return z ^ (z >> 31)


def mix64_array(z: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """The SplitMix64 finaliser, in place on a uint64 array (numpy wraps uint64 products)."""
    scratch = np.empty_like(z) if scratch is None else scratch
    for shift, multiplier in ((30, _MUL1), (27, _MUL2)):
        np.right_shift(z, np.uint64(shift), out=scratch)
        z ^= scratch
        z *= np.uint64(multiplier)
    np.right_shift(z, np.uint64(31), out=scratch)
    z ^= scratch
    return z


def derive_key(seed: int, key: int | tuple[int, ...], stream: int) -> int:
    """One 64-bit key for (seed, key, stream); key is an int (e.g. a diffusion step) or a tuple."""
    parts = key if isinstance(key, tuple) else (key,)
    h = mix64(seed + GOLDEN)
    for part in (*parts, stream):
        if not isinstance(part, int) or part < 0 or part > MASK64:
            raise ValueError(f"RCC key parts must be ints in [0, 2^64), got {part!r}")
        h = mix64(h ^ mix64(part + GOLDEN))
    return h


def _weyl(counters: np.ndarray) -> np.ndarray:
    """(counter + 1) * GOLDEN: the SplitMix64 state offsets of words ``counters``."""
    return (counters.astype(np.uint64) + np.uint64(1)) * np.uint64(GOLDEN)


def row_keys(base: int, rows: int) -> np.ndarray:
    """Sub-keys 0..rows-1 of ``base`` (one per chunk): words of the SplitMix64 stream ``base``."""
    return mix64_array(_weyl(np.arange(rows)) + np.uint64(base))


def uniforms(keys: np.ndarray, indices: np.ndarray, width: int) -> torch.Tensor:
    """U(0,1) float64 of shape (rows, B, width): element (r, b, k) is word k of the stream whose
    key is word indices[r or 0, b] of the stream keys[r] (one SplitMix64 stream per candidate).
    indices is (rows, B) or (1, B)."""
    candidate_keys = mix64_array(_weyl(indices) + keys[:, None])
    words = candidate_keys[:, :, None] + _weyl(np.arange(width))
    flat = words.reshape(-1)
    scratch = np.empty(min(flat.size, _CACHE_WORDS), dtype=np.uint64)
    for start in range(0, flat.size, _CACHE_WORDS):  # cache-sized pieces: ~4x faster than whole passes
        piece = flat[start : start + _CACHE_WORDS]
        mix64_array(piece, scratch[: piece.size])
        # 52 random bits as the mantissa of a float in [1, 2), moved to (2m + 1) * 2^-53: exact, in (0, 1)
        piece >>= np.uint64(12)
        piece |= np.uint64(0x3FF0000000000000)
        piece.view(np.float64)[:] -= 1.0 - 2.0**-53
    return torch.from_numpy(words.view(np.float64))


def standard_normals(keys: np.ndarray, indices: np.ndarray, width: int) -> torch.Tensor:
    """N(0,1) float64 of shape (rows, B, width), keyed like ``uniforms``."""
    u = uniforms(keys, indices, width)
    return torch.special.ndtri(u, out=u)


def permutation(base: int, size: int) -> np.ndarray:
    """A keyed pseudo-random permutation of range(size) (stable sort of hashed positions)."""
    z = np.arange(size, dtype=np.uint64) * np.uint64(GOLDEN)
    z += np.uint64(base)
    return np.argsort(mix64_array(z), kind="stable")
