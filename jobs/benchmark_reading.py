"""Reading an archive in place against reading the original JPEGs: a DataLoader, Ray Data, one key.

    python jobs/benchmark_reading.py --photos ../shared/data/train --images 48 --json results/reading/figures.json

Held-out photos (training's --holdout-every 10 slice, the first --images by name) downscaled to --side
px, saved as JPEG q90 and packed in --shards WebDataset shards, archived twice by the compress job:
with the default codec, and with --lossless (every JPEG kept as JPEG XL, its file back byte for byte).

  (a) images/s into a torch DataLoader (2 workers, batch 8, each image made an RGB uint8 tensor):
      ArchiveDataset over the codec archive (decoded at --steps on CPU), over the JPEG XL archive, and the
      webdataset library's own WebDataset loader over the original shards, decoding with Pillow;
      wall seconds, and CPU seconds of this process and its workers
  (b) to the last row: read_archive (Ray Data read_parquet + the decode stage) against the decompress
      job writing WebDataset tars, then ray.data.read_webdataset over them (wall seconds)
  (c) one key at a time, local and on a moto S3 server on loopback: open_archive (listing, markers,
      key indexes), then per key the index lookup, the row group read and the decode (median, ms)

One run of each; prints the figures and, with --json, writes them. Needs the dev extra (moto).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from PIL import Image

from jobs import compress, decompress
from jobs.make_shards import pack
from pipeline.imagefiles.pixels import held_out
from pipeline.io.shards import Sample
from pipeline.io.storage import Storage
from pipeline.read.archive import open_archive
from pipeline.read.dataset import ArchiveDataset, ArchiveLoader
from pipeline.read.ray_data import read_archive

WORKERS, BATCH = 2, 8


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark_reading.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, help="folder of photos (the held-out slice is taken)")
    p.add_argument("--holdout-every", type=int, default=10, help="training's --holdout-every (default 10)")
    p.add_argument("--images", type=int, default=48, help="held-out photos to take, the first by name (default 48)")
    p.add_argument("--side", type=int, default=512, help="downscale photos to at most this many px (default 512)")
    p.add_argument("--shards", type=int, default=2, help="shards to pack them in (default 2)")
    p.add_argument("--steps", type=int, default=1, help="decode steps of the default codec (default 1)")
    p.add_argument("--keys", type=int, default=8, help="keys timed one at a time in (c) (default 8)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def make_shards(folder: Path, photos: str, every: int, n: int, side: int, n_shards: int) -> list[str]:
    files = sorted(p for p in Path(photos).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png") and held_out(p.name, every))[:n]
    samples = []
    for path in files:
        img = Image.open(path).convert("RGB")
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        samples.append(Sample(path.stem, {"jpg": buf.getvalue(), "json": json.dumps({"file": path.name}).encode()}))
    pack(samples, str(folder), n_shards, "shard-", Storage())
    return sorted(str(p) for p in folder.glob("*.tar"))


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


def _webdataset_sample(sample: tuple) -> dict:
    key, img = sample
    return {"key": key, "image": to_tensor(img)}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_loader(loader) -> dict:
    """Images/s through ``loader`` (wall and CPU: the workers are joined, so their time is counted)."""
    t0, c0, n = time.perf_counter(), cpu_seconds(), 0
    for batch in loader:
        n += len(batch["key"])
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"images": n, "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 2),
            "cpu_seconds": round(cpu, 2), "cpu_ms_per_image": round(1000 * cpu / max(n, 1), 1)}


def dataloaders(archive: str, lossless: str, shards: list[str], steps: int) -> dict:
    import webdataset as wds

    out = {}
    ds = ArchiveDataset(archive, transform=to_tensor, steps=steps)
    out["archive_codec"] = timed_loader(ArchiveLoader(ds, batch_size=BATCH, num_workers=WORKERS))
    ds = ArchiveDataset(lossless, transform=to_tensor)
    out["archive_jpeg_xl"] = timed_loader(ArchiveLoader(ds, batch_size=BATCH, num_workers=WORKERS))
    wd = wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("pil").to_tuple("__key__", "jpg") \
        .map(_webdataset_sample)
    keys_only = lambda samples: {"key": [x["key"] for x in samples]}  # noqa: E731  (the images are made, not kept)
    out["webdataset_jpeg"] = timed_loader(torch.utils.data.DataLoader(wd, batch_size=BATCH, num_workers=WORKERS,
                                                                      collate_fn=keys_only))
    return out


def ray_to_last_row(archive: str, tmp: Path, steps: int) -> dict:
    import ray.data

    t0 = time.perf_counter()
    n = sum(len(b["key"]) for b in read_archive(archive, steps=steps).iter_batches(batch_size=BATCH))
    in_place = {"images": n, "seconds": round(time.perf_counter() - t0, 2)}
    t0 = time.perf_counter()
    rc = decompress.main(["--input", archive, "--output", str(tmp / "decoded"), "--steps", str(steps), "--no-progress"])
    if rc != 0:
        raise SystemExit(f"decompress failed (exit {rc})")
    decoded = time.perf_counter() - t0
    tars = sorted(str(p) for p in (tmp / "decoded").glob("*.tar"))
    n = sum(len(b["__key__"]) for b in ray.data.read_webdataset(tars).iter_batches(batch_size=BATCH))
    return {"read_archive": in_place, "decompress_then_read_webdataset": {
        "images": n, "seconds": round(time.perf_counter() - t0, 2), "decompress_seconds": round(decoded, 2)}}


def one_key(url: str, keys: list[str], steps: int, **storage) -> dict:
    t0 = time.perf_counter()
    archive = open_archive(url, steps=steps, **storage)
    opened = time.perf_counter() - t0
    t0 = time.perf_counter()
    archive.image(keys[0])  # loads the codec: each process does it once (reported apart)
    first = time.perf_counter() - t0
    parts = {f"{part}_{clock}": [] for part in ("lookup", "read", "decode") for clock in ("ms", "cpu_ms")}
    for key in keys:
        marks = [(time.perf_counter(), time.process_time())]
        s, g, r = archive.place(key)
        marks.append((time.perf_counter(), time.process_time()))
        archive.close()  # a cold read: the file opened, its footer and the row group fetched
        row = archive.read_group(s, g)[r]
        marks.append((time.perf_counter(), time.process_time()))
        archive.decoder.image(row, archive.shards[s].url)
        marks.append((time.perf_counter(), time.process_time()))
        for part, before, after in zip(("lookup", "read", "decode"), marks, marks[1:]):
            parts[f"{part}_ms"].append((after[0] - before[0]) * 1000)
            parts[f"{part}_cpu_ms"].append((after[1] - before[1]) * 1000)
    return {"open_ms": round(opened * 1000, 1), "first_image_ms": round(first * 1000, 1),
            **{name: round(statistics.median(v), 3) for name, v in parts.items()}}


def on_moto(archive: str, keys: list[str], steps: int) -> dict:
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
        fs.mkdir("bench")
        fs.put(f"{archive}/", "bench/archive/", recursive=True)
        return one_key("s3://bench/archive", keys, steps, endpoint_url=endpoint)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    figures: dict = {"images": args.images, "side": args.side, "steps": args.steps, "workers": WORKERS,
                     "batch": BATCH, "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="diffarc-reading-") as tmp:
        tmp = Path(tmp)
        shards = make_shards(tmp / "shards", args.photos, args.holdout_every, args.images, args.side, args.shards)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False, logging_level="ERROR")
        try:
            for name, extra in (("archive", []), ("lossless", ["--lossless"])):
                if compress.main(["--input", str(tmp / "shards"), "--output", str(tmp / name), "--no-progress",
                                  *extra]) != 0:
                    raise SystemExit(f"compress {name} failed")
            archive, lossless = str(tmp / "archive"), str(tmp / "lossless")
            figures["bytes"] = {name: sum(p.stat().st_size for p in (tmp / name).glob("*.parquet"))
                                for name in ("shards", "archive", "lossless")}
            figures["bytes"]["shards"] = sum(Path(s).stat().st_size for s in shards)
            figures["a_dataloader"] = dataloaders(archive, lossless, shards, args.steps)
            for name, fig in figures["a_dataloader"].items():
                print(f"(a) {name:<18} {fig['images_per_s']:7.2f} img/s  {fig['cpu_ms_per_image']:8.1f} CPU ms/img  "
                      f"({fig['images']} images, {fig['seconds']}s wall, {fig['cpu_seconds']}s CPU)", flush=True)
            figures["b_ray_data"] = ray_to_last_row(archive, tmp, args.steps)
            for name, fig in figures["b_ray_data"].items():
                print(f"(b) {name:<32} {fig['seconds']:7.2f}s to the last of {fig['images']} rows", flush=True)
        finally:
            ray.shutdown()
        keys = sorted(open_archive(archive).keys())[:: max(1, args.images // args.keys)][: args.keys]
        figures["c_one_key"] = {"local": one_key(archive, keys, args.steps),
                                "moto_s3": on_moto(archive, keys, args.steps)}
        for where, fig in figures["c_one_key"].items():
            print(f"(c) {where:<8} open {fig['open_ms']} ms, first image {fig['first_image_ms']} ms (codec loaded); "
                  f"per key, wall (CPU): lookup {fig['lookup_ms']} ({fig['lookup_cpu_ms']}) ms, read {fig['read_ms']} "
                  f"({fig['read_cpu_ms']}) ms, decode {fig['decode_ms']} ({fig['decode_cpu_ms']}) ms "
                  f"(median of {len(keys)})",
                  flush=True)
    figures["load_average_at_end"] = os.getloadavg()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
