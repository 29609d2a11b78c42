"""Rate-distortion evaluation of diffarc codecs on a folder of images, with real bitstreams.

    python -m jobs.evaluate --images ../shared/data/kodak --out results/kodak \\
        --codecs 'jpeg-q{5,10,20,30,45}' 'webp-q{0,10,30,50,70}' cdc-s-q1 hyperprior-s-q1

Per image and codec setting: bpp of the whole container (``model.bits_per_pixel``), PSNR and
MS-SSIM on 8-bit RGB, LPIPS-alex, encode and decode seconds. Diffusion codecs are decoded at every
steps x gamma combination. Writes to ``--out``:

- ``results.json``: configuration, every point, averages per codec setting and BD-rates
- ``points.csv``, ``averages.csv``, ``bd_rate.csv``: the same as tables
- ``rd_psnr.png``, ``rd_ms_ssim.png``, ``rd_lpips.png``: one curve per codec family and decoder setting
- ``gallery.png``: one crop decoded by every curve at the quality closest to ``--gallery-bpp``
- with ``--write-cards``: each shipped model's averages into its card ``model/weights/NAME.json``

Averages are means over images of the per-image values (the convention of CompressAI's
published Kodak curves); BD-rates compare each curve with the ``--anchor`` curve (WebP).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as `python jobs/evaluate.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.eval_report import center_crop, plot_rd, render_gallery, summary_table  # noqa: E402
from model import bits_per_pixel, list_codecs, load_codec, load_image  # noqa: E402
from model.bdrate import bd_rate, ms_ssim_db  # noqa: E402
from model.metrics import DEFAULT_LPIPS_PATH, load_lpips, lpips_distance, ms_ssim, psnr  # noqa: E402
from model.weights import WEIGHTS_DIR  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}
METRICS = ("psnr", "ms_ssim", "lpips")
POINT_FIELDS = (
    "image", "codec", "codec_id", "family", "curve", "steps", "gamma",
    "height", "width", "bytes", "bpp", "psnr", "ms_ssim", "lpips", "encode_s", "decode_s",
)  # fmt: skip
AVERAGE_FIELDS = ("codec", "curve", "family", "steps", "gamma", "images", "bpp", *METRICS, "encode_s", "decode_s")
_QUALITY_SUFFIX = re.compile(r"^(.*)-q\d+$")


def expand_braces(spec: str) -> list[str]:
    """``webp-q{10,30}`` -> ``["webp-q10", "webp-q30"]``; several groups multiply, no nesting."""
    parts = re.split(r"\{([^{}]*)\}", spec)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def codec_names(specs: list[str], qualities: list[int] | None) -> list[str]:
    """Brace-expanded codec names; a bare ``jpeg``/``webp``/``avif`` takes each of ``qualities``."""
    names = []
    for spec in specs:
        for name in expand_braces(spec):
            if name in ("jpeg", "webp", "avif"):
                if not qualities:
                    raise SystemExit(f"codec '{name}' needs a quality: write {name}-q75 or pass --qualities")
                names += [f"{name}-q{q}" for q in qualities]
            else:
                names.append(name)
    return list(dict.fromkeys(names))


def curve_name(codec_name: str, steps: int | None, gamma: float | None) -> str:
    """The RD curve a codec setting belongs to: its name without ``-qN``, plus the decoder setting."""
    m = _QUALITY_SUFFIX.match(codec_name)
    base = m.group(1) if m else codec_name
    return base if steps is None else f"{base} steps={steps} gamma={gamma:g}"


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
    p.add_argument("--images", required=True, type=Path, help="folder of images (png/jpg/webp/...)")
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


def list_images(folder: Path, limit: int | None) -> list[Path]:
    if not folder.is_dir():
        raise SystemExit(f"image folder {folder} does not exist (pass --images DIR)")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {folder} (expected files ending in {sorted(IMAGE_SUFFIXES)})")
    return files[:limit] if limit else files


def open_lpips(args):
    """The LPIPS module, or None with a warning when there are no weights."""
    if args.no_lpips:
        return None
    if args.lpips_weights is None:
        warnings.warn("LPIPS skipped: no weights found (pass --lpips-weights PATH/lpips_alex.pth)", stacklevel=2)
        return None
    try:
        return load_lpips(args.lpips_weights, device=args.device)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None


def evaluate_codec(codec, images, args, lpips_model, gallery_name, on_image):
    """Points (dicts) for every image and decoder setting, plus gallery crops {setting: (point, crop)}."""
    settings = (
        [(s, g) for s in args.steps for g in args.gammas] if codec.stochastic_decoder else [(None, None)]
    )
    points, crops = [], {}
    for path, loaded in images:
        t0 = time.perf_counter()
        blob = codec.encode([loaded])[0]
        encode_s = time.perf_counter() - t0
        h, w = loaded.rgb.shape[:2]
        for steps, gamma in settings:
            t0 = time.perf_counter()
            options = {} if steps is None else {"steps": steps, "gamma": gamma, "seed": args.seed}
            decoded = codec.decode([blob], **options)[0]
            decode_s = time.perf_counter() - t0
            rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
            point = {
                "image": path.name, "codec": codec.name, "codec_id": codec.codec_id, "family": codec.family,
                "curve": curve_name(codec.name, steps, gamma), "steps": steps, "gamma": gamma,
                "height": h, "width": w, "bytes": len(blob), "bpp": bits_per_pixel(blob, h, w),
                "psnr": psnr(loaded.rgb, rgb), "ms_ssim": ms_ssim(loaded.rgb, rgb),
                "lpips": lpips_distance(lpips_model, loaded.rgb, rgb) if lpips_model else math.nan,
                "encode_s": encode_s, "decode_s": decode_s,
            }  # fmt: skip
            points.append(point)
            if path.name == gallery_name:
                crops[(steps, gamma)] = (point, center_crop(rgb, args.gallery_crop))
        on_image()
    return points, crops


def _mean(values) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def averages(points: list[dict]) -> list[dict]:
    """One row per codec setting: the mean of each per-image value (NaNs left out)."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["codec"], p["steps"], p["gamma"]), []).append(p)
    rows = []
    for group in groups.values():
        first = group[0]
        row = {k: first[k] for k in ("codec", "curve", "family", "steps", "gamma")}
        row["images"] = len(group)
        for k in ("bpp", *METRICS, "encode_s", "decode_s"):
            row[k] = _mean(p[k] for p in group)
        rows.append(row)
    return rows


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Average rows grouped into RD curves, each sorted by bpp."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["curve"], []).append(r)
    return {name: sorted(rs, key=lambda r: r["bpp"]) for name, rs in out.items()}


def bd_rates(rd_curves: dict[str, list[dict]], anchor: str) -> list[dict]:
    """BD-rate (%) of every curve against ``anchor`` on PSNR, MS-SSIM (in dB) and LPIPS."""
    if anchor not in rd_curves:
        warnings.warn(f"no BD-rates: anchor curve '{anchor}' was not evaluated (add e.g. 'webp-q{{0,10,30,50,70}}')")
        return []
    axes = {"psnr": lambda r: r["psnr"], "ms_ssim": lambda r: ms_ssim_db(r["ms_ssim"]), "lpips": lambda r: r["lpips"]}
    ref = rd_curves[anchor]
    rows = []
    for name, rs in rd_curves.items():
        if name == anchor:
            continue
        row = {"curve": name, "anchor": anchor}
        for metric, value in axes.items():
            row[f"bd_rate_{metric}"] = bd_rate(
                [r["bpp"] for r in ref], [value(r) for r in ref], [r["bpp"] for r in rs], [value(r) for r in rs]
            )
        rows.append(row)
    return rows


CARD_FIGURES = ("steps", "gamma", "bpp", *METRICS, "encode_s", "decode_s")


def write_card_figures(codecs, rows: list[dict], config: dict, weights_dir: Path = WEIGHTS_DIR) -> list[Path]:
    """Store each registered model's averages in its card, under ``evaluation``.

    Only a card whose ``sha256`` is the evaluated file's gets figures, so a card never describes
    weights other than its own.
    """
    shipped = {i.name: i.path.with_suffix(".json") for i in list_codecs(weights_dir) if i.path is not None}
    written = []
    for codec in codecs:
        card_path, weights_sha256 = shipped.get(codec.name), getattr(codec, "weights_sha256", None)
        if card_path is None or weights_sha256 is None:
            continue  # a Pillow reference, or a model that is not in the registry
        card = json.loads(card_path.read_text())
        if not str(card.get("sha256", "")).startswith(weights_sha256):
            warnings.warn(f"{card_path}: card is for other weights than {codec.codec_id}; not updated")
            continue
        card["evaluation"] = {
            "images": Path(config["images"]).name, "n_images": config["n_images"],
            "date": time.strftime("%Y-%m-%d"), "command": config["command"],
            "averages": [
                {k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in CARD_FIGURES}
                for r in rows if r["codec"] == codec.name
            ],
        }  # fmt: skip
        card_path.write_text(json.dumps(_json_safe(card), indent=2) + "\n")
        written.append(card_path)
    return written


def _json_safe(value):
    """NaN and inf become null: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_csv(path: Path, rows: list[dict], fields) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.write_cards and args.limit:
        raise SystemExit("--write-cards records figures for the whole image set: drop --limit")
    import PIL
    import torch
    from tqdm import tqdm


    torch.set_num_threads(args.threads)
    names = codec_names(args.codecs, args.qualities)
    files = list_images(args.images, args.limit)
    images = [(f, load_image(f.read_bytes())) for f in files]
    gallery_name = args.gallery_image or files[0].name
    if gallery_name not in {f.name for f in files}:
        raise SystemExit(f"--gallery-image {gallery_name} is not among the evaluated images in {args.images}")
    lpips_model = open_lpips(args)
    try:
        codecs = [load_codec(n, device=args.device) for n in names]
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None

    points, gallery = [], {}
    with tqdm(total=len(codecs) * len(images), desc="evaluate", unit="img", file=sys.stderr) as bar:
        for codec in codecs:
            bar.set_postfix_str(codec.name)
            codec_points, crops = evaluate_codec(codec, images, args, lpips_model, gallery_name, bar.update)
            points += codec_points
            gallery.update({(codec.name, *k): v for k, v in crops.items()})

    rows = averages(points)
    rd_curves = curves(rows)
    bd_rows = bd_rates(rd_curves, args.anchor)
    args.out.mkdir(parents=True, exist_ok=True)
    config = {
        "images": str(args.images), "n_images": len(images), "codecs": names, "steps": args.steps,
        "gammas": args.gammas, "seed": args.seed, "lpips_weights": str(args.lpips_weights) if lpips_model else None,
        "anchor": args.anchor, "pillow": PIL.__version__, "torch": torch.__version__, "threads": args.threads,
        "command": "python -m jobs.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    results = {"config": config, "averages": rows, "bd_rate": bd_rows, "points": points}
    (args.out / "results.json").write_text(json.dumps(_json_safe(results), indent=1) + "\n")
    write_csv(args.out / "points.csv", points, POINT_FIELDS)
    write_csv(args.out / "averages.csv", rows, AVERAGE_FIELDS)
    write_csv(args.out / "bd_rate.csv", bd_rows, ("curve", "anchor", *(f"bd_rate_{m}" for m in METRICS)))
    title = f"{args.images.name} ({len(images)} images)"
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
