"""What an evaluation shows people: RD plots, the visual gallery and the summary table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .extra import pyplot
from .metrics import LPIPS_COLUMNS, LPIPS_NETS, PERCEPTUAL_NAMES, SCORE_NAMES, TOOL_NAMES

AXIS_LABELS = {
    "psnr": "PSNR (dB, 8-bit RGB)",
    "ms_ssim": "MS-SSIM",
    **{c: f"{name} (lower is better)" for c, name in PERCEPTUAL_NAMES.items()},
    "butteraugli": "Butteraugli max-norm (lower is better)",
    "butteraugli_p3": "Butteraugli 3-norm (lower is better)",
    "ssimulacra2": "SSIMULACRA2 (higher is better)",
}


BD_HEADS = {"psnr": "PSNR", "ms_ssim": "MS-SSIM", **{c: name[:8] for c, name in PERCEPTUAL_NAMES.items()},
            "butteraugli": "Butt-max", "butteraugli_p3": "Butt-3n", "ssimulacra": "SSIMULA",
            "ssimulacra2": "SSIM2"}  # fit 9 columns


def _measured_heads(bd_rows: list[dict]) -> dict[str, str]:
    """The BD_HEADS of the metrics some row has a value for (PSNR always); tool metrics are optional."""
    return {m: h for m, h in BD_HEADS.items() if m == "psnr" or (m not in TOOL_NAMES and m not in SCORE_NAMES)
            or any(math.isfinite(b.get(f"bd_rate_{m}", math.nan)) for b in bd_rows)}


def center_crop(rgb: np.ndarray, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` square (or less, for a smaller image)."""
    h, w = rgb.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return rgb[top : top + side, left : left + side]


def plot_rd(rd_curves: dict[str, list[dict]], metric: str, path: Path, title: str) -> None:
    """One line per curve, bpp against ``metric``, saved as PNG."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    colours = plt.get_cmap("tab10" if len(rd_curves) <= 10 else "tab20")
    for i, (name, rows) in enumerate(sorted(rd_curves.items())):
        pts = [(r["bpp"], r[metric]) for r in rows if math.isfinite(r[metric])]
        if pts:
            x, y = zip(*pts)
            dashed = any(r["gamma"] for r in rows)  # stochastic decoding (gamma > 0)
            ax.plot(x, y, "--o" if dashed else "-o", ms=3, lw=1.2, color=colours(i % 20), label=name)
    ax.set_xlabel("bits per pixel (whole container)")
    ax.set_ylabel(AXIS_LABELS[metric])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def gallery_picks(gallery: list[tuple[dict, np.ndarray]], target_bpp: float, steps: int,
                  curves: list[str] | None = None) -> list[tuple[dict, np.ndarray]]:
    """Per curve, the (point, crop) whose bpp is closest to ``target_bpp``.

    With ``curves``: those curves only, in that order (their names carry the decode settings).
    Otherwise every curve, by name, less the diffusion settings other than ``steps`` decoding
    steps (one row per gamma), unless ``steps`` was not evaluated, then the largest evaluated is used.
    """
    if curves is None:
        evaluated_steps = {p["steps"] for p, _ in gallery if p["steps"] is not None}
        show_steps = steps if steps in evaluated_steps else max(evaluated_steps, default=None)
        gallery = [(p, c) for p, c in gallery if p["steps"] is None or p["steps"] == show_steps]
        curves = sorted({p["curve"] for p, _ in gallery})
    best: dict[str, tuple[dict, np.ndarray]] = {}
    for point, crop in gallery:
        curve = point["curve"]
        if curve in curves and (curve not in best
                                or abs(point["bpp"] - target_bpp) < abs(best[curve][0]["bpp"] - target_bpp)):
            best[curve] = (point, crop)
    return [best[c] for c in curves if c in best]


def _label_tile(crop: np.ndarray, lines: list[str], font, min_width: int = 240) -> Image.Image:
    side_h, side_w = crop.shape[:2]  # small crops get a wider tile so the labels fit
    tile = Image.new("RGB", (max(side_w, min_width), side_h + 16 * len(lines) + 4), "white")
    tile.paste(Image.fromarray(crop), (0, 0))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        draw.text((3, side_h + 2 + 16 * i), line, fill="black", font=font)
    return tile


def _labels(point: dict) -> list[str]:
    """Curve, encode setting, bpp and PSNR, then each LPIPS measured."""
    lines = [point["curve"], point["encode"] or point["codec"], f"{point['bpp']:.3f} bpp  {point['psnr']:.2f} dB"]
    lpips = [f"{net} {point[c]:.3f}" for net, c in zip(LPIPS_NETS, LPIPS_COLUMNS) if math.isfinite(point[c])]
    return lines + (["LPIPS " + "  ".join(lpips)] if lpips else [])


def render_gallery(images, gallery_names: list[str], gallery: list, args, path: Path) -> None:
    """One row per gallery image: its original crop, then each curve's crop nearest ``args.gallery_bpp``.

    ``args.gallery_codecs`` (curve names) picks and orders the curves; without it every curve is
    shown, four tiles to a line.
    """
    font = ImageFont.load_default(size=13)
    curves = getattr(args, "gallery_codecs", None)
    columns = 1 + len(curves) if curves else 4
    lines = []
    for name in gallery_names:
        original = next(im for n, im in images if n == name)
        tiles = [_label_tile(center_crop(original.rgb, args.gallery_crop), [f"original {name}", "centre crop"], font)]
        mine = [(p, c) for p, c in gallery if p["image"] == name]
        tiles += [_label_tile(crop, _labels(point), font)
                  for point, crop in gallery_picks(mine, args.gallery_bpp, args.gallery_steps, curves)]
        lines += [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    tile_w = max(t.width for line in lines for t in line) + 6
    tile_h = max(t.height for line in lines for t in line) + 6
    sheet = Image.new("RGB", (tile_w * max(len(line) for line in lines), tile_h * len(lines)), "white")
    for row, line in enumerate(lines):
        for col, tile in enumerate(line):
            sheet.paste(tile, (col * tile_w + 3, row * tile_h + 3))
    sheet.save(path, optimize=True)


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _codec_label(row: dict) -> str:
    """The codec's name, with its encode setting when the name does not carry it (cdc-avif-mse quality=10)."""
    named = row["codec"] != row["curve"].split(" ")[0]  # avif-q10 on curve avif: the name has the quality
    return row["codec"] if named or not row["encode"] else f"{row['codec']} {row['encode']}"


def summary_table(rows: list[dict], bd_rows: list[dict]) -> str:
    """Averages per codec setting, then BD-rates, as aligned plain text."""
    lines = [
        f"{'codec':<28}{'setting':<18}{'bpp':>7}{'PSNR':>8}{'MS-SSIM':>9}{'LPIPS':>8}{'LP-sq':>8}{'enc s':>8}{'dec s':>8}"
    ]
    for r in sorted(rows, key=lambda r: (r["curve"], r["bpp"])):
        setting = r["decode"].replace("gamma=", "γ=")
        lines.append(
            f"{_codec_label(r):<28}{setting:<18}{_fmt(r['bpp'], '.3f'):>7}{_fmt(r['psnr'], '.2f'):>8}"
            f"{_fmt(r['ms_ssim'], '.4f'):>9}{_fmt(r['lpips'], '.3f'):>8}{_fmt(r['lpips_squeeze'], '.3f'):>8}"
            f"{_fmt(r['encode_s'], '.3f'):>8}{_fmt(r['decode_s'], '.3f'):>8}"
        )
    for anchor in dict.fromkeys(b["anchor"] for b in bd_rows):
        lines += ["", f"BD-rate against {anchor} (%, negative = fewer bits at equal quality)"]
        heads = _measured_heads(bd_rows)
        lines.append(f"{'curve':<40}" + "".join(f"{h:>9}" for h in heads.values()))
        for b in (b for b in bd_rows if b["anchor"] == anchor):
            lines.append(f"{b['curve']:<40}" + "".join(f"{_fmt(b[f'bd_rate_{m}'], '+.1f'):>9}" for m in heads))
    return "\n".join(lines)


def bd_rate_markdown(bd_rows: list[dict]) -> str:
    """BD-rates as markdown, a table per anchor, one column per metric."""
    if not bd_rows:
        return "No BD-rates: no anchor curve was evaluated.\n"
    heads = _measured_heads(bd_rows)
    head = ["curve", *({**PERCEPTUAL_NAMES, **SCORE_NAMES}.get(m, h) for m, h in heads.items())]
    out = []
    for anchor in dict.fromkeys(b["anchor"] for b in bd_rows):
        out += [f"BD-rate against {anchor} (%, negative = fewer bits at equal quality)", "",
                "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join([b["curve"], *(_fmt(b[f"bd_rate_{m}"], "+.1f") for m in heads)]) + " |"
                for b in bd_rows if b["anchor"] == anchor]
        out.append("")
    return "\n".join(out)
