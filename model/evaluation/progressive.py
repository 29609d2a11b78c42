"""Progressive (DiffC) bitstreams against references, on 256x256 crops: every prefix of one
bitstream per image is an RD point, so each bitstream draws one curve.

    python -m model.evaluation.progressive --weights cdc-avif-m-prior \\
        --images ../shared/data/kodak --names kodim04.png,kodim08.png --out results/diffc

(``--weights-dir DIR`` looks the weights name up in DIR instead of ``model/weights``.)

Writes points.csv (per image and point), averages.csv, results.json, rd_{psnr,ms_ssim,lpips,lpips_squeeze}.png and
prefixes.png (one crop decoded from successive prefixes of one bitstream). References: ``avif-qN``
and the base-layer codec ``cdc-avif`` (``WEIGHTS``, one-step decode) at the same qualities.

``--musts``: the checks DiffC must pass with the shipped prior (issue 26), on held-out crops and the
default options, nothing else: one table of bpp and PSNR at every prefix of every bitstream (does
PSNR rise at each?), the encode time (wall and CPU seconds), and the BD-rate against AVIF at the
base layer's effort (fast), on PSNR::

    OMP_NUM_THREADS=1 python -m model.evaluation.progressive --musts \
        --images ../shared/data/train --held-out 10 --qualities 40 --out results/diffc/musts
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

from pipeline.imagefiles.pixels import held_out

from ..codecs.diffc import DEFAULT_PRIOR
from ..diffc.stream import truncate
from ..format import bits_per_pixel, unpack
from ..registry import load_codec
from ..threads import fixed_threads
from ..weights import WeightsResolver
from .inputs import load_images
from .extra import pyplot
from .bdrate import bd_rate
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
    plt = pyplot()

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


# ----- the musts (--musts) --------------------------------------------------------------------
def held_out_crops(folder: str, every: int, count: int, crop: int) -> list[tuple[str, np.ndarray]]:
    """``count`` photos of the held-out slice (training's --holdout-every), spread over the sorted
    names (both sources of ../shared/data/train), centre-cropped to ``crop``."""
    images = load_images(folder, count, (lambda name: held_out(name, every)) if every else None, spread=True)
    return [(name, center_crop(im.rgb, crop).copy()) for name, im in images]


def bitstream_prefixes(codec, name: str, rgb: np.ndarray, encode: dict) -> dict:
    """One bitstream of ``codec`` (default options but ``encode``): its encode time and the bpp and
    PSNR of every prefix, decoded with the default decoder."""
    wall, cpu = time.perf_counter(), time.process_time()
    blob = codec.encode([rgb], **encode)[0]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = len(unpack(blob).strings) - len(unpack(truncate(blob, step=0)).strings)
    prefixes = [truncate(blob, step=k) for k in range(steps + 1)]
    decoded, decode_cpu = [], []
    for prefix in prefixes:
        t0 = time.process_time()
        decoded.append(np.asarray(codec.decode([prefix])[0].convert("RGB")))
        decode_cpu.append(time.process_time() - t0)
    psnrs = [psnr(rgb, d) for d in decoded]
    return {"image": name, "bitstream": codec.name + (f"-q{encode['quality']}" if "quality" in encode else ""),
            "encode_s": wall, "encode_cpu_s": cpu, "decode_cpu_s": decode_cpu[-1], "bpp": [bits_per_pixel(b, *rgb.shape[:2]) for b in prefixes],
            "psnr": psnrs, "psnr_rises": all(b > a for a, b in zip(psnrs, psnrs[1:]))}


def mean_curve(rows: list[dict]) -> tuple[list[float], list[float]]:
    """(bpp, PSNR) of each prefix, averaged over images."""
    return [float(np.mean(v)) for v in zip(*(r["bpp"] for r in rows))], \
        [float(np.mean(v)) for v in zip(*(r["psnr"] for r in rows))]


def musts(args) -> dict:
    crops = held_out_crops(args.images, args.held_out, args.count, args.crop)
    kw = {"weights_dir": args.weights_dir}
    options = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.encode)}
    bitstreams = [(load_codec(f"diffc-avif-{args.weights}", **kw), {"quality": q, **options})
                  for q in [int(q) for q in args.qualities.split(",")]]
    bitstreams += [(load_codec(f"diffc-{args.weights}", **kw), options)] if args.unconditional else []
    references = [load_codec(f"avif-q{q}") for q in args.reference_qualities.split(",")]
    rows, avif = [], []
    with fixed_threads(args.threads):
        for name, rgb in crops:
            for codec, encode in bitstreams:
                rows.append(bitstream_prefixes(codec, name, rgb, encode))
                r = rows[-1]
                print(f"{name} {r['bitstream']}: encode {r['encode_s']:.1f} s ({r['encode_cpu_s']:.1f} s CPU), "
                      f"decode {r['decode_cpu_s']:.1f} s CPU, "
                      f"bpp {' '.join(f'{b:.3f}' for b in r['bpp'])}, "
                      f"PSNR {' '.join(f'{v:.2f}' for v in r['psnr'])}, rises: {r['psnr_rises']}", flush=True)
            for ref in references:
                blob = ref.encode([rgb])[0]
                avif.append({"image": name, "quality": ref.presets["quality"],
                             "bpp": bits_per_pixel(blob, *rgb.shape[:2]),
                             "psnr": psnr(rgb, np.asarray(ref.decode([blob])[0].convert("RGB")))})
    ref_bpp = [float(np.mean([a["bpp"] for a in avif if a["quality"] == r.presets["quality"]])) for r in references]
    ref_psnr = [float(np.mean([a["psnr"] for a in avif if a["quality"] == r.presets["quality"]])) for r in references]
    summary = []
    for kind in dict.fromkeys(r["bitstream"] for r in rows):
        mine = [r for r in rows if r["bitstream"] == kind]
        bpp, psnrs = mean_curve(mine)
        summary.append({"bitstream": kind, "crops": len(mine), "mean_bpp": bpp, "mean_psnr": psnrs,
                        "psnr_rises_in_all": all(r["psnr_rises"] for r in mine),
                        "mean_encode_s": float(np.mean([r["encode_s"] for r in mine])),
                        "max_encode_s": max(r["encode_s"] for r in mine),
                        "mean_encode_cpu_s": float(np.mean([r["encode_cpu_s"] for r in mine])),
                        "max_encode_cpu_s": max(r["encode_cpu_s"] for r in mine),
                        "mean_decode_cpu_s": float(np.mean([r["decode_cpu_s"] for r in mine])),
                        "bd_rate_psnr_vs_avif_fast": bd_rate(ref_bpp, ref_psnr, bpp, psnrs)})
    card = WeightsResolver.from_env(args.weights_dir).find(args.weights).card
    result = {"images": [n for n, _ in crops], "held_out_every": args.held_out, "crop": args.crop,
              "weights": args.weights, "codec_ids": sorted({c.codec_id for c, _ in bitstreams}),
              "weights_steps_trained": card.get("steps_trained"), "encode": options, "threads": args.threads,
              "load_average": os.getloadavg(),
              "avif_fast": {"quality": [r.presets["quality"] for r in references], "bpp": ref_bpp, "psnr": ref_psnr},
              "summary": summary, "bitstreams": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "musts.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(musts_table(result))
    return result


def musts_table(result: dict) -> str:
    lines = ["| bitstream | mean bpp at prefixes | mean PSNR dB | PSNR rises (every crop) | encode s: mean / max "
             "(CPU mean / max) | decode CPU s | BD-rate vs AVIF fast (PSNR) |", "|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(f"| {s['bitstream']} | {', '.join(f'{b:.3f}' for b in s['mean_bpp'])} | "
                     f"{', '.join(f'{v:.2f}' for v in s['mean_psnr'])} | {s['psnr_rises_in_all']} | "
                     f"{s['mean_encode_s']:.1f} / {s['max_encode_s']:.1f} ({s['mean_encode_cpu_s']:.1f} / "
                     f"{s['max_encode_cpu_s']:.1f}) | {s['mean_decode_cpu_s']:.1f} | "
                     f"{s['bd_rate_psnr_vs_avif_fast']:+.1f} % |")
    ref = result["avif_fast"]
    lines.append(f"\nAVIF (fast) q{', q'.join(map(str, ref['quality']))}: bpp "
                 f"{', '.join(f'{b:.3f}' for b in ref['bpp'])}; PSNR {', '.join(f'{v:.2f}' for v in ref['psnr'])}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", default="../shared/data/kodak")
    p.add_argument("--names", default="kodim04.png,kodim08.png,kodim15.png,kodim23.png",
                   help="comma-separated image names; each is centre-cropped to --crop")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--weights", default=DEFAULT_PRIOR, help="a cdc-avif prior's weights name")
    p.add_argument("--qualities", default="20,30", help="AVIF qualities of the diffc-avif bitstreams (--musts: "
                   "give one, e.g. 30)")
    p.add_argument("--reference-qualities", default="10,20,30,40,50,60,70,80")
    p.add_argument("--figure-image", default="kodim23.png")
    p.add_argument("--time-caps", default="8,10", help="cap_bits whose encode time is measured on one crop")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/diffc"))
    p.add_argument("--musts", action="store_true", help="only the musts: held-out crops, the default options, "
                   "prefix table, encode time, BD-rate against AVIF (fast); see above")
    p.add_argument("--held-out", type=int, default=10, help="--musts: the held-out slice of --images "
                   "(training's --holdout-every; 0: every image)")
    p.add_argument("--count", type=int, default=4, help="--musts: crops")
    p.add_argument("--encode", nargs="*", default=[], metavar="OPTION=VALUE",
                   help="--musts: encode options other than the defaults, e.g. levels=3 final_log_snr=3.0 cap_bits=9")
    p.add_argument("--unconditional", action=argparse.BooleanOptionalAction, default=True,
                   help="--musts: also the unconditional diffc bitstream")
    args = p.parse_args(argv)
    if args.musts:
        musts(args)
        return
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
