"""Calling a batched model function so that one bad input fails alone and memory faults shrink the batch."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from .faults import is_infrastructure, is_out_of_memory, release_memory

# the jobs' pixel cap (both jobs' --max-pixels): about 3 GB of CDC working memory (60 bytes/pixel)
JOB_MAX_PIXELS = 50_000_000


def call_batched(fn: Callable[[list], list], inputs: Sequence) -> list[tuple[object, str | None, float]]:
    """``fn`` on all ``inputs`` in one call; on an input error, input by input.

    Returns ``(output, error, ms)`` per input: ``error`` is None on success, ``ms`` is the call's
    time shared equally across the batch (or the input's own time after a split). Out of memory
    halves the batch and tries again; any other infrastructure fault (``faults``), or out of memory
    on a single input, propagates: it is not the input's fault, so it must not become an error row.
    """
    if not inputs:
        return []
    t0 = time.perf_counter()
    try:
        outputs = fn(list(inputs))
        ms = (time.perf_counter() - t0) * 1000 / len(inputs)
        return [(out, None, ms) for out in outputs]
    except Exception as exc:
        halve = is_out_of_memory(exc) and len(inputs) > 1
        if is_infrastructure(exc) and not halve:
            raise
    if halve:  # outside the except block, so the failed call's frames (and tensors) are freed first
        release_memory()
        half = len(inputs) // 2
        return call_batched(fn, inputs[:half]) + call_batched(fn, inputs[half:])
    results = []
    for x in inputs:
        t0 = time.perf_counter()
        try:
            [out] = fn([x])
            results.append((out, None, (time.perf_counter() - t0) * 1000))
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            results.append((None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - t0) * 1000))
    return results
