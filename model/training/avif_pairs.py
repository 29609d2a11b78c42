"""Training pairs for the AVIF base-layer codec: (photo crop, its AVIF decode, quality).

AVIF encoding costs ~35 ms per 256x256 crop, too slow to redo every step on two cores, so the pairs
are made once into a memory-mapped cache (``pairs.npy``: N x 2 x S x S x 3 uint8, ``quality.npy``)
and training draws random sub-crops from it. Crops come after a random antialiased downscale, as
in the CDC training data: the photos are JPEGs, and downscaling hides their own blocking.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset

from ..codecs.avif_base import decode_base, encode_base
from ..images import to_rgb8

CACHE_VERSION = 1


def build_pair_cache(files: list[str], out: Path, per_image: int = 4, size: int = 256,
                     quality_range: tuple[int, int] = (5, 75), seed: int = 0, progress=None) -> Path:
    """Write (or reuse) a cache of AVIF training pairs; returns its folder."""
    out = Path(out)
    meta = {"version": CACHE_VERSION, "files": len(files), "per_image": per_image, "size": size,
            "quality_range": list(quality_range), "seed": seed}
    if (out / "meta.json").exists() and json.loads((out / "meta.json").read_text()) == meta:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    n = len(files) * per_image
    pairs = np.lib.format.open_memmap(out / "pairs.tmp.npy", "w+", np.uint8, (n, 2, size, size, 3))
    quality = np.zeros(n, np.int16)
    k = 0
    for f in files:
        try:
            with Image.open(f) as img:
                photo = Image.fromarray(to_rgb8(img))
        except Exception:
            continue  # an unreadable training photo is skipped
        for _ in range(per_image):
            crop = random_crop(photo, size, rng)
            q = rng.randint(*quality_range)
            pairs[k, 0] = crop
            pairs[k, 1] = decode_base(encode_base(crop, q))
            quality[k] = q
            k += 1
        if progress:
            progress(k, n)
    pairs.flush()
    del pairs
    np.save(out / "quality.npy", quality[:k])
    (out / "pairs.tmp.npy").rename(out / "pairs.npy")
    (out / "meta.json").write_text(json.dumps({**meta, "pairs": k}))
    return out


def random_crop(photo: Image.Image, size: int, rng: random.Random) -> np.ndarray:
    w, h = photo.size
    short = min(w, h)
    scale = rng.uniform(size, max(size, 0.75 * short)) / short
    img = photo.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.LANCZOS)
    w, h = img.size
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


class PairCrops(IterableDataset):
    """Endless (x, base, quality) sub-crops from a pair cache; x and base as floats in [-1, 1].

    Offsets are multiples of 8 so 4:2:0 chroma and AVIF's transform grid stay aligned as they are
    in a whole image.
    """

    def __init__(self, cache: Path, crop: int, seed: int):
        self.cache, self.crop, self.seed = Path(cache), crop, seed

    def __iter__(self):
        pairs = np.load(self.cache / "pairs.npy", mmap_mode="r")
        quality = np.load(self.cache / "quality.npy")
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        n, _, size = pairs.shape[:3]
        n = len(quality)
        while True:
            i = int(rng.integers(n))
            top, left = (int(v) * 8 for v in rng.integers(0, (size - self.crop) // 8 + 1, 2))
            pair = torch.from_numpy(np.ascontiguousarray(pairs[i, :, top:top + self.crop, left:left + self.crop]))
            x, base = (pair.permute(0, 3, 1, 2).float() / 127.5 - 1).unbind(0)
            yield x, base, torch.tensor(float(quality[i]))
