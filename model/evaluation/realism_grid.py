"""Realism against fidelity: AVIF, the MSE decoder, a prior under a grid of decodes and one-step
realism decoders, judged by patch KID (``realism``), PSNR, SSIMULACRA2 and Butteraugli at AVIF's own bits.

    python jobs/realism.py --prior cdc-avif-m-prior \\
        --heldout ../shared/data/train --kodak ../shared/data/kodak --out results/realism

Per image (the held-out slice of ``--heldout``, 1 file in ``--heldout-every`` by name hash, spread
over the sorted names; and the first ``--kodak-limit`` of ``--kodak``; both brought down to
``--resize-max``) and AVIF quality (at one ``--effort``): AVIF alone; ``--mse`` at 1 step, γ 0; and
``--prior`` at every ``--steps`` x ``--gammas`` (deterministic DDIM) and ``--ancestral`` pairs
(eta 1); each ``--realism`` decoder at 1 step, γ 0. cdc-avif's bitstream is the AVIF file plus a few bytes, so every curve of one quality has
AVIF's bits (each bpp is the real container's). KID is over the 128x128 patches of every image
together, per curve and quality; the other columns are means over images. Decode seconds are CPU
seconds of this one-thread process (``time.process_time``), so the machine's load does not enter.

Each (image, quality)'s points and patch features are kept in ``--out``/images/ when done, so a rerun
resumes under the same weights and settings (``run.json``; ``--fresh`` starts over;
``--report-only`` rebuilds the tables from them). Writes ``realism.md`` (the table and the
musts checked per decode setting), ``points.csv`` and ``realism.png`` (KID and PSNR against bpp).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ..registry import load_codec
from .extra import pyplot
from .metrics import psnr, ssimulacra2, tool_values, usable_tool_metrics
from .realism import JUDGES, SqueezeFeatures, kid, patches

KID_RATIO, PSNR_DROP, MIN_RATES, BPP_SPAN = 0.5, 1.5, 3, (0.08, 0.3)  # the musts
DEEP_KID_RATIO = 0.4  # issue 30: deep-feature KID against AVIF's at the same quality


def _ints(text):
    return [int(x) for x in text.split(",") if x]


def _floats(text):
    return [float(x) for x in text.split(",") if x]


def _pairs(text):
    """``4:0.8,8:1`` -> [(4, 0.8), (8, 1.0)]."""
    return [(int(s), float(g)) for s, g in (p.split(":") for p in text.split(",") if p)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="realism.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", help="the prior: a cdc-avif name or .safetensors path, decoded at every setting")
    p.add_argument("--realism", action="append", default=[], metavar="WEIGHTS",
                   help="a one-step realism decoder (cdc-avif weights trained with a patch discriminator), "
                        "decoded at 1 step, γ 0; repeatable")
    p.add_argument("--mse", default="cdc-avif-m-mse", help="the MSE decoder (decoded at 1 step, γ 0)")
    p.add_argument("--weights-dir", help="where names are looked up (default model/weights)")
    p.add_argument("--heldout", default="../shared/data/train", help="training folder: its held-out slice")
    p.add_argument("--heldout-every", type=int, default=10, help="the slice training's --holdout-every left out")
    p.add_argument("--heldout-limit", type=int, default=12)
    p.add_argument("--kodak", default="../shared/data/kodak", help="a folder used whole ('' for none)")
    p.add_argument("--kodak-limit", type=int, default=8)
    p.add_argument("--resize-max", type=int, default=512, help="longer side of every image (Lanczos)")
    # at 512 px, medium: 0.08-0.23 bpp on average (quality 16 was 0.36 on held-out and Kodak photos)
    p.add_argument("--qualities", type=_ints, default=[1, 4, 7, 10], help="AVIF qualities (default 1,4,7,10)")
    p.add_argument("--effort", default="medium", help="AVIF effort of every curve (default medium)")
    p.add_argument("--steps", type=_ints, default=[1, 2, 4, 8])
    p.add_argument("--gammas", type=_floats, default=[0.0, 0.5, 0.8, 1.0])
    # from t = 1 the first ancestral step keeps nothing of r_N (sigma = sqrt(1 - alpha_bar)), so gamma
    # does not matter to it: one gamma per step count
    p.add_argument("--ancestral", type=_pairs, default=[(2, 1.0), (4, 1.0), (8, 1.0)],
                   help="steps:gamma pairs also decoded with eta 1 (default 2:1,4:1,8:1; '' none)")
    p.add_argument("--metrics", default="ssimulacra2,butteraugli",
                   help="besides PSNR and KID: ssimulacra2, butteraugli (comma-separated; '' for none)")
    p.add_argument("--seed", type=int, default=0, help="decoding noise seed")
    p.add_argument("--lpips-squeeze", help="path to lpips_squeeze.pth (default ../shared/data/perceptual/)")
    p.add_argument("--out", type=Path, default=Path("results/realism"))
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from --out/images/")
    p.add_argument("--fresh", action="store_true", help="forget the images kept in --out/images/ and start over")
    return p


def decode_settings(args) -> list[dict]:
    """The prior's decode settings: the deterministic grid, then the ancestral pairs."""
    grid = [{"steps": s, "gamma": g, "eta": 0.0} for s in args.steps for g in args.gammas]
    return grid + [{"steps": s, "gamma": g, "eta": 1.0} for s, g in args.ancestral]


def curve_label(kind: str, setting: dict | None = None) -> str:
    if setting is None:
        return kind
    eta = " ancestral" if setting["eta"] else ""
    return f"{kind} steps={setting['steps']} γ={setting['gamma']:g}{eta}"


def evaluate_image(name: str, rgb: np.ndarray, q: int, codecs: dict, args, features, tools) -> tuple[list[dict], dict]:
    """(points, judge -> curve|quality -> patch features) of one image at AVIF quality ``q``; key
    'original' holds the original's (``realism.JUDGES``: the SqueezeNet judge and the deep one)."""
    feats = {judge: {"original": f} for judge, f in features.judges(patches(rgb)).items()}
    points = []
    h, w = rgb.shape[:2]

    def measure(curve: str, quality: int, blob: bytes, decode):
        t0 = time.process_time()
        out = np.asarray(decode().convert("RGB"), dtype=np.uint8)
        seconds = time.process_time() - t0
        point = {"image": name, "curve": curve, "quality": quality, "bpp": len(blob) * 8 / (h * w),
                 "psnr": psnr(rgb, out), "decode_s": seconds, "height": h, "width": w}
        if tools:  # first: tool_values fills every judge column, NaN where not measured
            point.update(tool_values(tools, rgb, out))
        if "ssimulacra2" in args.metric_list:
            point["ssimulacra2"] = ssimulacra2(rgb, out)
        points.append(point)
        for judge, f in features.judges(patches(out)).items():
            feats[judge][f"{curve}|{quality}"] = f

    avif = codecs["avif"].encode([rgb], quality=q, effort=args.effort)[0]
    measure("avif", q, avif, lambda: codecs["avif"].decode([avif])[0])
    mse = codecs["mse"].encode([rgb], quality=q, effort=args.effort)[0]
    measure(codecs["mse"].name, q, mse, lambda: codecs["mse"].decode([mse], steps=1, gamma=0.0)[0])
    if "prior" in codecs:
        prior = codecs["prior"].encode([rgb], quality=q, effort=args.effort)[0]
        for s in decode_settings(args):
            measure(curve_label("prior", s), q, prior,
                    lambda: codecs["prior"].decode([prior], seed=args.seed, t_start=1.0, **s)[0])
    for key in (k for k in codecs if k.startswith("realism")):
        blob = codecs[key].encode([rgb], quality=q, effort=args.effort)[0]
        measure(key, q, blob, lambda: codecs[key].decode([blob], steps=1, gamma=0.0)[0])
    return points, feats


def is_candidate(curve: str) -> bool:
    """A decode under test (the prior's settings, the realism decoders), not a reference curve."""
    return curve.startswith(("prior", "realism"))


def run(args, images: list | None = None) -> None:
    """Evaluate ``images`` ((name, LoadedImage) pairs; those kept in --out are not done again), then report."""
    import torch

    torch.set_num_threads(1)
    folder = args.out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    args.metric_list = [m for m in args.metrics.split(",") if m]
    if not args.report_only:
        tools, skipped = usable_tool_metrics([m for m in args.metric_list if m == "butteraugli"])
        for line in skipped:
            print(line)
        if not args.prior and not args.realism:
            raise SystemExit("nothing to judge: give --prior, --realism or both")
        codecs = {"avif": load_codec("avif-q30", weights_dir=args.weights_dir),
                  "mse": load_codec(args.mse, weights_dir=args.weights_dir)}
        if args.prior:
            codecs["prior"] = load_codec(args.prior, weights_dir=args.weights_dir)
        for weights in args.realism:
            codec = load_codec(weights, weights_dir=args.weights_dir)
            codecs[f"realism {codec.name}"] = codec
        check_same_run(folder, args, codecs)
        features = SqueezeFeatures(args.lpips_squeeze)
        for i, (name, loaded) in enumerate(images):
            for q in args.qualities:
                stem = folder / f"{Path(name).stem}-q{q}"
                if stem.with_suffix(".json").exists():
                    continue
                t0 = time.perf_counter()
                points, feats = evaluate_image(name, loaded.rgb, q, codecs, args, features, tools)
                for judge, judged in feats.items():
                    np.savez(features_path(stem.with_suffix(".json"), judge), **judged)
                stem.with_suffix(".json").write_text(json.dumps(points))  # written last: marks it done
                print(f"[{i + 1}/{len(images)}] {name} q{q}: {len(points)} points in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    write_report(args)


def check_same_run(folder: Path, args, codecs: dict) -> None:
    """Resume only the same run: the weights and every setting a point depends on are kept in
    ``run.json``; images kept under other ones are refused (``--fresh`` starts over). Other
    qualities are the same run: each (image, quality) is kept apart."""
    run_file = folder / "run.json"
    this = {"codecs": {k: c.codec_id for k, c in codecs.items()}, "effort": args.effort, "settings": decode_settings(args), "resize_max": args.resize_max,
            "seed": args.seed, "metrics": args.metric_list}
    if args.fresh:
        for path in [*folder.glob("*.json"), *folder.glob("*.npz")]:
            path.unlink()
    if run_file.exists() and json.loads(run_file.read_text()) != this:
        raise SystemExit(f"{folder} holds images evaluated with other weights or settings "
                         f"({run_file.read_text()}): pass --fresh to start over, or another --out")
    run_file.write_text(json.dumps(this))


def features_path(points_path: Path, judge: str) -> Path:
    """Where one image's patch features for ``judge`` are kept beside its points: ``NAME.npz`` for the
    SqueezeNet judge (as before the deep judge), ``NAME.kid_deep.npz`` for the deep one."""
    return points_path.with_suffix(".npz" if judge == "kid" else f".{judge}.npz")


def summarise(folder: Path) -> tuple[list[dict], list[dict]]:
    """(one row per (curve, quality): means over images and each judge's KID over all their patches, NaN
    where an image was evaluated before that judge existed; every point)."""
    points, feats, originals = [], {}, {}
    for path in sorted(p for p in folder.glob("*.json") if p.name != "run.json"):
        mine = json.loads(path.read_text())
        points += mine
        for judge in JUDGES:
            if not features_path(path, judge).exists():
                continue
            with np.load(features_path(path, judge)) as f:
                for q in {p["quality"] for p in mine}:  # KID at q: against the originals evaluated at q
                    originals.setdefault((judge, q), []).append(f["original"])
                for key in (k for k in f.files if k != "original"):
                    feats.setdefault(key, {}).setdefault(judge, []).append(f[key])
    rows = []
    for key, judged in feats.items():
        curve, quality = key.rsplit("|", 1)
        mine = [p for p in points if p["curve"] == curve and p["quality"] == int(quality)]
        row = {"curve": curve, "quality": int(quality), "images": len(mine)}
        for col in ("bpp", "psnr", "ssimulacra2", "butteraugli", "butteraugli_p3"):
            values = [p[col] for p in mine if col in p]
            row[col] = float(np.mean(values)) if values else math.nan
        for judge in JUDGES:
            parts = judged.get(judge, [])
            score = kid(np.concatenate(originals[judge, int(quality)]), np.concatenate(parts)) \
                if len(parts) == len(mine) else None  # every image judged, or no figure
            row.update({judge: score.mean if score else math.nan, f"{judge}_std": score.std if score else math.nan})
            row.setdefault("patches", score.patches if score else 0)
        pixels = sum(p["height"] * p["width"] for p in mine)
        row["decode_s_per_mp"] = sum(p["decode_s"] for p in mine) / pixels * 1e6
        rows.append(row)
    return rows, points


def musts(rows: list[dict], mse: str) -> list[dict]:
    """Per decode under test: at how many qualities (bpp in BPP_SPAN) it meets the issue's musts against
    AVIF and the MSE decoder (curve ``mse``) at the same quality."""
    by = {(r["curve"], r["quality"]): r for r in rows}
    out = []
    for curve in dict.fromkeys(r["curve"] for r in rows if is_candidate(r["curve"])):
        met, deep_met, detail = 0, 0, []
        for q in sorted({r["quality"] for r in rows}):
            mine, avif, ref = by.get((curve, q)), by.get(("avif", q)), by.get((mse, q))
            if not (mine and avif and ref) or not BPP_SPAN[0] <= mine["bpp"] <= BPP_SPAN[1]:
                continue
            ok = (mine["kid"] <= KID_RATIO * avif["kid"] and mine["kid"] <= KID_RATIO * ref["kid"]
                  and mine["psnr"] >= avif["psnr"] - PSNR_DROP)
            deep_ok = mine.get("kid_deep", math.nan) <= DEEP_KID_RATIO * avif.get("kid_deep", math.nan) \
                and mine["psnr"] >= avif["psnr"] - PSNR_DROP
            met, deep_met = met + ok, deep_met + deep_ok
            deep = f", deep KID/AVIF {mine['kid_deep'] / avif['kid_deep']:.2f}{' ✓' if deep_ok else ''}" \
                if not math.isnan(mine.get("kid_deep", math.nan)) else ""
            detail.append(f"q{q}: KID/AVIF {mine['kid'] / avif['kid']:.2f}, KID/MSE {mine['kid'] / ref['kid']:.2f}, "
                          f"ΔPSNR {mine['psnr'] - avif['psnr']:+.2f} dB{' ✓' if ok else ''}{deep}")
        out.append({"curve": curve, "rates_met": met, "passes": met >= MIN_RATES, "deep_rates_met": deep_met,
                    "deep_passes": deep_met >= MIN_RATES, "detail": "; ".join(detail)})
    return out


def mse_curve(rows: list[dict]) -> str:
    """The MSE decoder's curve: the one neither AVIF nor one under test (it is named after its weights)."""
    return next(r["curve"] for r in rows if r["curve"] != "avif" and not is_candidate(r["curve"]))


def write_report(args) -> None:
    rows, points = summarise(args.out / "images")
    if not rows:
        raise SystemExit(f"no images evaluated in {args.out / 'images'}")
    import csv

    with open(args.out / "points.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for p in points for k in p)))
        writer.writeheader()
        writer.writerows(points)
    cols = ("curve", "quality", "bpp", "psnr", "ssimulacra2", "butteraugli", "butteraugli_p3", "kid", "kid_std",
            "kid_deep", "kid_deep_std", "patches", "decode_s_per_mp")
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |"
              for r in sorted(rows, key=lambda r: (r["quality"], r["curve"]))]
    mse = mse_curve(rows)
    verdicts = musts(rows, mse)
    verdict = ["| decode under test | rates meeting the musts | rates meeting the deep must | per quality |",
               "|---|---|---|---|"]
    verdict += [f"| {v['curve']} | {v['rates_met']}{' (passes)' if v['passes'] else ''} | "
                f"{v['deep_rates_met']}{' (passes)' if v['deep_passes'] else ''} | {v['detail']} |"
                for v in sorted(verdicts, key=lambda v: -v["rates_met"])]
    images = sorted({p["image"] for p in points})
    text = [f"# Realism: {len(images)} images, effort and qualities as run", "",
            "KID: patch KID on SqueezeNet 1.1 (x 1, lower is better; mean over 100 subsets, kid_std their spread); "
            "ssimulacra2 higher is better; butteraugli (max-norm) and butteraugli_p3 lower is better; "
            "kid_deep: patch KID on SqueezeNet's last two stages only (relu6, relu7: deep features). "
            "decode_s_per_mp: CPU seconds per megapixel on one thread.", "", *table, "",
            f"## The musts: KID ≤ {KID_RATIO}x AVIF's and {mse}'s, PSNR ≥ AVIF − {PSNR_DROP} dB, "
            f"at ≥ {MIN_RATES} rates in {BPP_SPAN[0]}-{BPP_SPAN[1]} bpp; the deep must: deep KID ≤ "
            f"{DEEP_KID_RATIO}x AVIF's, PSNR ≥ AVIF − {PSNR_DROP} dB", "", *verdict, "",
            "Images: " + ", ".join(images), ""]
    (args.out / "realism.md").write_text("\n".join(text))
    plot(rows, args.out / "realism.png")
    print("\n".join(text))


def plot(rows: list[dict], path: Path) -> None:
    """KID and PSNR against bpp: AVIF, the MSE decoder, and the prior's settings."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), dpi=110)
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    colours = plt.get_cmap("tab20")
    for i, curve in enumerate(curves):
        mine = sorted((r for r in rows if r["curve"] == curve), key=lambda r: r["bpp"])
        style = dict(lw=2.2, color="k" if curve == "avif" else "tab:red", ms=5) if not is_candidate(curve) \
            else dict(lw=0.9, color=colours(i % 20), ms=3, ls="--" if "ancestral" in curve else "-")
        for ax, metric in zip(axes, ("kid", "kid_deep", "psnr")):
            ax.plot([r["bpp"] for r in mine], [r[metric] for r in mine], marker="o", label=curve, **style)
    for ax, label in zip(axes, ("patch KID, SqueezeNet (lower is more realistic)",
                                "patch KID, SqueezeNet's last stages (deep)", "PSNR (dB)")):
        ax.set_xlabel("bits per pixel (real bitstreams)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
