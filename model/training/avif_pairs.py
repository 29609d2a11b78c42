"""Training pairs for the cdc-avif codec: (photo crop, its AVIF decode, quality, encoder settings).

AVIF encoding costs 35 ms (speed 6) to 0.5 s (speed 2) per crop, too slow to redo every step on two
cores, so pairs are made once into a cache (``pairs.u8``: N x 2 x S x S x 3 uint8, ``quality.npy``,
``settings.npy`` (N x 2 bytes, ``BaseSettings.to_bytes``), ``meta.json``, reused while the sources
and settings are unchanged) and training draws random sub-crops from it. Each photo gets one crop
per effort in turn, so every effort sees every kind of photo. Crops come after a random antialiased
downscale (by 2 where the photo allows, ``max_scale`` 0.5): the training photos are JPEGs, and
downscaling removes their own blocking, which the network would otherwise learn as truth.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset

from pipeline.imagefiles.pixels import to_rgb8

from ..codecs.avif_base import EFFORTS, BaseSettings, decode_base, encode_base
from .data import photos_once, random_crop

CACHE_VERSION = 3


def build_pair_cache(sources: list[str], out: Path, per_image: int = 4, size: int = 256,
                     quality_range: tuple[int, int] = (5, 75), seed: int = 0,
                     efforts: tuple[str, ...] = ("fast",), max_scale: float = 0.75,
                     holdout_every: int = 0) -> Path:
    """Write (or reuse) the pair cache of ``sources`` in folder ``out``; returns ``out``."""
    from tqdm import tqdm

    out = Path(out)
    meta = {"version": CACHE_VERSION, "sources": [str(s) for s in sources], "per_image": per_image,
            "size": size, "quality_range": list(quality_range), "seed": seed, "efforts": list(efforts),
            "max_scale": max_scale, "holdout_every": holdout_every}
    if (out / "meta.json").exists():
        stored = json.loads((out / "meta.json").read_text())
        if {k: v for k, v in stored.items() if k != "pairs"} == meta:
            return out
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # no marker while the cache is incomplete
    rng, qualities, settings = random.Random(seed), [], []
    with open(out / "pairs.u8", "wb") as f:
        for img in tqdm(photos_once(sources, holdout_every), desc="AVIF training pairs", unit="photo"):
            try:
                photo = Image.fromarray(to_rgb8(img))
            except Exception:
                continue  # an unreadable training photo is skipped
            for _ in range(per_image):
                crop = random_crop(photo, size, rng, max_scale)
                q, effort = rng.randint(*quality_range), EFFORTS[efforts[len(qualities) % len(efforts)]]
                f.write(crop.tobytes() + decode_base(encode_base(crop, q, effort)).tobytes())
                qualities.append(q)
                settings.append(effort.to_bytes())
    np.save(out / "quality.npy", np.array(qualities, np.int16))
    np.save(out / "settings.npy", np.frombuffer(b"".join(settings), np.uint8).reshape(-1, 2))
    (out / "meta.json").write_text(json.dumps({**meta, "pairs": len(qualities)}))
    return out


class PairCrops(IterableDataset):
    """Endless (x, base, quality, settings features) sub-crops of a pair cache; x and base in [-1, 1].

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
        features = torch.tensor([BaseSettings.from_bytes(bytes(b)).features()
                                 for b in np.load(self.cache / "settings.npy")])
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            i = int(rng.integers(self.pairs))
            top, left = (int(v) * 8 for v in rng.integers(0, (s - self.crop) // 8 + 1, 2))
            pair = torch.from_numpy(np.ascontiguousarray(pairs[i, :, top:top + self.crop, left:left + self.crop]))
            x, base = (pair.permute(0, 3, 1, 2).float() / 127.5 - 1).unbind(0)
            if rng.random() < 0.5:  # mirror: both, so the base's artefacts stay those of the photo
                x, base = x.flip(-1), base.flip(-1)
            yield x, base, torch.tensor(float(quality[i])), features[i]


def pair_crops(cfg, seed: int) -> PairCrops:
    """cdc-avif's training samples (registered in ``samples.py``): crops of the pair cache of ``cfg``
    (a ``TrainConfig``), built first where missing."""
    cache = build_pair_cache(cfg.data, Path(cfg.data_cache or Path(cfg.out) / "pairs"), **cfg.data_options,
                             max_scale=cfg.max_scale, holdout_every=cfg.holdout_every)
    return PairCrops(cache, cfg.crop, seed)
