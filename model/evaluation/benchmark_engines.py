"""cdc-avif's decode engines on held-out photos: CPU seconds per megapixel, PSNR and SSIMULACRA2 against
eager torch, per weights (or decode preset) and engine. One run, one process, one thread.

    python -m model.evaluation.benchmark_engines --out results/engines
    python -m model.evaluation.benchmark_engines --codecs cdc-avif-mse:realism --engines torch onnx --photos 2

Each photo (the ``--holdout-every`` slice of ``--data``, spread over the sorted names, downscaled to
``--size`` px) is encoded once with the codec's defaults, then decoded by every engine; the first
decode of an engine (export, quantisation, session) is left out of the timing and reported as setup.
CPU seconds (``time.process_time``), not wall seconds: the machine may be shared; each figure is the
median of ``--rounds`` rounds interleaved over every codec and engine (a shared machine's slow spells
moved single rounds by up to 40 %).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.imagefiles.pixels import held_out

from ..codecs.base_layer import read_base_payload
from ..format import unpack
from ..registry import load_codec
from .inputs import load_images
from .metrics import psnr, ssimulacra2

DEFAULT_CODECS = ("cdc-avif-mse", "cdc-avif-mse:realism", "cdc-avif-mse:fastest")
DEFAULT_ENGINES = ("torch", "onnx", "torch-bf16", "onnx-int8")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--codecs", nargs="+", default=list(DEFAULT_CODECS), help="NAME or NAME:PRESET (a decode preset)")
    p.add_argument("--engines", nargs="+", default=list(DEFAULT_ENGINES), help="the first is the reference")
    p.add_argument("--data", default="../shared/data/train", help="photos; only the held-out slice is read")
    p.add_argument("--holdout-every", type=int, default=10, help="the slice training leaves out (1 in N by name hash)")
    p.add_argument("--photos", type=int, default=8)
    p.add_argument("--size", type=int, default=512, help="longest side after downscaling")
    p.add_argument("--quality", type=int, default=None, help="AVIF quality of the base (default: the codec's)")
    p.add_argument("--rounds", type=int, default=3, help="timed decodes of every photo per engine (median shown)")
    p.add_argument("--out", default=None, help="folder for table.md and engines.json")
    return p


def bench(specs: list[str], engines: list[str], photos: list[np.ndarray], quality: int | None = None,
          rounds: int = 3) -> list[dict]:
    """A row per (codec spec, engine): CPU s/MP (the median round, and the fastest and slowest), PSNR and
    SSIMULACRA2, and each against the spec's first engine."""
    runs = timed_decodes(specs, engines, photos, quality, rounds)
    return [row for spec in specs for row in spec_rows([r for r in runs if r["spec"] == spec], photos)]


def timed_decodes(specs, engines, photos, quality, rounds) -> list[dict]:
    """Every (spec, engine)'s decodes of the photos, timed ``rounds`` times, the rounds interleaved over all
    specs and engines (round 1: each in turn, then round 2, ...), so a slow spell of a shared machine falls
    on every column alike."""
    runs = []
    for spec in specs:
        name, _, preset = spec.partition(":")
        codec = load_codec(name)
        blobs = [codec.encode([rgb], **({} if quality is None else {"quality": quality}))[0] for rgb in photos]
        for engine in engines:
            options = {**(codec.preset_options(preset) if preset else {}), "engine": engine}
            cpu = time.process_time()
            codec.decode(blobs[:1], **options)  # export, quantisation, session: once per weights and engine
            runs.append({"spec": spec, "engine": engine, "codec": codec, "options": options, "blobs": blobs,
                         "setup": time.process_time() - cpu, "seconds": [], "decoded": None})
    for _ in range(rounds):
        for run in runs:
            cpu, decoded = time.process_time(), []
            for blob in run["blobs"]:
                decoded.append(np.asarray(run["codec"].decode([blob], **run["options"])[0]))
            run["seconds"].append(time.process_time() - cpu)
            run["decoded"] = run["decoded"] or decoded  # the decodes are deterministic: keep one round's
    return runs


def spec_rows(runs: list[dict], photos: list[np.ndarray]) -> list[dict]:
    """The rows of one spec's runs (its engines), the first engine the reference."""
    megapixels = sum(rgb.shape[0] * rgb.shape[1] for rgb in photos) / 1e6
    rows = [{"codec": r["spec"], "engine": r["engine"],
             "ran": r["codec"].resolve_options("decode", r["options"])["engine"],
             "cpu_s_per_mp": float(np.median(r["seconds"])) / megapixels,
             "cpu_s_per_mp_range": [min(r["seconds"]) / megapixels, max(r["seconds"]) / megapixels],
             "first_decode_cpu_s": r["setup"],
             "psnr": float(np.mean([psnr(a, b) for a, b in zip(photos, r["decoded"])])),
             "ssimulacra2": float(np.mean([ssimulacra2(a, b) for a, b in zip(photos, r["decoded"])]))}
            for r in runs]
    blobs = runs[0]["blobs"]
    around = around_the_network(blobs, photos)
    bases = [np.asarray(read_base_payload(unpack(b).strings[0], *p.shape[:2], "benchmark").rgb)
             for b, p in zip(blobs, photos)]
    # the AVIF base alone: what the network adds is each decode's PSNR above it
    base = {"base_psnr": float(np.mean([psnr(a, b) for a, b in zip(photos, bases)])),
            "base_ssimulacra2": float(np.mean([ssimulacra2(a, b) for a, b in zip(photos, bases)]))}
    ref = rows[0]
    for row in rows:
        row.update(around, **base)
        # the network's CPU time against the CPU work around it (AVIF decode + PNG): on a GPU node the
        # CPUs still do the latter, so this ratio over the GPU's speed-up on the network sizes workers per GPU
        row["network_vs_around"] = (row["cpu_s_per_mp"] - around["avif_decode_s_per_mp"]) / sum(around.values())
        row.update(speed_vs_ref=row["cpu_s_per_mp"] / ref["cpu_s_per_mp"], d_psnr=row["psnr"] - ref["psnr"],
                   d_ssimulacra2=row["ssimulacra2"] - ref["ssimulacra2"])
    return rows


def around_the_network(blobs: list[bytes], photos: list[np.ndarray]) -> dict:
    """CPU s/MP of what a decode does besides the network: the AVIF base's decode, and a PNG of the result."""
    pixels = sum(rgb.shape[0] * rgb.shape[1] for rgb in photos)
    cpu = time.process_time()
    for blob, rgb in zip(blobs, photos):
        read_base_payload(unpack(blob).strings[0], *rgb.shape[:2], "benchmark")
    avif = time.process_time() - cpu
    cpu = time.process_time()
    for rgb in photos:
        Image.fromarray(rgb).save(io.BytesIO(), format="PNG")
    return {"avif_decode_s_per_mp": avif / pixels * 1e6, "png_s_per_mp": (time.process_time() - cpu) / pixels * 1e6}


def against_codec_eager(rows: list[dict]) -> None:
    """Each row against today's decode of the same bitstreams: the plain codec (no preset) on the first
    engine, where the run has it. A preset naming another ``decoder`` is a faster or different decode
    of those bytes, so its cost is the ratio to that, not to its own network's eager time."""
    refs = {r["codec"]: r for r in rows if ":" not in r["codec"] and r["engine"] == rows[0]["engine"]}
    for row in rows:
        ref = refs.get(row["codec"].partition(":")[0])
        if ref is not None:
            row.update(speed_vs_codec=row["cpu_s_per_mp"] / ref["cpu_s_per_mp"],
                       d_psnr_vs_codec=row["psnr"] - ref["psnr"],
                       d_ssimulacra2_vs_codec=row["ssimulacra2"] - ref["ssimulacra2"])


def table(rows: list[dict]) -> str:
    head = ("| codec (preset) | engine | CPU s/MP (rounds' range) | x eager | x codec eager | PSNR dB (AVIF base) | ΔPSNR | Δ codec |"
            " SSIMULACRA2 (AVIF base) | ΔSSIMULACRA2 | Δ codec | first decode CPU s | network / (AVIF decode + PNG) |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")

    def vs(r, key, fmt):  # blank where the run has no plain-codec reference
        return format(r[key], fmt) if key in r else ""

    def cpu(r):  # the median round (the fastest-slowest)
        lo, hi = r["cpu_s_per_mp_range"]
        return f"{r['cpu_s_per_mp']:.3f} ({lo:.2f}-{hi:.2f})"

    return head + "".join(
        f"| {r['codec']} | {r['ran']} | {cpu(r)} | {r['speed_vs_ref']:.2f} | {vs(r, 'speed_vs_codec', '.2f')} | {r['psnr']:.3f} ({r['base_psnr']:.3f}) | {r['d_psnr']:+.3f} | "
        f"{vs(r, 'd_psnr_vs_codec', '+.3f')} | {r['ssimulacra2']:.2f} ({r['base_ssimulacra2']:.2f}) | {r['d_ssimulacra2']:+.2f} | {vs(r, 'd_ssimulacra2_vs_codec', '+.2f')} | "
        f"{r['first_decode_cpu_s']:.1f} | {r['network_vs_around']:.0f} |\n"
        for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    images = load_images(args.data, args.photos, lambda n: held_out(n, args.holdout_every), args.size, spread=True)
    photos = [im.rgb for _, im in images]
    rows = bench(args.codecs, args.engines, photos, args.quality, args.rounds)
    against_codec_eager(rows)
    megapixels = sum(p.shape[0] * p.shape[1] for p in photos) / 1e6
    held = "held-out " if args.holdout_every > 1 else ""  # --holdout-every 1: a folder in no training set
    text = (f"{len(photos)} {held}photos of {args.data} (--holdout-every {args.holdout_every}), at most "
            f"{args.size} px, base quality {args.quality or 'of the codec'} ({megapixels:.2f} MP in all), one thread, "
            f"{platform.processor() or platform.machine()}; deltas against {args.engines[0]} (x eager, Δ: of the same "
            f"network; x codec eager, Δ codec: of the codec's own decode without a preset)\n\n" + table(rows))
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(text)
        (out / "engines.json").write_text(json.dumps({"photos": [n for n, _ in images], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
