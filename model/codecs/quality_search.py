"""Rate control of a base layer: the quality that meets a byte cap and a restored-PSNR target, by bisection.

Bytes and restored PSNR both rise with quality (AVIF's rate control is monotone up to a few bytes), so
the cap is the largest quality that fits and the target the smallest one that reaches it below the
cap; each probe is one encode, and for a target one restore. Too tight a cap gives quality 0; an
unreachable target, the cap's (or 100): ``RateChoice.met`` says which.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

class RateChoice(NamedTuple):
    """What rate control chose for one image: the quality, its payload, whether every target was met,
    how many qualities were encoded to find it, and the restored PSNR where it was measured."""

    quality: int
    payload: bytes
    met: bool
    probes: int
    psnr: float | None


def _first_true(test, lo: int, hi: int) -> int | None:
    """The smallest q in lo..hi with test(q), for a test that stays true once true; None if none."""
    if not test(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if test(mid) else (mid + 1, hi)
    return lo


def _last_true(test, lo: int, hi: int) -> int | None:
    """The largest q in lo..hi with test(q), for a test that stays false once false; None if none."""
    if not test(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if test(mid) else (lo, mid - 1)
    return lo


def choose_quality(payload: Callable[[int], bytes], restored_psnr: Callable[[int], float], cap: int | None,
                   target_psnr: float | None) -> tuple[int, bool]:
    """(quality, met): the quality in 0..100 whose ``payload`` fits ``cap`` bytes (None: no cap) and whose
    ``restored_psnr`` reaches ``target_psnr`` (None: none), by the rule above."""
    top = 100 if cap is None else _last_true(lambda q: len(payload(q)) <= cap, 0, 100)
    top = 0 if top is None else top
    met = cap is None or len(payload(top)) <= cap
    if target_psnr is not None:
        q = _first_true(lambda q: restored_psnr(q) >= target_psnr, 0, top)
        met = met and q is not None
        top = top if q is None else q
    return top, met
