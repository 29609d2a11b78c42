"""torch's intra-op thread count, set for a block and restored: CPU convolutions give different last
bits under different thread counts, so whatever both sides of a codec must compute alike (DiffC's
prior) runs under a fixed count, and tests compare thread counts with it."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def fixed_threads(n: int = 1):
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
