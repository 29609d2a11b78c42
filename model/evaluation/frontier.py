"""The encode-effort frontier in one run: AVIF alone and cdc-avif over that same base at each effort,
JPEG XL beside them, everything timed on one thread.

    python -m jobs.evaluate --frontier --images ../shared/data/train --held-out 10 \\
        --qualities 10,18,26,34,42 --codecs cdc-avif-mse --out results/frontier

For each effort of ``avif_base.EFFORTS`` (fast: Pillow's default; medium; best) it evaluates
``avif EFFORT`` and, for every cdc-avif codec named, ``NAME EFFORT`` at the same AVIF qualities, and
``jxl e7`` (JPEG XL, libjxl effort 7) at its own qualities. Every encoder and decoder runs on one
thread (libaom, libjxl, torch: ``one_thread``), after one untimed warm-up round trip per curve, and
is timed in CPU seconds of the process (``time.process_time``: on a shared machine, wall seconds
measure the neighbours' load too), so the seconds per megapixel compare work, not cores;
libaom's bitstreams at one thread differ slightly from its multi-threaded ones (0.1-1 % in bytes).

``frontier.md`` then gives, per curve: BD-rate on PSNR against AVIF default (``avif fast``), against
``avif best`` and, for cdc-avif, against AVIF at its own effort with the point-by-point PSNR
difference in ``PSNR_SPAN`` bpp; encode and decode seconds per megapixel. ``frontier.png`` plots
BD-rate against AVIF default over encode seconds per megapixel, one marker per curve.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

from ..codecs import pillow
from ..codecs.avif_base import EFFORTS
from ..registry import load_codec
from ..threads import fixed_threads
from .anchor import vs_anchor
from .extra import pyplot
from .rd import bd_rates
from .sweep import evaluate_codec

DEFAULT_ANCHOR, BEST_ANCHOR = "avif fast", "avif best"  # AVIF as Pillow writes it by default; its best effort
JXL_CURVE = f"jxl e{pillow.JXL_EFFORT}"
JXL_QUALITIES = (0, 10, 25, 45, 70)  # about 0.2-1 bpp on photos: libjxl's quality 0 is near 0.2 bpp already
PSNR_SPAN = (0.1, 0.8)  # bpp range of the point-by-point comparison (issue 19's claim)


@contextmanager
def one_thread():
    """libaom (Pillow's AVIF), libjxl and torch on one thread each, restored afterwards."""
    import PIL.AvifImagePlugin as avif
    import pillow_jxl.JpegXLImagePlugin as jxl

    saved = avif.DEFAULT_MAX_THREADS, jxl.DECODE_THREADS, pillow.JXL_THREADS
    avif.DEFAULT_MAX_THREADS = jxl.DECODE_THREADS = pillow.JXL_THREADS = 1
    try:
        with fixed_threads(1):
            yield
    finally:
        avif.DEFAULT_MAX_THREADS, jxl.DECODE_THREADS, pillow.JXL_THREADS = saved


def frontier_codecs(cdc_avif: list, efforts=tuple(EFFORTS)) -> list[tuple[str, object]]:
    """(curve, codec with its effort preset) for AVIF and each cdc-avif codec at each effort."""
    out = []
    for effort in efforts:
        for base in [load_codec("avif-q30"), *cdc_avif]:
            label = "avif" if base.family == "pillow" else base.name
            out.append((f"{label} {effort}", base.with_presets(effort=effort)))
    return out


def evaluate_frontier(images, cdc_avif: list, qualities: list[int], jxl_qualities=JXL_QUALITIES,
                      efforts=tuple(EFFORTS), on_image=lambda: None, **measure) -> list[dict]:
    """Points of every frontier curve (``curve`` set to ``"NAME EFFORT"``), measured on one thread.

    ``measure`` goes to ``sweep.evaluate_codec`` (lpips_models, keep, tools).
    """
    runs = [(curve, codec, qualities) for curve, codec in frontier_codecs(cdc_avif, efforts)]
    runs.append((JXL_CURVE, load_codec("jxl-q50"), list(jxl_qualities)))
    points = []
    with one_thread():
        for curve, codec, qs in runs:
            codec.decode(codec.encode([images[0][1]], quality=qs[0]))  # warm-up: first calls allocate
            mine = evaluate_codec(codec, images, {"quality": qs}, {}, on_image=on_image, clock=time.process_time,
                                  **measure)
            for p in mine:
                p["curve"] = curve
            points += mine
    return points


def seconds_per_megapixel(points: list[dict], curve: str, key: str) -> float:
    """Total ``key`` seconds of a curve's points over the megapixels they coded."""
    mine = [p for p in points if p["curve"] == curve]
    return sum(p[key] for p in mine) / (sum(p["height"] * p["width"] for p in mine) / 1e6)


def _bd(rd_curves: dict, curve: str, anchor: str, metric: str = "psnr") -> float:
    if anchor not in rd_curves or curve == anchor:
        return 0.0 if curve == anchor else math.nan
    (row,) = bd_rates({curve: rd_curves[curve], anchor: rd_curves[anchor]}, anchor)
    return row[f"bd_rate_{metric}"]


def own_anchor(curve: str) -> str | None:
    """AVIF at the effort of a cdc-avif curve (``cdc-avif-mse best`` -> ``avif best``); None for the others."""
    name, _, effort = curve.rpartition(" ")
    return f"avif {effort}" if effort in EFFORTS and name != "avif" else None


def frontier_rows(rd_curves: dict[str, list[dict]], points: list[dict], span=PSNR_SPAN) -> list[dict]:
    """One row per curve: BD-rates on PSNR, the PSNR difference to its own AVIF in ``span``, s/MP."""
    rows = []
    for curve in rd_curves:
        own = own_anchor(curve)
        row = {"curve": curve, "bd_vs_default": _bd(rd_curves, curve, DEFAULT_ANCHOR),
               "bd_vs_best": _bd(rd_curves, curve, BEST_ANCHOR),
               "bd_vs_own": _bd(rd_curves, curve, own) if own else math.nan,
               # SSIMULACRA2 (a judge no loss uses; higher is better): NaN where it was not measured
               "ssim2_vs_default": _bd(rd_curves, curve, DEFAULT_ANCHOR, "ssimulacra2"),
               "ssim2_vs_own": _bd(rd_curves, curve, own, "ssimulacra2") if own else math.nan,
               "encode_s_mp": seconds_per_megapixel(points, curve, "encode_s"),
               "decode_s_mp": seconds_per_megapixel(points, curve, "decode_s")}  # fmt: skip
        diffs = [r["psnr_diff"] for r in vs_anchor({curve: rd_curves[curve], own: rd_curves[own]}, own, span)
                 if math.isfinite(r["psnr_diff"])] if own in rd_curves else []
        row.update(psnr_diff_min=min(diffs, default=math.nan), psnr_diff_max=max(diffs, default=math.nan),
                   psnr_points=len(diffs))
        rows.append(row)
    return sorted(rows, key=lambda r: r["encode_s_mp"])


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def frontier_markdown(rows: list[dict], config: dict, span=PSNR_SPAN) -> str:
    """The frontier table, with what was measured and how."""
    head = ["curve", "BD-rate vs AVIF default", "vs AVIF best", "vs AVIF same effort",
            f"ΔPSNR vs same effort, {span[0]:g}-{span[1]:g} bpp (points)", "encode s/MP", "decode s/MP"]
    ssim2 = any(math.isfinite(r["ssim2_vs_default"]) and r["ssim2_vs_default"] for r in rows)
    if ssim2:
        head[4:4] = ["SSIMULACRA2 BD-rate vs AVIF default", "SSIMULACRA2 vs AVIF same effort"]
    lines = [f"# Encode-effort frontier: {config['n_images']} images of {config['images']}", "",
             f"BD-rate on PSNR (%, negative: fewer bits at equal PSNR), and on SSIMULACRA2 where measured. Every encoder and decoder on one thread "
             f"(libaom, libjxl, torch), timed in CPU seconds of the process. Efforts: " + "; ".join(
                 f"{e} = speed {s.speed}, {s.subsampling}, tune {s.tune}" for e, s in EFFORTS.items()) + ".", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        diff = (f"{r['psnr_diff_min']:+.2f} .. {r['psnr_diff_max']:+.2f} ({r['psnr_points']})"
                if r["psnr_points"] else "-")
        cells = [r["curve"], _fmt(r["bd_vs_default"], "+.1f"), _fmt(r["bd_vs_best"], "+.1f"),
                 _fmt(r["bd_vs_own"], "+.1f"), diff, _fmt(r["encode_s_mp"], ".3f"), _fmt(r["decode_s_mp"], ".3f")]
        if ssim2:
            cells[4:4] = [_fmt(r["ssim2_vs_default"], "+.1f"), _fmt(r["ssim2_vs_own"], "+.1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", f"Command: `{config['command']}`", ""])


def plot_frontier(rows: list[dict], path: Path, title: str) -> None:
    """BD-rate against AVIF default over encode seconds per megapixel (log), one labelled marker per curve."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    markers = {"avif": "s", "jxl": "^"}
    shown = [r for r in rows if math.isfinite(r["bd_vs_default"])]
    for i, codec in enumerate(dict.fromkeys(r["curve"].rpartition(" ")[0] for r in shown)):
        mine = [r for r in shown if r["curve"].rpartition(" ")[0] == codec]  # one codec's efforts, joined
        x, y = [r["encode_s_mp"] for r in mine], [r["bd_vs_default"] for r in mine]
        ax.plot(x, y, "-" + markers.get(codec, "o"), ms=7, lw=0.8, color=f"C{i}", label=codec)
        for r in mine:
            ax.annotate(r["curve"], (r["encode_s_mp"], r["bd_vs_default"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("encode CPU seconds per megapixel (one thread)")
    ax.set_ylabel("BD-rate vs AVIF default, PSNR (%; lower is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_frontier(out: Path, rd_curves: dict, points: list[dict], config: dict) -> list[dict]:
    """frontier.md, frontier.csv and frontier.png in ``out``; returns the rows."""
    from .results import write_csv

    rows = frontier_rows(rd_curves, points)
    (out / "frontier.md").write_text(frontier_markdown(rows, config))
    write_csv(out / "frontier.csv", rows, list(rows[0]) if rows else ["curve"])
    plot_frontier(rows, out / "frontier.png", f"{Path(config['images']).name} ({config['n_images']} images)")
    return rows
