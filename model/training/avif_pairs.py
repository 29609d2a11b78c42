"""Training pairs for the cdc-avif codec: (photo crop, its AVIF decode, quality).

AVIF encoding costs ~35 ms per 256x256 crop, too slow to redo every step on two cores, so pairs are
made once into a cache (``pairs.u8``: N x 2 x S x S x 3 uint8, ``quality.npy``, ``meta.json``,
reused while the sources and settings are unchanged) and training draws random sub-crops from it.
Crops come after a random antialiased downscale, as for the other codecs: the training photos are
JPEGs, and downscaling hides their own blocking.
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
from .data import photos_once, random_crop

CACHE_VERSION = 2


def build_pair_cache(sources: list[str], out: Path, per_image: int = 4, size: int = 256,
                     quality_range: tuple[int, int] = (5, 75), seed: int = 0) -> Path:
    """Write (or reuse) the pair cache of ``sources`` in folder ``out``; returns ``out``."""
    from tqdm import tqdm

    out = Path(out)
    meta = {"version": CACHE_VERSION, "sources": [str(s) for s in sources], "per_image": per_image,
            "size": size, "quality_range": list(quality_range), "seed": seed}
    if (out / "meta.json").exists():
        stored = json.loads((out / "meta.json").read_text())
        if {k: v for k, v in stored.items() if k != "pairs"} == meta:
            return out
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # no marker while the cache is incomplete
    rng, qualities = random.Random(seed), []
    with open(out / "pairs.u8", "wb") as f:
        for img in tqdm(photos_once(sources), desc="AVIF training pairs", unit="photo"):
            try:
                photo = Image.fromarray(to_rgb8(img))
            except Exception:
                continue  # an unreadable training photo is skipped
            for _ in range(per_image):
                crop = random_crop(photo, size, rng)
                q = rng.randint(*quality_range)
                f.write(crop.tobytes() + decode_base(encode_base(crop, q)).tobytes())
                qualities.append(q)
    np.save(out / "quality.npy", np.array(qualities, np.int16))
    (out / "meta.json").write_text(json.dumps({**meta, "pairs": len(qualities)}))
    return out


class PairCrops(IterableDataset):
    """Endless (x, base, quality) sub-crops of a pair cache; x and base as floats in [-1, 1].

    Offsets are multiples of 8, so 4:2:0 chroma and AVIF's transform grid stay aligned as they are
    in a whole image.
    """

    def __init__(self, cache: Path, crop: int, seed: int):
        self.cache, self.crop, self.seed = Path(cache), crop, seed
        meta = json.loads((self.cache / "meta.json").read_text())
        self.size, self.pairs = meta["size"], meta["pairs"]
        if crop > self.size:
            raise ValueError(f"--crop {crop} is larger than the cached pairs ({self.size} px)")

    def __iter__(self):
        s = self.size
        pairs = np.memmap(self.cache / "pairs.u8", np.uint8, "r", shape=(self.pairs, 2, s, s, 3))
        quality = np.load(self.cache / "quality.npy")
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            i = int(rng.integers(self.pairs))
            top, left = (int(v) * 8 for v in rng.integers(0, (s - self.crop) // 8 + 1, 2))
            pair = torch.from_numpy(np.ascontiguousarray(pairs[i, :, top:top + self.crop, left:left + self.crop]))
            x, base = (pair.permute(0, 3, 1, 2).float() / 127.5 - 1).unbind(0)
            yield x, base, torch.tensor(float(quality[i]))
