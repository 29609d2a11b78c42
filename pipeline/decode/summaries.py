"""Summaries of audit columns (the metrics themselves are ``model.evaluation.metrics``'s ``psnr`` and
``ms_ssim``, which ``decode.audit`` imports from there)."""

from __future__ import annotations

import math


def summarize(values: list[float | None], higher_is_better: bool = True) -> dict:
    """Mean and the mean of the worst 1 % (at least one image) of the values that are numbers."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return {"n": 0, "mean": None, "worst_1pct": None}
    k = max(1, math.ceil(len(xs) / 100))
    worst = xs[:k] if higher_is_better else xs[-k:]
    return {"n": len(xs), "mean": sum(xs) / len(xs), "worst_1pct": sum(worst) / k}
