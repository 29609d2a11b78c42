"""Codec benchmark: parameters, MMAC per pixel per decoder step, encode and decode seconds.

    python -m model.evaluation.benchmark           # cdc-s, hyperprior-s, cdc-paper: 768x512, this machine
    python -m model.evaluation.benchmark --configs cdc-s --steps 1 8 --repeats 1
    python -m model.evaluation.benchmark --configs cdc-avif-s --steps 1 4 8 --repeats 3 \
        --images ../shared/data/kodak --quality 10 --out results/kodak/benchmark.md

Timings do not depend on the weights, so configs are timed with random ones (a shipped cdc-avif
name, e.g. cdc-avif-mse, loads its weights). MACs are counted with forward hooks on convolutions,
linear layers and attention. cdc-avif (``benchmark_avif``) is measured against AVIF itself:
encode time over the AVIF encode alone, AVIF's decode time, and with ``--images`` the container's
bytes against the AVIF file's over that set. Prints markdown tables; ``--out`` also writes them.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import torch

from pathlib import Path

from ..registry import get_family, load_codec
from ..zoo import named_sizes, random_codec
from .benchmark_avif import bench_restoration, container_overhead, restoration_codec
from .network_cost import count_macs, timed
from .inputs import load_images


def bench_config(name: str, height: int, width: int, steps: list[int], repeats: int) -> dict:
    codec = random_codec(name)
    model = codec.model
    params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    enc_s = timed(lambda: codec.encode([image]), repeats)
    blob = codec.encode([image])[0]
    row = {"config": name, "params_M": params / 1e6, "encode_s": enc_s, "bytes": len(blob)}
    if model.stochastic_decoder:
        y = torch.zeros(1, model.cfg.latent.latent_channels, height // 16, width // 16)
        x = torch.zeros(1, 3, height, width)
        maps = model.unet.context(y)  # once per decode, not per step: outside the count
        step = count_macs(model.unet, lambda: model.unet(x, torch.ones(1), maps))
        row["mmac_px_step"] = step / (height * width) / 1e6
        for s in steps:
            row[f"decode_s@{s}"] = timed(lambda: codec.decode([blob], steps=s), repeats)
    else:
        row["decode_s"] = timed(lambda: codec.decode([blob]), repeats)
    return row


def bench_large(name: str, height: int, width: int, steps: int) -> dict:
    """Encode + decode one large image; peak resident memory shows the tiling bound."""
    codec = random_codec(name)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    blob = codec.encode([image])[0]
    t1 = time.perf_counter()
    out = codec.decode([blob], steps=steps)[0]
    t2 = time.perf_counter()
    assert out.size == (width, height)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": name, "size": f"{width}x{height}", "steps": steps, "encode_s": t1 - t0,
            "decode_s": t2 - t1, "peak_rss_MiB": peak_mib}


def is_cdc_avif(name: str) -> bool:
    """A config or codec name whose family builds on an AVIF base layer: benchmarked against AVIF
    (``benchmark_avif``)."""
    sizes = named_sizes()
    family = sizes[name].family if name in sizes else load_codec(name).family
    return get_family(family).evaluation.base_layer == "avif"


def markdown_table(rows: list[dict]) -> str:
    """Rows as one markdown table over the union of their keys ('-' where a row has none)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]) + "\n"


def timing_image(images: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """The first image resized to width x height (a photo: AVIF's speed depends on content), else noise."""
    from PIL import Image

    if not images:
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(images[0]).resize((width, height), Image.Resampling.LANCZOS))


def bench_cdc_avif(names: list[str], args) -> list[str]:
    """The cdc-avif tables: cost at ``--size``, and container overhead over ``--images``."""
    images = [im.rgb for _, im in load_images(args.images, args.limit)] if args.images else []
    codecs = [restoration_codec(n) for n in names]
    image = timing_image(images, *args.size)
    cost = [bench_restoration(c, image, args.steps, args.repeats, args.quality) for c in codecs]
    tables = [f"## cdc-avif cost per image (AVIF quality {args.quality})", "", markdown_table(cost)]
    if images:
        overhead = [container_overhead(c, images, args.quality) for c in codecs]
        tables += [f"## Container against the AVIF file, {len(images)} images of {args.images}", "",
                   markdown_table(overhead)]
    return tables


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["cdc-s", "hyperprior-s", "cdc-paper"],
                   help="configs (random weights) or shipped cdc-avif names")
    p.add_argument("--size", nargs=2, type=int, default=[512, 768], metavar=("H", "W"))
    p.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--large", action="store_true",
                   help="instead: one 6000x4000 round trip at the first --steps value, with peak memory")
    p.add_argument("--quality", type=int, default=10, help="cdc-avif: AVIF quality of the base layer")
    p.add_argument("--images", help="cdc-avif: folder (or shards) for the container overhead, e.g. "
                   "../shared/data/kodak; its first image, resized to --size, is the timing image")
    p.add_argument("--limit", type=int, help="cdc-avif: only the first N of --images")
    p.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size
    header = (f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, image {w}x{h}")
    print(header, flush=True)
    rows = []
    for name in (n for n in args.configs if not is_cdc_avif(n)):
        rows.append(bench_large(name, 4000, 6000, args.steps[0]) if args.large
                    else bench_config(name, h, w, args.steps, args.repeats))
    tables = [header, ""] + (["## Neural codecs", "", markdown_table(rows)] if rows else [])
    avif_names = [n for n in args.configs if is_cdc_avif(n)]
    if avif_names and not args.large:
        tables += bench_cdc_avif(avif_names, args)
    text = "\n".join(tables)
    print(text[len(header) + 1 :])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
