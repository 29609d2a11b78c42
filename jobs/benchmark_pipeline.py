"""Pipeline efficiency: bare codec encode vs the full compress job, and decode-job throughput.

    python jobs/benchmark_pipeline.py                          # compress's default codec if shipped, else webp-q75
    python jobs/benchmark_pipeline.py --codec webp-q75 --images 64 --size 512x384
    python jobs/benchmark_pipeline.py --random-init cdc-avif-s # a config's speed before weights exist

On the same images (synthetic photos packed into shards, or --input SHARDS):
  bare encode    codec.encode on preloaded images, batch by batch, one replica with all --cpus
  compress job   jobs/compress.py with one actor holding --cpus: wall time, and steady state
                 (the shards' own seconds, i.e. without actor start-up)
  efficiency     compress-job images/s over bare images/s (steady state; the wall figure too);
                 bare is timed before and after the job and averaged, against load drift
  decode job     jobs/decompress.py at each --decode-steps, wall and steady state
Ray start-up is not timed. Figures are printed and, with --json, written to a file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
from PIL import Image

from jobs import compress, decompress
from jobs.make_shards import pack
from jobs.synthetic import synthetic_photo
from model import IMAGE_EXTENSIONS, list_codecs, load_codec, load_image
from pipeline.shards import Sample, ShardReader, expand_inputs
from pipeline.storage import Storage


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark_pipeline.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default=None, help="codec name or .safetensors path, at its own options (default "
                                                  f"{compress.DEFAULT_CODEC}, quality 30, if shipped, else webp-q75)")
    p.add_argument("--random-init", default=None, metavar="CONFIG",
                   help="benchmark a randomly initialised model of this config (cdc-avif-s, hyperprior-s...) instead")
    p.add_argument("--input", default=None, help="shards to use (default: synthetic photos)")
    p.add_argument("--images", type=int, default=48, help="synthetic images (default 48)")
    p.add_argument("--size", default="512x384", help="synthetic image size WxH (default 512x384)")
    p.add_argument("--shards", type=int, default=2, help="synthetic shards (default 2; per-shard fixed costs weigh on small shards)")
    p.add_argument("--batch-size", type=int, default=8, help="images per codec call (default 8)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs for the codec replica (default: all)")
    p.add_argument("--decode-steps", type=int, nargs="*", default=[1, 8], help="decode steps to time (default 1 8)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def default_codec() -> str:
    """The compress job's default codec (at its own quality, 30) where its weights are here."""
    names = {c.name for c in list_codecs()}
    return compress.DEFAULT_CODEC if compress.DEFAULT_CODEC in names else "webp-q75"


def random_init_weights(config: str, folder: Path) -> str:
    """Save a random-init model of ``config`` as weights: same compute as trained weights."""
    from model import random_codec
    from model.nn.weights_file import save_weights  # writing weights: the benchmark only, never the pipeline

    path = folder / f"{config}-random.safetensors"
    save_weights(random_codec(config).model, path, {"name": f"{config}-random"})
    return str(path)


def synthetic_shards(folder: Path, n_images: int, size: str, n_shards: int) -> str:
    w, h = (int(v) for v in size.lower().split("x"))
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n_images):
        img = Image.fromarray(synthetic_photo(rng, h, w))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        samples.append(Sample(f"bench{i:05d}", {"jpg": buf.getvalue(), "txt": b"benchmark"}))
    pack(samples, str(folder), n_shards, "shard-", Storage())
    return str(folder)


def bare_encode(codec_name: str, shards: list[str], batch_size: int, threads: int) -> dict:
    images = [load_image(s.members[m]) for url in shards for s in ShardReader(url, Storage())
              if (m := s.image_member(IMAGE_EXTENSIONS))]
    codec = load_codec(codec_name)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    codec.encode(images[:batch_size])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(images), batch_size):
        codec.encode(images[i : i + batch_size])
    seconds = time.perf_counter() - t0
    return {"images": len(images), "seconds": seconds, "images_per_s": len(images) / seconds}


def timed_job(main, argv: list[str], manifest_path: Path) -> dict:
    t0 = time.perf_counter()
    rc = main([*argv, "--no-progress"])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"benchmark job failed (exit {rc}): {argv}")
    manifest = json.loads(manifest_path.read_text())
    rows, steady = manifest["counts"]["rows"], manifest["timings"]["shard_seconds"]
    return {"images": rows, "wall_s": wall, "images_per_s_wall": rows / wall,
            "steady_s": steady, "images_per_s": rows / steady}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cpus = args.cpus or max(1, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="diffarc-bench-") as tmp:
        tmp = Path(tmp)
        codec = random_init_weights(args.random_init, tmp) if args.random_init else (args.codec or default_codec())
        source = args.input or synthetic_shards(tmp / "shards", args.images, args.size, args.shards)
        shards = expand_inputs(source, Storage())
        print(f"codec {codec}; {len(shards)} shards; batch {args.batch_size}; {cpus} CPUs for one replica", flush=True)

        bare = bare_encode(codec, shards, args.batch_size, cpus)
        print(f"bare encode:   {bare['images_per_s']:8.2f} img/s  ({bare['images']} images in {bare['seconds']:.2f}s)", flush=True)

        ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False)
        common = ["--actors", "1", "--cpus-per-actor", str(cpus), "--batch-size", str(args.batch_size)]
        job = timed_job(compress.main, ["--input", source, "--output", str(tmp / "archive"), "--codec", codec, *common],
                        tmp / "archive" / "_manifest.json")
        # Bare again after the job: on a shared machine the load drifts; compare with the mean.
        again = bare_encode(codec, shards, args.batch_size, cpus)
        print(f"bare encode:   {again['images_per_s']:8.2f} img/s  (again, after the job)", flush=True)
        bare = {**bare, "images_per_s_after": again["images_per_s"],
                "images_per_s_mean": (bare["images_per_s"] + again["images_per_s"]) / 2}
        efficiency = job["images_per_s"] / bare["images_per_s_mean"]
        print(f"compress job:  {job['images_per_s']:8.2f} img/s steady, {job['images_per_s_wall']:.2f} img/s wall "
              f"(incl. actor start-up, {job['wall_s']:.1f}s)", flush=True)
        print(f"efficiency:    {efficiency:8.3f} steady (job / mean bare), "
              f"{job['images_per_s_wall'] / bare['images_per_s_mean']:.3f} wall")
        decode = {}
        for steps in args.decode_steps:
            out = tmp / f"decoded-{steps}"
            weights = ["--weights-dir", str(tmp)] if args.random_init else []
            decode[steps] = timed_job(decompress.main, ["--input", str(tmp / "archive"), "--output", str(out),
                                                        "--steps", str(steps), *weights, *common], out / "_manifest.json")
            print(f"decode job, steps {steps}: {decode[steps]['images_per_s']:8.2f} img/s steady, "
                  f"{decode[steps]['images_per_s_wall']:.2f} img/s wall", flush=True)
        ray.shutdown()
    figures = {"codec": codec, "cpus": cpus, "batch_size": args.batch_size, "bare_encode": bare, "compress_job": job,
               "efficiency_steady": efficiency, "efficiency_wall": job["images_per_s_wall"] / bare["images_per_s_mean"],
               "decode_job": {str(k): v for k, v in decode.items()}}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
