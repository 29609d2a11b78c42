"""Calling a batched model function so that one bad input fails alone."""

from __future__ import annotations

import time
from typing import Callable, Sequence


def call_batched(fn: Callable[[list], list], inputs: Sequence) -> list[tuple[object, str | None, float]]:
    """``fn`` on all ``inputs`` in one call; if that raises, input by input.

    Returns ``(output, error, ms)`` per input: ``error`` is None on success, ``ms`` is the call's
    time shared equally across the batch (or the input's own time after a split).
    """
    if not inputs:
        return []
    t0 = time.perf_counter()
    try:
        outputs = fn(list(inputs))
        ms = (time.perf_counter() - t0) * 1000 / len(inputs)
        return [(out, None, ms) for out in outputs]
    except Exception:
        pass
    results = []
    for x in inputs:
        t0 = time.perf_counter()
        try:
            [out] = fn([x])
            results.append((out, None, (time.perf_counter() - t0) * 1000))
        except Exception as exc:
            results.append((None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - t0) * 1000))
    return results
