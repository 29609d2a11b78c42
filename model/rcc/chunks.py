"""RCC chunking: which dimensions share one candidate index, derived alike by both sides.

The dimensions are visited in a keyed pseudo-random order (so neighbouring, correlated
dimensions spread over chunks) and cut into n base chunks of nearly equal size: base chunk j is
order[j*D//n : (j+1)*D//n]. Then, level by level, every chunk of two or more dimensions may be
halved; the encoder halves those whose KL exceeds max_chunk_bits and sends one flag per such
splittable chunk. So the payload carries n and the flags, the decoder replays the same halvings
from D alone, and every chunk is a run [start, stop) of the order. The decoder never needs mu_q
or the KL; a chunk can exceed max_chunk_bits only when it is a single dimension.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import random as rng


def order(size: int, key: int) -> np.ndarray:
    """The keyed visiting order of range(size)."""
    return rng.permutation(key, size)


def leaf_bounds(size: int, n: int, halve: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Chunk boundaries (sorted, from 0 to size) over the order. ``halve(starts, sizes)`` is asked,
    one level at a time and in a fixed order, which of the splittable chunks (size >= 2) to halve."""
    base = np.arange(n + 1, dtype=np.int64) * size // n
    starts, sizes = base[:-1], np.diff(base)
    leaves = []
    while len(starts):
        split = np.zeros(len(starts), dtype=bool)
        splittable = sizes >= 2
        if splittable.any():
            split[splittable] = halve(starts[splittable], sizes[splittable])
        leaves.append(starts[~split])
        half = sizes[split] // 2
        starts = np.stack([starts[split], starts[split] + half], axis=1).reshape(-1)
        sizes = np.stack([half, sizes[split] - half], axis=1).reshape(-1)
    return np.append(np.sort(np.concatenate(leaves)), size)


def dims_matrix(visit_order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Row j: the flat indices of chunk j's dimensions, padded with -1 to the widest chunk."""
    sizes = np.diff(bounds)
    columns = np.arange(sizes.max())
    valid = columns[None, :] < sizes[:, None]
    positions = np.minimum(bounds[:-1, None] + columns[None, :], len(visit_order) - 1)
    return np.where(valid, visit_order[positions], -1)
