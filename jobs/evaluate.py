"""Rate-distortion evaluation of diffarc codecs on a folder of images, with real bitstreams.

    python -m jobs.evaluate --images ../shared/data/kodak --out results/kodak \\
        --codecs 'jpeg-q{5,10,20,30,45}' 'webp-q{0,10,30,50,70}' cdc-s-q1 hyperprior-s-q1

Per image and codec setting: bpp of the whole container (``model.bits_per_pixel``), PSNR and
MS-SSIM on 8-bit RGB, LPIPS with every network found (``lpips`` is alex, ``lpips_squeeze``
squeeze: one no training loss used), with ``--metrics ...,butteraugli,ssimulacra`` libjxl's
Butteraugli (max-norm and 3-norm) and SSIMULACRA (no training loss uses them), encode and decode
seconds. Sweeps follow the codecs' declared
options: diffusion codecs are decoded at every steps x gamma combination, and an encode option
given as a list (``--quality 10,30,50``) encodes each value separately, one RD point each.
``--images`` is a folder of images or WebDataset shards. Writes to ``--out``:

- ``results.json``: configuration, every point, averages per codec setting, BD-rates, vs-anchor rows
- ``points.csv``, ``averages.csv``, ``bd_rate.csv``: the same as tables; ``bd_rate.md`` in markdown
- ``vs_anchor.csv``, ``vs_anchor.md``: each point of each curve (in ``--vs-anchor-bpp``) against each
  ``--anchor`` interpolated at its bpp: PSNR difference, ratio of each LPIPS
- ``rd_psnr.png``, ``rd_ms_ssim.png``, ``rd_lpips.png`` (alex), ``rd_lpips_squeeze.png`` (and
  ``rd_butteraugli*.png``, ``rd_ssimulacra.png`` when measured): one curve per codec and decoder setting
- ``gallery.png``: a crop of each ``--gallery-image`` decoded by every curve (or the
  ``--gallery-codecs`` curves) at the quality closest to ``--gallery-bpp``
- with ``--write-cards``: each shipped model's averages into its card ``model/weights/NAME.json``

The library is ``model.evaluation``; this script parses the flags and calls it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from model import WeightsResolver, load_codec
from model.evaluation.frontier import (BEST_ANCHOR, DEFAULT_ANCHOR, JXL_CURVE, JXL_QUALITIES, evaluate_frontier,
                                       frontier_codecs, write_frontier)
from model.evaluation.inputs import load_images
from model.evaluation.anchor import vs_anchor
from model.evaluation.metrics import (DEFAULT_PERCEPTUAL_DIR, LPIPS_NETS, SCORE_NAMES, TOOL_METRICS, load_lpips,
                                      lpips_weight_files, usable_tool_metrics)
from model.evaluation.rd import METRICS, averages, bd_rates, curves
from model.evaluation.report import center_crop, plot_rd, render_gallery, summary_table
from model.evaluation.results import write_card_figures, write_results
from model.evaluation.sweep import codec_names, evaluate_codec, planned_curves, repeated_variants
from model.options import add_sweep_flags, family_options, given_options

SWEPT_BY_OWN_FLAGS = ("steps", "gamma", "seed")  # --steps, --gammas (lists) and --seed (fixed) below


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _bpp_range(text: str) -> tuple[float, float]:
    lo, hi = _float_list(text)
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jobs.evaluate",
        description="Measure bpp, PSNR, MS-SSIM, LPIPS and speed of codecs on a folder of images; "
        "write JSON/CSV, BD-rates, RD plots and a visual gallery.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", required=True, help="folder of images (png/jpg/webp/...) or WebDataset shards")
    p.add_argument("--out", required=True, type=Path, help="output folder, e.g. results/kodak")
    p.add_argument(
        "--codecs", nargs="+",
        help="codec names as model.load_codec accepts them (jpeg-q30, cdc-s-q1, path/to.safetensors); "
        "braces expand: 'webp-q{10,30,50}'; a bare jpeg/webp/avif/jxl (or avif-medium, avif-best) takes --qualities; "
        "with --frontier, the cdc-avif codecs (default: cdc-avif-mse)",
    )  # fmt: skip
    p.add_argument("--qualities", type=_int_list, help="qualities for bare jpeg/webp/avif/jxl, e.g. 10,30,50; "
                   "with --frontier, the AVIF qualities of every AVIF and cdc-avif curve")
    p.add_argument("--frontier", action="store_true",
                   help="the encode-effort frontier (model.evaluation.frontier): AVIF and each cdc-avif of --codecs "
                   "at every effort, JPEG XL beside them, on one thread; adds frontier.md, frontier.png")
    p.add_argument("--jxl-qualities", type=_int_list, default=list(JXL_QUALITIES),
                   help="--frontier: JPEG XL qualities")
    p.add_argument("--steps", type=_int_list, default=[1, 2, 4, 8, 16, 32], help="diffusion decoding steps")
    p.add_argument("--gammas", type=_float_list, default=[0.0, 0.8], help="diffusion decoder noise levels γ")
    p.add_argument("--seed", type=int, default=0, help="seed for stochastic decoding")
    p.add_argument("--lpips-weights", type=Path, default=DEFAULT_PERCEPTUAL_DIR,
                   help="folder of complete LPIPS state dicts lpips_NET.pth, or one file (LPIPS-alex's)")
    p.add_argument("--lpips-nets", type=_str_list,
                   help=f"LPIPS networks to measure, of {','.join(LPIPS_NETS)} (default: each whose weights exist)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--metrics", type=_str_list, default=["psnr", "ms_ssim", "lpips"],
                   help=f"metrics to measure: psnr, ms_ssim (always), lpips, and the judges "
                   f"{', '.join([*TOOL_METRICS, *SCORE_NAMES])} "
                   "(libjxl's tools, and the ssimulacra2 package; about 1 s per point each at 768x512), "
                   "e.g. psnr,ms_ssim,lpips,butteraugli,ssimulacra2")
    p.add_argument("--anchor", nargs="+", default=["webp"],
                   help="curve(s) the BD-rates and vs_anchor tables compare with, e.g. avif; with several, "
                   "a table each (avif 'cdc-avif-base steps=1 gamma=0' separates the network's gain)")
    p.add_argument("--vs-anchor-bpp", type=_bpp_range, default=(0.0, math.inf), metavar="LO,HI",
                   help="bpp range of the points compared with the anchor in vs_anchor.md (default: all)")
    p.add_argument("--gallery-bpp", type=float, default=0.25, help="target bpp of the gallery crops")
    p.add_argument("--gallery-image", nargs="+", help="file name(s) of the gallery image(s), one row each "
                   "(default: the first image)")
    p.add_argument("--gallery-codecs", nargs="+", metavar="CURVE",
                   help="curves shown in the gallery, in order, named as in the RD plots "
                   "(e.g. avif 'cdc-avif-mse steps=1 gamma=0'; default: every curve at --gallery-steps)")
    p.add_argument("--gallery-crop", type=int, default=256, help="side of the square gallery crop")
    p.add_argument("--gallery-steps", type=int, default=8, help="diffusion steps shown in the gallery")
    p.add_argument("--weights-dir", nargs="+", type=Path, default=[],
                   help="folders searched for weights by name before model/weights/ (work in progress: "
                   "DIR/cdc-avif-x.safetensors makes cdc-avif-x-q{10,20} valid names)")
    p.add_argument("--limit", type=int, help="use only the first N images (quick runs)")
    p.add_argument("--spread", action="store_true",
                   help="with --limit: N images evenly spaced over the sorted names, not the first N")
    p.add_argument("--held-out", type=int, metavar="N",
                   help="only the files of --images that training with --holdout-every N never reads "
                   "(1 in N by a hash of the name; model.training.data.held_out)")
    p.add_argument("--resize-max", type=int, metavar="SIDE",
                   help="downscale images whose longer side exceeds SIDE to SIDE (Lanczos; quick runs)")
    p.add_argument("--device", default="cpu", help="torch device for neural codecs and LPIPS")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--write-cards", action="store_true",
                   help="record each shipped model's averages in its card (model/weights/NAME.json)")
    add_sweep_flags(p.add_argument_group("option sweeps (each codec takes the options its family declares)"),
                    family_options("encode") + family_options("decode"),
                    skip=SWEPT_BY_OWN_FLAGS)  # after the job's own flags (model.options: the namespace)
    return p


def sweep_from(args) -> dict[str, list]:
    """Option name -> values to sweep, from --steps, --gammas and the generated option flags."""
    others = family_options("encode") + family_options("decode")
    swept = given_options(args, [o for o in others if o.name not in SWEPT_BY_OWN_FLAGS])
    return {"steps": args.steps, "gamma": args.gammas, **{k: v for k, v in swept.items() if v}}


def open_lpips(args) -> tuple[dict, dict]:
    """(net -> weights file, net -> LPIPS module); empty, with a warning, when there are no weights."""
    import warnings

    if args.no_lpips or "lpips" not in args.metrics:
        return {}, {}
    try:
        files = lpips_weight_files(args.lpips_weights, args.lpips_nets)
        models = {net: load_lpips(path, net=net, device=args.device) for net, path in files.items()}
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    if not models:
        warnings.warn(f"LPIPS skipped: no weights found in {args.lpips_weights} (pass --lpips-weights "
                      f"DIR holding lpips_alex.pth, lpips_squeeze.pth)", stacklevel=2)
    return files, models


def open_tools(args) -> list[str]:
    """The tool metrics of ``--metrics`` to measure; a missing tool is skipped with a warning."""
    import warnings

    unknown = sorted(set(args.metrics) - {"psnr", "ms_ssim", "lpips", *TOOL_METRICS, *SCORE_NAMES})
    if unknown:
        raise SystemExit(f"--metrics {','.join(unknown)}: unknown "
                         f"(known: psnr, ms_ssim, lpips, {', '.join([*TOOL_METRICS, *SCORE_NAMES])})")
    usable, skipped = usable_tool_metrics([m for m in args.metrics if m in TOOL_METRICS or m in SCORE_NAMES])
    for message in skipped:
        warnings.warn(message, stacklevel=2)
    return usable


def held_out_filter(args):
    """``--held-out N``: the name test of training's held-out slice (image folders only)."""
    if not args.held_out:
        return None
    from pipeline.io.shards import is_shard_spec

    from model.training.data import held_out

    if args.held_out < 2 or is_shard_spec(str(args.images)):
        raise SystemExit(f"--held-out {args.held_out}: takes N >= 2 (training's --holdout-every) and a folder "
                         f"of image files (training holds files of folders out, not shard members)")
    return lambda name: held_out(name, args.held_out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tools = open_tools(args)
    if args.write_cards and (args.limit or args.resize_max):
        raise SystemExit("--write-cards records figures for the whole image set at full size: drop --limit "
                         "and --resize-max")
    import PIL
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    if args.frontier and not args.qualities:
        raise SystemExit("--frontier needs --qualities: the AVIF qualities of its curves, e.g. 10,18,26,34,42")
    if not args.codecs and not args.frontier:
        raise SystemExit("--codecs: name the codecs to evaluate, e.g. 'webp-q{10,30}' cdc-avif-mse")
    names = (args.codecs or ["cdc-avif-mse"]) if args.frontier else codec_names(args.codecs, args.qualities)
    images = load_images(args.images, args.limit, held_out_filter(args), args.resize_max, args.spread)
    gallery_names = args.gallery_image or [images[0][0]]
    missing = sorted(set(gallery_names) - {name for name, _ in images})
    if missing:
        raise SystemExit(f"--gallery-image {' '.join(missing)}: not among the evaluated images in {args.images}")
    lpips_files, lpips_models = open_lpips(args)
    try:
        resolver = WeightsResolver.from_env()
        resolver = dataclasses.replace(resolver, dirs=(*args.weights_dir, *resolver.dirs))
        codecs = [load_codec(n, device=args.device, resolver=resolver) for n in names]
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None
    if args.frontier and any(c.family != "cdc-avif" for c in codecs):
        raise SystemExit(f"--frontier --codecs takes cdc-avif codecs (AVIF and JPEG XL come with it), "
                         f"not {', '.join(c.name for c in codecs if c.family != 'cdc-avif')}")
    if args.frontier:
        args.anchor = [DEFAULT_ANCHOR, BEST_ANCHOR]
    planned = ([c for c, _ in frontier_codecs(codecs)] + [JXL_CURVE] if args.frontier
               else planned_curves(codecs, sweep_from(args)))
    repeated = [] if args.frontier else repeated_variants(codecs, sweep_from(args))
    if repeated:  # an encode sweep overrides the quality a name presets
        raise SystemExit(f"{', '.join(repeated)}: made by more than one of --codecs under this sweep; name each "
                         f"family once when sweeping (avif --quality 10,20) or preset names without the sweep "
                         f"('avif-q{{10,20}}' 'cdc-avif-mse-q{{10,20}}')")
    unknown = sorted(set(args.gallery_codecs or ()) - set(planned))
    if unknown:  # checked before hours of decoding, not after
        raise SystemExit(f"--gallery-codecs {', '.join(map(repr, unknown))}: no such curve in this run "
                         f"(curves: {', '.join(map(repr, planned))})")

    points, gallery = [], []

    def keep(name, point, rgb):
        if name in gallery_names:
            gallery.append((point, center_crop(rgb, args.gallery_crop)))

    total = len(images) * (len(planned) if args.frontier else len(codecs))
    with tqdm(total=total, desc="evaluate", unit="img", file=sys.stderr) as bar:
        if args.frontier:
            points = evaluate_frontier(images, codecs, args.qualities, args.jxl_qualities, on_image=bar.update,
                                       lpips_models=lpips_models, keep=keep, tools=tools)
        for codec in [] if args.frontier else codecs:
            bar.set_postfix_str(codec.name)
            points += evaluate_codec(codec, images, sweep_from(args), {"seed": args.seed}, lpips_models, bar.update,
                                     keep, tools)

    rows = averages(points)
    rd_curves = curves(rows)
    bd_rows = [row for anchor in args.anchor for row in bd_rates(rd_curves, anchor)]
    vs_rows = [row for anchor in args.anchor for row in vs_anchor(rd_curves, anchor, args.vs_anchor_bpp)]
    config = {
        "images": str(args.images), "n_images": len(images), "held_out": args.held_out,
        "resize_max": args.resize_max, "codecs": names,
        "codec_ids": sorted({p["codec_id"] for p in points}), "steps": args.steps,
        "gammas": args.gammas, "sweep": sweep_from(args), "seed": args.seed,
        "lpips_weights": {net: str(path) for net, path in lpips_files.items()} or None, "tool_metrics": tools,
        "anchor": args.anchor, "vs_anchor_bpp": list(args.vs_anchor_bpp), "pillow": PIL.__version__,
        "torch": torch.__version__, "threads": args.threads,
        "command": "python -m jobs.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    if args.frontier:
        config["frontier"] = {"qualities": args.qualities, "jxl_qualities": args.jxl_qualities, "codec_threads": 1}
    write_results(args.out, config, points, rows, bd_rows, vs_rows, args.vs_anchor_bpp)
    title = f"{Path(args.images).name} ({len(images)} images)"
    for metric in METRICS:
        if any(math.isfinite(r[metric]) for r in rows):
            plot_rd(rd_curves, metric, args.out / f"rd_{metric}.png", title)
    render_gallery(images, gallery_names, gallery, args, args.out / "gallery.png")
    if args.frontier:
        write_frontier(args.out, rd_curves, points, config)
        print((args.out / "frontier.md").read_text())
    if args.write_cards:
        for card in write_card_figures(codecs, rows, config):
            print(f"figures written into {card}")
    print(summary_table(rows, bd_rows))
    print(f"wrote {args.out}/results.json, *.csv, *.md, rd_*.png, gallery.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
