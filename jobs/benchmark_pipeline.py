"""Pipeline throughput, side by side in one run: the compress and decompress jobs against the bare codec
in a process pool and against the peer a user would write with Ray Data.

    python jobs/benchmark_pipeline.py --photos ../shared/data/train --images 1000 --shards 8 --json out.json
    python jobs/benchmark_pipeline.py --images 48 --shards 2           # a quick check (synthetic photos)

On the same shards (photos downscaled to --side px, JPEG, packed in --shards WebDataset shards):
  compress   the job at the default codec and its default options, all CPUs, planned as it plans itself;
             bare: the same AVIF encode (``avif_base.encode_base`` at the codec's resolved settings) of each
             image read from the shards, in a process pool of one process per CPU, no Ray;
             peer: Ray Data, ``read_webdataset`` -> ``map_batches`` (the same encode) -> ``write_parquet``
             (bare runs before and after the job and the peer: the ratios use the mean, against load drift)
  decompress the job to WebDataset and to PNG from the job's archive; bare: each archived bitstream through
             ``codec.decode`` (AVIF decode + the network, one torch thread per process) and the output's encode
             (the restored JPEG for WebDataset, PNG for PNG) in a process pool, no Ray
Every figure is wall time from the call to the last output, Ray already started (its start-up is
not timed; the jobs' actor start-up and codec loading are). One run of each; print, and --json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
from PIL import Image

from jobs import compress, decompress
from jobs.make_shards import pack
from jobs.synthetic import synthetic_photo
from model import IMAGE_EXTENSIONS, load_codec, load_image
from model.codecs.avif_base import base_settings, encode_base
from pipeline.decode.restore import FORMAT_OPTIONS, PIXEL_FORMATS
from pipeline.io.shards import Sample, ShardReader, expand_inputs
from pipeline.io.storage import Storage

QUALITY = 30  # the compress job's default (cdc-avif's quality option)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark_pipeline.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default=None, help="folder of photos to shard (default: synthetic photos)")
    p.add_argument("--input", default=None, help="or shards to use as they are")
    p.add_argument("--images", type=int, default=48, help="photos to take, the first by name (default 48)")
    p.add_argument("--side", type=int, default=512, help="downscale photos to at most this many px (default 512)")
    p.add_argument("--shards", type=int, default=2, help="shards to pack them in (default 2)")
    p.add_argument("--codec", default=compress.DEFAULT_CODEC, help=f"codec (default {compress.DEFAULT_CODEC})")
    p.add_argument("--cpus", type=int, default=None, help="CPUs for every side (default: all)")
    p.add_argument("--skip-decompress", action="store_true", help="compress only")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def make_shards(folder: Path, photos: str | None, n_images: int, side: int, n_shards: int) -> str:
    rng = np.random.default_rng(0)
    files = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n_images] \
        if photos else [None] * n_images
    samples = []
    for i, path in enumerate(files):
        img = Image.open(path).convert("RGB") if path else Image.fromarray(synthetic_photo(rng, side * 3 // 4, side))
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        samples.append(Sample(f"img{i:06d}", {"jpg": buf.getvalue()}))
    pack(samples, str(folder), n_shards, "shard-", Storage())
    return str(folder)


# ----- bare: a process pool, no Ray ---------------------------------------------------------------
def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _bare_encode_shard(url: str, quality: int, settings) -> int:
    n = 0
    for sample in ShardReader(url, Storage()):
        member = sample.image_member(IMAGE_EXTENSIONS)
        if member:
            encode_base(load_image(sample.members[member]).rgb, quality, settings)
            n += 1
    return n


_CODEC = None


def _bare_decode_file(path: str, codec_name: str, fmt: str) -> int:
    global _CODEC
    if _CODEC is None:
        _one_thread()
        _CODEC = load_codec(codec_name)
    n = 0
    for row in pq.read_table(path, columns=["bitstream", "stored_as", "member"]).to_pylist():
        if row["stored_as"] != "codec":
            continue
        image = _CODEC.decode([row["bitstream"]])[0]
        target = "PNG" if fmt == "png" else PIXEL_FORMATS.get(row["member"], "PNG")
        image.save(io.BytesIO(), format=target, **FORMAT_OPTIONS.get(target, {}))
        n += 1
    return n


def bare(fn, items: list, cpus: int, *args) -> dict:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(cpus) as pool:
        n = sum(pool.map(fn, items, *([a] * len(items) for a in args)))
    seconds = time.perf_counter() - t0
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds}


# ----- the Ray Data peer --------------------------------------------------------------------------
def ray_data_peer(shards: list[str], out: Path, quality: int, settings, cpus: int) -> dict:
    import ray.data

    def encode(batch: dict) -> dict:
        return {"key": batch["__key__"],
                "avif": np.array([encode_base(np.asarray(im), quality, settings) for im in batch["jpg"]],
                                 dtype=object)}

    t0 = time.perf_counter()
    ds = ray.data.read_webdataset(shards).map_batches(encode, batch_size=16, num_cpus=1)
    ds.write_parquet(str(out))
    seconds = time.perf_counter() - t0
    n = pq.read_table(str(out), columns=["key"]).num_rows
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds}


# ----- the jobs -----------------------------------------------------------------------------------
def job(main, argv: list[str], manifest: Path) -> dict:
    t0 = time.perf_counter()
    rc = main([*argv, "--no-progress"])
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"benchmark job failed (exit {rc}): {argv}")
    counts = json.loads(manifest.read_text())["counts"]
    n = counts.get("ok", counts["rows"] - counts.get("errors", 0))
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds}


def line(name: str, fig: dict, ref: dict | None = None, peer: dict | None = None) -> str:
    text = f"{name:<28}{fig['images_per_s']:8.2f} img/s  ({fig['images']} images in {fig['seconds']:.1f}s)"
    if ref:
        text += f"  {fig['images_per_s'] / ref['images_per_s']:.2f}x bare"
    if peer:
        text += f", {fig['images_per_s'] / peer['images_per_s']:.2f}x Ray Data"
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cpus = args.cpus or os.cpu_count() or 1
    codec = load_codec(args.codec).with_presets(quality=QUALITY) if args.codec.startswith("cdc-avif") \
        else load_codec(args.codec)
    options = codec.resolve_options("encode", {})
    settings = base_settings(options.get("effort") or "fast", options.get("speed"), options.get("subsampling"),
                             options.get("tune"))
    figures: dict = {"codec": codec.codec_id, "options": {k: v for k, v in options.items() if v is not None},
                     "cpus": cpus}
    with tempfile.TemporaryDirectory(prefix="diffarc-bench-") as tmp:
        tmp = Path(tmp)
        source = args.input or make_shards(tmp / "shards", args.photos, args.images, args.side, args.shards)
        shards = expand_inputs(source, Storage())
        print(f"{codec.codec_id} {figures['options']}; {len(shards)} shards; {cpus} CPUs", flush=True)
        ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False)
        try:
            c = figures["compress"] = {}
            c["bare"] = bare(_bare_encode_shard, shards, cpus, QUALITY, settings)
            print(line("compress, bare pool", c["bare"]), flush=True)
            c["job"] = job(compress.main, ["--input", source, "--output", str(tmp / "archive"), "--codec", args.codec,
                                           "--quality", str(QUALITY)], tmp / "archive" / "_manifest.json")
            c["peer"] = ray_data_peer(shards, tmp / "peer", QUALITY, settings, cpus)
            # bare again: on a shared machine the load drifts; the ratios take the mean of both
            again = bare(_bare_encode_shard, shards, cpus, QUALITY, settings)
            print(line("compress, bare pool again", again), flush=True)
            c["bare"] = {**c["bare"], "images_per_s_after": again["images_per_s"],
                         "images_per_s": (c["bare"]["images_per_s"] + again["images_per_s"]) / 2}
            print(line("compress, Ray Data peer", c["peer"], c["bare"]), flush=True)
            print(line("compress job", c["job"], c["bare"], c["peer"]), flush=True)
            if not args.skip_decompress:
                d = figures["decompress"] = {}
                files = sorted(str(p) for p in (tmp / "archive").glob("*.parquet"))
                for fmt in ("webdataset", "png"):
                    d[f"bare_{fmt}"] = bare(_bare_decode_file, files, cpus, args.codec, fmt)
                    print(line(f"decompress {fmt}, bare pool", d[f"bare_{fmt}"]), flush=True)
                    out = tmp / f"decoded-{fmt}"
                    d[f"job_{fmt}"] = job(decompress.main, ["--input", str(tmp / "archive"), "--output", str(out),
                                                            "--format", fmt], out / "_manifest.json")
                    print(line(f"decompress job, {fmt}", d[f"job_{fmt}"], d[f"bare_{fmt}"]), flush=True)
        finally:
            ray.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
