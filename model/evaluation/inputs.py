"""The images an evaluation runs on: a folder of image files, or WebDataset shards read through
the pipeline's data layer (``pipeline.io.shards``: local paths, s3:// URLs, globs, brace patterns).

``select`` picks files by name before any is read (``jobs/evaluate.py --held-out``: the slice of a
training folder that training never reads); ``resize_max`` downscales larger images (Lanczos,
antialiased) so that neither side exceeds it, for quick runs on camera-sized photos.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from pipeline.imagefiles.pixels import IMAGE_EXTENSIONS, LoadedImage, is_image_name, load_image
from pipeline.io.shards import ShardReader, expand_inputs, is_shard_spec
from pipeline.io.storage import Storage


def load_images(source: str | Path, limit: int | None = None, select: Callable[[str], bool] | None = None,
                resize_max: int | None = None, spread: bool = False) -> list[tuple[str, LoadedImage]]:
    """(name, image) pairs, sorted by name, of the names ``select`` keeps; the first ``limit`` of them
    when given, or with ``spread`` ``limit`` names evenly spaced over the sorted list (a folder sorted by
    source, e.g. bsds_* before inet_*, then gives a sample of each)."""
    source = str(source)
    if is_shard_spec(source):
        storage = Storage.from_env()
        samples = [s for url in expand_inputs(source, storage) for s in ShardReader(url, storage)
                   if s.image_member(IMAGE_EXTENSIONS)]
        named = sorted((f"{s.key}.{m}", s.members[m]) for s in samples if (m := s.image_member(IMAGE_EXTENSIONS)))
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise SystemExit(f"image folder {folder} does not exist (pass --images DIR or shards)")
        named = [(f.name, f) for f in sorted(folder.iterdir()) if f.is_file() and is_image_name(f.name)]
    if not named:
        raise SystemExit(f"no images in {source} (expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
    if select is not None:
        kept = [(name, data) for name, data in named if select(name)]
        if not kept:
            raise SystemExit(f"none of the {len(named)} images in {source} is selected (the held-out slice is empty)")
        named = kept
    if limit and spread and len(named) > limit:
        named = [named[i * len(named) // limit] for i in range(limit)]
    named = named[:limit] if limit else named
    images = [(name, load_image(data if isinstance(data, bytes) else data.read_bytes())) for name, data in named]
    return [(name, downscaled(im, resize_max) if resize_max else im) for name, im in images]


def downscaled(image: LoadedImage, side: int) -> LoadedImage:
    """``image`` with its longer side brought down to ``side`` (aspect kept, Lanczos); smaller ones unchanged."""
    h, w = image.rgb.shape[:2]
    if max(h, w) <= side:
        return image
    size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
    rgb = np.asarray(Image.fromarray(image.rgb).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)
    return dataclasses.replace(image, rgb=rgb)
