"""Regenerate the example corpus (examples/corpus/shard-00000{0,1}.tar) from procedural images.

    python examples/make_corpus.py

Twelve small synthetic photographs (gradients, discs, texture; no external data), each with a
caption (.txt) and metadata (.json), packed by jobs/make_shards.py into two shards.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from jobs.make_shards import main as make_shards
from jobs.synthetic import synthetic_photo

REPO = Path(__file__).resolve().parents[1]


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
