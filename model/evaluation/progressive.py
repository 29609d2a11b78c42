"""Progressive (DiffC) bitstreams against references, on 256x256 crops: every prefix of one
bitstream per image is an RD point, so each bitstream draws one curve.

    python -m model.evaluation.progressive --weights-dir /work/notes/weights --weights cdc-avif-mse \\
        --images ../shared/data/kodak --names kodim04.png,kodim08.png --out results/diffc

Writes points.csv (per image and point), averages.csv, results.json, rd_{psnr,ms_ssim,lpips,lpips_squeeze}.png and
prefixes.png (one crop decoded from successive prefixes of one bitstream). References: ``avif-qN``
and the base-layer codec ``cdc-avif`` (``WEIGHTS``, one-step decode) at the same qualities.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..diffc.stream import truncate
from ..format import bits_per_pixel
from ..registry import load_codec
from ..threads import fixed_threads
from .inputs import load_images
from .metrics import DEFAULT_PERCEPTUAL_DIR, load_lpips, lpips_weight_files, ms_ssim, psnr
from .rd import METRICS, averages, curves
from .report import center_crop, plot_rd
from .sweep import evaluate_codec, lpips_values, setting_label

DECODERS = ({"denoiser": "ode", "steps": 1}, {"denoiser": "ode", "steps": 4}, {"denoiser": "ancestral", "steps": 4})


def metrics(original: np.ndarray, decoded, lpips_models: dict) -> dict:
    rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
    return {"psnr": psnr(original, rgb), "ms_ssim": ms_ssim(original, rgb),
            **lpips_values(lpips_models, original, rgb)}


def prefix_points(codec, name: str, rgb: np.ndarray, encode: dict, lpips_models: dict, keep=None) -> list[dict]:
    """One point per (prefix, decoder) of the bitstream ``codec`` writes for ``rgb``."""
    t0 = time.perf_counter()
    blob, trace = codec.encode_traced(rgb, **encode)
    encode_s = time.perf_counter() - t0
    curve = f"{codec.name}{'-q%d' % encode['quality'] if 'quality' in encode else ''} (one bitstream)"
    points = []
    for k in range(len(trace.states) + 1):
        prefix = truncate(blob, step=k)
        for dec in DECODERS:
            t0 = time.perf_counter()
            decoded = codec.decode([prefix], **dec)[0]
            points.append({
                "image": name, "codec": codec.name, "codec_id": codec.codec_id, "family": codec.family,
                "curve": f"{curve} {setting_label(dec)}", "steps": dec["steps"], "gamma": None,
                "encode": setting_label({**encode, "stop_step": k}), "decode": setting_label(dec),
                "height": rgb.shape[0], "width": rgb.shape[1], "bytes": len(prefix),
                "bpp": bits_per_pixel(prefix, *rgb.shape[:2]), "coded_steps": k,
                "kl_bits": sum(trace.kl_bits[:k]), "chunks": sum(trace.chunks[:k]),
                **metrics(rgb, decoded, lpips_models), "encode_s": encode_s,
                "decode_s": time.perf_counter() - t0,
            })  # fmt: skip
            if keep is not None:
                keep(points[-1], decoded)
    return points


def prefix_figure(tiles: list[tuple[dict, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tiles), figsize=(2.6 * len(tiles), 3.1), dpi=110)
    for ax, (p, image) in zip(np.atleast_1d(axes), tiles):
        ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title(f"{p['coded_steps']} steps\n{p['bpp']:.3f} bpp, {p['psnr']:.2f} dB", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{tiles[0][0]['image']}: prefixes of one {tiles[0][0]['codec']} bitstream "
                 f"({tiles[0][0]['decode']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def encode_times(codec, rgb: np.ndarray, caps: list[int], encode: dict) -> list[dict]:
    """Encode seconds of one crop at each cap_bits (the bound on encode work)."""
    rows = []
    for cap in caps:
        t0 = time.perf_counter()
        blob = codec.encode([rgb], **{**encode, "cap_bits": cap})[0]
        rows.append({"codec": codec.name, "cap_bits": cap, "encode_s": time.perf_counter() - t0,
                     "bpp": bits_per_pixel(blob, *rgb.shape[:2])})
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", default="../shared/data/kodak")
    p.add_argument("--names", default="kodim04.png,kodim08.png,kodim15.png,kodim23.png",
                   help="comma-separated image names; each is centre-cropped to --crop")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--weights", default="cdc-avif-mse", help="cdc-avif weights name")
    p.add_argument("--qualities", default="20,30", help="AVIF qualities of the diffc-avif bitstreams")
    p.add_argument("--reference-qualities", default="10,20,30,40,50,60,70,80")
    p.add_argument("--figure-image", default="kodim23.png")
    p.add_argument("--time-caps", default="8,10", help="cap_bits whose encode time is measured on one crop")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/diffc"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = args.names.split(",")
    images = [(n, replace(im, rgb=center_crop(im.rgb, args.crop).copy()))
              for n, im in load_images(args.images) if n in wanted]
    lpips_models = {net: load_lpips(path, net=net) for net, path in lpips_weight_files(DEFAULT_PERCEPTUAL_DIR).items()}
    qualities = [int(q) for q in args.qualities.split(",")]
    ref_qualities = [int(q) for q in args.reference_qualities.split(",")]
    kw = {"weights_dir": args.weights_dir}
    conditional = load_codec(f"diffc-avif-{args.weights}", **kw)
    unconditional = load_codec(f"diffc-{args.weights}", **kw)
    points, tiles, timing = [], [], []
    with fixed_threads(args.threads):
        for name, im in images:
            def keep(point, decoded, name=name):
                if (name == args.figure_image and point["encode"].startswith(f"quality={qualities[-1]} ")
                        and point["decode"] == setting_label(DECODERS[0])):
                    tiles.append((point, decoded))

            for q in qualities:
                points += prefix_points(conditional, name, im.rgb, {"quality": q}, lpips_models, keep)
            points += prefix_points(unconditional, name, im.rgb, {}, lpips_models)
            print(f"{name}: done", flush=True)
        for ref in [load_codec(f"avif-q{q}") for q in ref_qualities]:
            points += evaluate_codec(ref, images, {}, {}, lpips_models)
        points += evaluate_codec(load_codec(args.weights, **kw), images, {"quality": ref_qualities}, {}, lpips_models)
        figure_rgb = dict(images)[args.figure_image].rgb
        timing += encode_times(conditional, figure_rgb, [int(c) for c in args.time_caps.split(",")],
                               {"quality": qualities[-1]})
        timing += encode_times(unconditional, figure_rgb, [int(c) for c in args.time_caps.split(",")], {})
    rows = averages(points)
    rd = curves(rows)
    for metric in METRICS:
        plot_rd(rd, metric, args.out / f"rd_{metric}.png",
                f"DiffC vs AVIF and cdc-avif: {len(images)} Kodak crops {args.crop}x{args.crop}")
    prefix_figure(tiles, args.out / "prefixes.png")
    write_csv(points, args.out / "points.csv")
    write_csv(rows, args.out / "averages.csv")
    (args.out / "results.json").write_text(json.dumps(
        {"images": [n for n, _ in images], "crop": args.crop, "weights": args.weights, "threads": args.threads,
         "load_average": os.getloadavg(), "encode_time": timing, "averages": rows}, indent=1, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
