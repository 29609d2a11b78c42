"""Training data: endless random crops from image folders or WebDataset shards, as float tensors.

Shards are read through the pipeline's data layer (``pipeline.io.shards`` over ``pipeline.io.storage``),
the same reader the archive jobs use: local paths, s3:// URLs, globs and brace patterns alike.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset

from pipeline.imagefiles.pixels import IMAGE_EXTENSIONS, held_out, is_image_name, to_rgb8
from pipeline.io.shards import ShardReader, expand_inputs, is_shard_spec
from pipeline.io.storage import Storage


def photo_crops(cfg, seed: int) -> "RandomCrops":
    """The samples of most families' training (``samples.samples_for``'s default): random crops of the photos
    of ``cfg`` (a ``TrainConfig``)."""
    return RandomCrops(cfg.data, cfg.crop, seed, cfg.holdout_every, cfg.max_scale)


class RandomCrops(IterableDataset):
    """Endless random crops from image folders or WebDataset shards, as float tensors in [0, 1].

    Each photo is first downscaled by a random factor with antialiasing: the training photos are
    JPEGs, and downscaling hides the blocking that the codec would otherwise learn to reproduce.
    """

    def __init__(self, sources: list[str], crop: int, seed: int, holdout_every: int = 0, max_scale: float = 0.75):
        self.files, self.shards, self.storage = find_sources(sources, holdout_every)
        self.crop, self.seed, self.max_scale = crop, seed, max_scale

    def _images(self, rng: random.Random, worker: int, workers: int):
        if self.shards:
            mine = self.shards[worker::workers] if len(self.shards) >= workers else self.shards
            while True:
                for url in rng.sample(mine, len(mine)):  # a new shard order every pass
                    yield from shard_photos(url, self.storage)
        while True:
            yield Image.open(rng.choice(self.files))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(self.seed * 1000 + worker + os.getpid())
        for img in self._images(rng, worker, workers):
            try:
                rgb = to_rgb8(img)
            except Exception:
                continue  # a broken training image is skipped, not fatal
            yield self._crop(Image.fromarray(rgb), rng)

    def _crop(self, img: Image.Image, rng: random.Random) -> torch.Tensor:
        crop = random_crop(img, self.crop, rng, self.max_scale)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255


def random_crop(photo: Image.Image, size: int, rng: random.Random, max_scale: float = 0.75) -> np.ndarray:
    """A size x size uint8 crop after a random antialiased downscale (hides the photos' own JPEG blocks):
    by at least 1 / ``max_scale`` where the photo is large enough."""
    w, h = photo.size
    short = min(w, h)
    scale = rng.uniform(size, max(size, max_scale * short)) / short
    img = photo.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.LANCZOS)
    w, h = img.size
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def find_sources(sources: list[str], holdout_every: int = 0):
    """(image files, shard URLs, storage) of training sources: image folders (less the held-out
    slice, see ``held_out``) or shard patterns."""
    storage = Storage.from_env()
    files = sorted(f for s in sources if not is_shard_spec(s) for f in _image_files(s)
                   if not held_out(f, holdout_every))
    shards = [u for s in sources if is_shard_spec(s) for u in expand_inputs(s, storage)]
    if not files and not shards:
        raise FileNotFoundError(f"no training images found in {sources} (folders of {IMAGE_EXTENSIONS})")
    return files, shards, storage


def shard_photos(url: str, storage):
    """The images of one WebDataset shard, through the pipeline's reader (bad samples skipped)."""
    for sample in ShardReader(url, storage):
        member = sample.image_member(IMAGE_EXTENSIONS)
        if member is not None and sample.problem is None:
            yield Image.open(io.BytesIO(sample.members[member]))


def photos_once(sources: list[str], holdout_every: int = 0):
    """Every training image once, in a fixed order (folders sorted, then shards)."""
    files, shards, storage = find_sources(sources, holdout_every)
    for f in files:
        yield Image.open(f)
    for url in shards:
        yield from shard_photos(url, storage)


def _image_files(folder: str) -> list[str]:
    return [str(p) for p in Path(folder).rglob("*") if p.is_file() and is_image_name(p.name)]
