"""Test helpers: images made with Pillow, shards holding them, reading archives back."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image


def image_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w: int = 48, h: int = 32, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 5 + seed * 40) % 256, (y * 7) % 256, (x + y) * 3 % 256], -1).astype(np.int16)
    arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


def write_shard(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """A WebDataset tar: samples as (key, {ext: bytes}) in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:  # long or non-ASCII names too
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def plain_shards(folder: Path, n_shards: int, per_shard: int, size=(48, 32), fmt: str = "PNG") -> dict[str, list[str]]:
    """``n_shards`` shards of small photos with a .json each; returns shard name -> keys."""
    out = {}
    for s in range(n_shards):
        samples = []
        for i in range(per_shard):
            key = f"s{s}-{i:04d}"
            samples.append((key, {"png" if fmt == "PNG" else "jpg": image_bytes(photo(*size, seed=s * 1000 + i), fmt),
                                  "json": json.dumps({"i": i}).encode()}))
        write_shard(folder / f"shard-{s:06d}.tar", samples)
        out[f"shard-{s:06d}"] = [k for k, _ in samples]
    return out


def archive_rows(folder: Path, columns=None) -> list[dict]:
    rows = []
    for p in sorted(folder.glob("*.parquet")):
        rows += pq.read_table(p, columns=columns).to_pylist()
    return rows


def stats(folder: Path) -> dict[str, dict]:
    return {p.name[: -len(".stats.json")]: json.loads(p.read_text()) for p in sorted(folder.glob("*.stats.json"))}


def rewrite_archive_shard(folder: Path, name: str, edit) -> list[dict]:
    """Replace the rows of archive shard ``name`` by ``edit(rows)`` and re-vouch for them: the Parquet
    file is rewritten and its stats marker updated (bytes, sha256, rows), exactly as a dishonest writer
    could. Returns the new rows."""
    from pipeline.io.storage import Storage
    from pipeline.records.archive import ArchiveWriter
    from pipeline.records.row import Row

    rows = edit(pq.read_table(folder / f"{name}.parquet").to_pylist())
    record: dict = {}
    with Storage().atomic_output(str(folder / f"{name}.parquet"), record=record) as f:
        writer = ArchiveWriter(f)
        for row in rows:
            writer.add(Row(**row))
        writer.close()
    marker = json.loads((folder / f"{name}.stats.json").read_text())
    marker.update(output=record, parquet_bytes=record["bytes"], rows=len(rows))
    (folder / f"{name}.stats.json").write_text(json.dumps(marker))
    return rows


def reading_corpus(folder: Path) -> dict[str, list[tuple[str, dict[str, bytes]]]]:
    """Two shards of tiny samples that take every reading path: JPEGs (coded, or kept as JPEG XL in a
    ``--lossless`` archive), a PNG with alpha (lossless), a broken image (an error row that keeps its
    file), a sample without an image; each with a .json. Written as tars under ``folder``."""
    def jpeg(seed):
        return image_bytes(photo(64, 48, seed=seed), "JPEG", quality=90)

    shards = {
        "shard-000000": [(f"a{i}", {"jpg": jpeg(i), "json": json.dumps({"i": i}).encode()}) for i in range(5)]
        + [("alpha", {"png": image_bytes(photo(64, 48, seed=9, mode="RGBA"), "PNG"), "json": b"{}"}),
           ("broken", {"jpg": b"\xff\xd8 not a jpeg", "json": b"{}"}),
           ("no-image", {"json": b'{"only": "json"}'})],
        "shard-000001": [(f"b{i}", {"jpg": jpeg(100 + i), "json": json.dumps({"i": i}).encode()}) for i in range(6)],
    }
    for name, samples in shards.items():
        write_shard(folder / f"{name}.tar", samples)
    return shards


def archive_corpus(inputs: Path, out: str, codec, *, lossless: bool = False, group_rows: int = 2,
                   storage=None) -> None:
    """Archive every tar under ``inputs`` into ``out`` one shard at a time, as each compress worker does
    (``encode.encoding.compress_shard``: Parquet, key index, stats marker), with row groups of ``group_rows``."""
    from pipeline.encode.encoding import EncodeSettings, compress_shard
    from pipeline.encode.keeping import Policy
    from pipeline.io.storage import Storage
    from pipeline.records.archive import RowGroups

    settings = EncodeSettings(batch_size=4, row_groups=RowGroups(rows=group_rows), policy=Policy(lossless=lossless))
    for tar in sorted(inputs.glob("*.tar")):
        compress_shard(codec, str(tar), out, settings, storage or Storage())
