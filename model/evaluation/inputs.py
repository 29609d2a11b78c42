"""The images an evaluation runs on: a folder of image files, or WebDataset shards read through
the pipeline's data layer (``pipeline.shards``: local paths, s3:// URLs, globs, brace patterns)."""

from __future__ import annotations

from pathlib import Path

from pipeline.shards import ShardReader, expand_inputs, is_shard_spec
from pipeline.storage import Storage

from ..images import IMAGE_EXTENSIONS, LoadedImage, is_image_name, load_image


def load_images(source: str | Path, limit: int | None = None) -> list[tuple[str, LoadedImage]]:
    """(name, image) pairs, sorted by name; the first ``limit`` of them when given."""
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
    named = named[:limit] if limit else named
    return [(name, load_image(data if isinstance(data, bytes) else data.read_bytes())) for name, data in named]
