"""Regenerate the example corpus (examples/corpus/shard-00000{0,1}.tar) from procedural images.

    python examples/make_corpus.py

Twelve small synthetic photographs (gradients, discs, texture; no external data), each with a
caption (.txt) and metadata (.json), packed by jobs/make_shards.py into two shards.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jobs.make_shards import main as make_shards  # noqa: E402


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


def main() -> None:
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(12):
            h, w = (192, 256) if i % 3 else (224, 176)
            as_png = i % 4 == 3  # PNGs without grain: lossless files of noise are large
            img = Image.fromarray(synthetic_photo(rng, h, w, grain=0.0 if as_png else 4.0))
            key = f"img{i:04d}"
            if as_png:
                img.save(f"{tmp}/{key}.png", optimize=True)
            else:
                img.save(f"{tmp}/{key}.jpg", quality=85)
            Path(f"{tmp}/{key}.txt").write_text(f"synthetic example photo {i}\n")
            Path(f"{tmp}/{key}.json").write_text(json.dumps({"index": i, "source": "examples/make_corpus.py"}))
        make_shards([tmp, "--output", str(REPO / "examples" / "corpus"), "--shards", "2"])


if __name__ == "__main__":
    main()
