"""Pack a folder of images (and their sidecar files) into N WebDataset tar shards.

    python jobs/make_shards.py photos/ --output data/ --shards 4      # data/shard-000000.tar ...

Files that share a name up to the first dot form one sample: ``cat.jpg`` + ``cat.json`` -> key
``cat``. Keys are sorted and split into contiguous runs, one per shard. Shards are reproducible
(fixed mtimes and owners) and each is written in one piece (local path or URL such as s3://).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.io.shards import Sample, split_key, write_tar
from pipeline.io.storage import Storage, add_endpoint_flag, join


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_shards.py", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="folder of images and sidecar files (searched recursively)")
    p.add_argument("--output", required=True, help="folder or URL prefix for the shards")
    p.add_argument("--shards", type=int, default=2, help="number of shards (default 2)")
    p.add_argument("--prefix", default="shard-", help="shard file name prefix (default 'shard-')")
    add_endpoint_flag(p)
    return p


def collect(folder: Path) -> list[Sample]:
    """Samples of a folder, sorted by key: files grouped by their name up to the first dot."""
    samples: dict[str, Sample] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            key, ext = split_key(path.relative_to(folder).as_posix())
            samples.setdefault(key, Sample(key)).members[ext] = path.read_bytes()
    return [samples[k] for k in sorted(samples)]


def pack(samples: list[Sample], output: str, n_shards: int, prefix: str, storage: Storage) -> list[str]:
    """Write ``samples`` as ``n_shards`` shards under ``output``; returns their URLs."""
    n_shards = max(1, min(n_shards, len(samples)))
    urls = []
    for i in range(n_shards):
        part = samples[len(samples) * i // n_shards : len(samples) * (i + 1) // n_shards]
        url = join(output, f"{prefix}{i:06d}.tar")
        with storage.atomic_output(url) as f:
            write_tar(f, part)
        urls.append(url)
    return urls


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    samples = collect(folder)
    if not samples:
        print(f"error: no files in {folder}", file=sys.stderr)
        return 2
    urls = pack(samples, args.output, args.shards, args.prefix, Storage.from_env(args.endpoint_url))
    print(f"{len(samples)} samples -> {len(urls)} shards under {args.output}{os.sep if '://' not in args.output else '/'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
