"""Procedural photo-like images (no external data): the example corpus and the pipeline benchmark."""

from __future__ import annotations

import numpy as np


def synthetic_photo(rng: np.random.Generator, h: int, w: int, grain: float = 4.0) -> np.ndarray:
    """Smooth colour field + a few soft discs + fine texture: photo-like statistics, tiny files."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 70 * np.sin(a * x / 37 + b * y / 41 + 6 * p)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(12, 50)
        mask = 1 / (1 + np.exp(np.clip(((x - cx) ** 2 + (y - cy) ** 2) ** 0.5 - r, -50, 50)))
        img += mask[..., None] * (rng.uniform(0, 255, 3) - img) * 0.8
    img += rng.normal(0, grain, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)
