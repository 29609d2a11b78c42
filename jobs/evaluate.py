"""Rate-distortion evaluation of diffarc codecs on a folder of images, with real bitstreams.

    python -m jobs.evaluate --images ../shared/data/kodak --out results/kodak \\
        --codecs 'jpeg-q{5,10,20,30,45}' 'webp-q{0,10,30,50,70}' cdc-s-q1 hyperprior-s-q1

Per image and codec setting: bpp of the whole container (``model.bits_per_pixel``), PSNR and
MS-SSIM on 8-bit RGB, LPIPS-alex, encode and decode seconds. Sweeps follow the codecs' declared
options: diffusion codecs are decoded at every steps x gamma combination, and an encode option
given as a list (``--quality 10,30,50``) encodes each value separately, one RD point each.
``--images`` is a folder of images or WebDataset shards. Writes to ``--out``:

- ``results.json``: configuration, every point, averages per codec setting and BD-rates
- ``points.csv``, ``averages.csv``, ``bd_rate.csv``: the same as tables
- ``rd_psnr.png``, ``rd_ms_ssim.png``, ``rd_lpips.png``: one curve per codec and decoder setting
- ``gallery.png``: one crop decoded by every curve at the quality closest to ``--gallery-bpp``
- with ``--write-cards``: each shipped model's averages into its card ``model/weights/NAME.json``

The library is ``model.evaluation``; this script parses the flags and calls it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from model import load_codec
from model.evaluation.inputs import load_images
from model.evaluation.metrics import DEFAULT_LPIPS_PATH, load_lpips
from model.evaluation.rd import METRICS, averages, bd_rates, curves
from model.evaluation.report import center_crop, plot_rd, render_gallery, summary_table
from model.evaluation.results import write_card_figures, write_results
from model.evaluation.sweep import codec_names, evaluate_codec
from model.options import add_sweep_flags, family_options

SWEPT_BY_OWN_FLAGS = ("steps", "gamma", "seed")  # --steps, --gammas (lists) and --seed (fixed) below


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


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
        "--codecs", nargs="+", required=True,
        help="codec names as model.load_codec accepts them (jpeg-q30, cdc-s-q1, path/to.safetensors); "
        "braces expand: 'webp-q{10,30,50}'; a bare jpeg/webp/avif takes --qualities",
    )  # fmt: skip
    p.add_argument("--qualities", type=_int_list, help="qualities for bare jpeg/webp/avif, e.g. 10,30,50")
    p.add_argument("--steps", type=_int_list, default=[1, 2, 4, 8, 16, 32], help="diffusion decoding steps")
    p.add_argument("--gammas", type=_float_list, default=[0.0, 0.8], help="diffusion decoder noise levels γ")
    p.add_argument("--seed", type=int, default=0, help="seed for stochastic decoding")
    add_sweep_flags(p.add_argument_group("option sweeps (each codec takes the options its family declares)"),
                    family_options("encode") + family_options("decode"), skip=SWEPT_BY_OWN_FLAGS)
    p.add_argument("--lpips-weights", type=Path, default=DEFAULT_LPIPS_PATH, help="complete LPIPS-alex state dict")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--anchor", default="webp", help="curve the BD-rates are measured against")
    p.add_argument("--gallery-bpp", type=float, default=0.25, help="target bpp of the gallery crops")
    p.add_argument("--gallery-image", help="file name of the gallery image (default: the first)")
    p.add_argument("--gallery-crop", type=int, default=256, help="side of the square gallery crop")
    p.add_argument("--gallery-steps", type=int, default=8, help="diffusion steps shown in the gallery")
    p.add_argument("--limit", type=int, help="use only the first N images (quick runs)")
    p.add_argument("--device", default="cpu", help="torch device for neural codecs and LPIPS")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--write-cards", action="store_true",
                   help="record each shipped model's averages in its card (model/weights/NAME.json)")
    return p


def sweep_from(args) -> dict[str, list]:
    """Option name -> values to sweep, from --steps, --gammas and the generated option flags."""
    others = family_options("encode") + family_options("decode")
    swept = {o.name: getattr(args, o.name) for o in others if o.name not in SWEPT_BY_OWN_FLAGS}
    return {"steps": args.steps, "gamma": args.gammas, **{k: v for k, v in swept.items() if v}}


def open_lpips(args):
    """The LPIPS module, or None with a warning when there are no weights."""
    import warnings

    if args.no_lpips:
        return None
    if args.lpips_weights is None:
        warnings.warn("LPIPS skipped: no weights found (pass --lpips-weights PATH/lpips_alex.pth)", stacklevel=2)
        return None
    try:
        return load_lpips(args.lpips_weights, device=args.device)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.write_cards and args.limit:
        raise SystemExit("--write-cards records figures for the whole image set: drop --limit")
    import PIL
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    names = codec_names(args.codecs, args.qualities)
    images = load_images(args.images, args.limit)
    gallery_name = args.gallery_image or images[0][0]
    if gallery_name not in {name for name, _ in images}:
        raise SystemExit(f"--gallery-image {gallery_name} is not among the evaluated images in {args.images}")
    lpips_model = open_lpips(args)
    try:
        codecs = [load_codec(n, device=args.device) for n in names]
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None

    points, gallery = [], []

    def keep(name, point, rgb):
        if name == gallery_name:
            gallery.append((point, center_crop(rgb, args.gallery_crop)))

    with tqdm(total=len(codecs) * len(images), desc="evaluate", unit="img", file=sys.stderr) as bar:
        for codec in codecs:
            bar.set_postfix_str(codec.name)
            points += evaluate_codec(codec, images, sweep_from(args), {"seed": args.seed}, lpips_model, bar.update, keep)

    rows = averages(points)
    rd_curves = curves(rows)
    bd_rows = bd_rates(rd_curves, args.anchor)
    config = {
        "images": str(args.images), "n_images": len(images), "codecs": names, "steps": args.steps,
        "gammas": args.gammas, "sweep": sweep_from(args), "seed": args.seed,
        "lpips_weights": str(args.lpips_weights) if lpips_model else None,
        "anchor": args.anchor, "pillow": PIL.__version__, "torch": torch.__version__, "threads": args.threads,
        "command": "python -m jobs.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    write_results(args.out, config, points, rows, bd_rows)
    title = f"{Path(args.images).name} ({len(images)} images)"
    for metric in METRICS:
        if any(math.isfinite(r[metric]) for r in rows):
            plot_rd(rd_curves, metric, args.out / f"rd_{metric}.png", title)
    render_gallery(images, gallery_name, gallery, args, args.out / "gallery.png")
    if args.write_cards:
        for card in write_card_figures(codecs, rows, config):
            print(f"figures written into {card}")
    print(summary_table(rows, bd_rows))
    print(f"wrote {args.out}/results.json, *.csv, rd_*.png, gallery.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
