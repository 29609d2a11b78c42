"""What an evaluation shows people: RD plots, the visual gallery and the summary table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

AXIS_LABELS = {
    "psnr": "PSNR (dB, 8-bit RGB)",
    "ms_ssim": "MS-SSIM",
    "lpips": "LPIPS-alex (lower is better)",
}


def center_crop(rgb: np.ndarray, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` square (or less, for a smaller image)."""
    h, w = rgb.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return rgb[top : top + side, left : left + side]


def plot_rd(rd_curves: dict[str, list[dict]], metric: str, path: Path, title: str) -> None:
    """One line per curve, bpp against ``metric``, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    colours = plt.get_cmap("tab10" if len(rd_curves) <= 10 else "tab20")
    for i, (name, rows) in enumerate(sorted(rd_curves.items())):
        pts = [(r["bpp"], r[metric]) for r in rows if math.isfinite(r[metric])]
        if pts:
            x, y = zip(*pts)
            dashed = " gamma=" in name and not name.endswith("gamma=0")
            ax.plot(x, y, "--o" if dashed else "-o", ms=3, lw=1.2, color=colours(i % 20), label=name)
    ax.set_xlabel("bits per pixel (whole container)")
    ax.set_ylabel(AXIS_LABELS[metric])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def gallery_picks(gallery: list[tuple[dict, np.ndarray]], target_bpp: float, steps: int) -> list[tuple[dict, np.ndarray]]:
    """Per curve, the (point, crop) whose bpp is closest to ``target_bpp``.

    Diffusion settings other than ``steps`` decoding steps are left out (one row per gamma),
    unless ``steps`` was not evaluated, then the largest evaluated is used.
    """
    evaluated_steps = {p["steps"] for p, _ in gallery if p["steps"] is not None}
    show_steps = steps if steps in evaluated_steps else max(evaluated_steps, default=None)
    best: dict[str, tuple[dict, np.ndarray]] = {}
    for point, crop in gallery:
        if point["steps"] is not None and point["steps"] != show_steps:
            continue
        curve = point["curve"]
        if curve not in best or abs(point["bpp"] - target_bpp) < abs(best[curve][0]["bpp"] - target_bpp):
            best[curve] = (point, crop)
    return [best[c] for c in sorted(best)]


def _label_tile(crop: np.ndarray, lines: list[str], font, min_width: int = 240) -> Image.Image:
    side_h, side_w = crop.shape[:2]  # small crops get a wider tile so the labels fit
    tile = Image.new("RGB", (max(side_w, min_width), side_h + 16 * len(lines) + 4), "white")
    tile.paste(Image.fromarray(crop), (0, 0))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        draw.text((3, side_h + 2 + 16 * i), line, fill="black", font=font)
    return tile


def render_gallery(images, gallery_name: str, gallery: list, args, path: Path, columns: int = 4) -> None:
    """Original crop plus every curve's crop near ``args.gallery_bpp``, labelled, in one PNG."""
    original = next(im for name, im in images if name == gallery_name)
    font = ImageFont.load_default(size=13)
    tiles = [_label_tile(center_crop(original.rgb, args.gallery_crop), [f"original {gallery_name}", "centre crop"], font)]
    for point, crop in gallery_picks(gallery, args.gallery_bpp, args.gallery_steps):
        quality = f"{point['psnr']:.2f} dB"
        if math.isfinite(point["lpips"]):
            quality += f"  LPIPS {point['lpips']:.3f}"
        tiles.append(_label_tile(crop, [point["curve"], f"{point['codec']}  {point['bpp']:.3f} bpp", quality], font))
    tile_w = max(t.width for t in tiles) + 6
    tile_h = max(t.height for t in tiles) + 6
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (tile_w * min(columns, len(tiles)), tile_h * rows), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * tile_w + 3, (i // columns) * tile_h + 3))
    sheet.save(path, optimize=True)


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def summary_table(rows: list[dict], bd_rows: list[dict]) -> str:
    """Averages per codec setting, then BD-rates, as aligned plain text."""
    lines = [
        f"{'codec':<22}{'setting':<18}{'bpp':>7}{'PSNR':>8}{'MS-SSIM':>9}{'LPIPS':>8}{'enc s':>8}{'dec s':>8}"
    ]
    for r in sorted(rows, key=lambda r: (r["curve"], r["bpp"])):
        setting = r["decode"].replace("gamma=", "γ=")
        lines.append(
            f"{r['codec']:<22}{setting:<18}{_fmt(r['bpp'], '.3f'):>7}{_fmt(r['psnr'], '.2f'):>8}"
            f"{_fmt(r['ms_ssim'], '.4f'):>9}{_fmt(r['lpips'], '.3f'):>8}"
            f"{_fmt(r['encode_s'], '.3f'):>8}{_fmt(r['decode_s'], '.3f'):>8}"
        )
    if bd_rows:
        lines += ["", f"BD-rate against {bd_rows[0]['anchor']} (%, negative = fewer bits at equal quality)"]
        lines.append(f"{'curve':<40}{'PSNR':>9}{'MS-SSIM':>9}{'LPIPS':>9}")
        for b in bd_rows:
            lines.append(
                f"{b['curve']:<40}{_fmt(b['bd_rate_psnr'], '+.1f'):>9}"
                f"{_fmt(b['bd_rate_ms_ssim'], '+.1f'):>9}{_fmt(b['bd_rate_lpips'], '+.1f'):>9}"
            )
    return "\n".join(lines)
