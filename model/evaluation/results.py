"""Writing evaluation results: results.json, points/averages/bd_rate/vs_anchor CSV, the BD-rate and
vs-anchor markdown tables, and card figures.

``--write-cards`` records each shipped model's averages in its card; only a card whose ``sha256``
is the evaluated file's gets figures, so a card never describes weights other than its own.
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from pathlib import Path

from ..registry import list_codecs
from . import anchor
from .rd import METRICS, SETTING_KEYS
from .report import bd_rate_markdown

POINT_FIELDS = ("image", "codec_id", *SETTING_KEYS, "height", "width", "bytes", "bpp", *METRICS, "encode_s", "decode_s")
AVERAGE_FIELDS = (*SETTING_KEYS, "images", "bpp", *METRICS, "encode_s", "decode_s")
BD_FIELDS = ("curve", "anchor", *(f"bd_rate_{m}" for m in METRICS))
CARD_FIGURES = ("steps", "gamma", "bpp", *METRICS, "encode_s", "decode_s")


def json_safe(value):
    """NaN and inf become null: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def write_csv(path: Path, rows: list[dict], fields) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_results(out: Path, config: dict, points: list[dict], rows: list[dict], bd_rows: list[dict],
                  vs_rows: list[dict] = (), vs_range=(0.0, math.inf)) -> None:
    """results.json (everything), the CSV tables, and bd_rate.md / vs_anchor.md."""
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": config, "averages": rows, "bd_rate": bd_rows, "vs_anchor": list(vs_rows), "points": points}
    (out / "results.json").write_text(json.dumps(json_safe(results), indent=1) + "\n")
    write_csv(out / "points.csv", points, POINT_FIELDS)
    write_csv(out / "averages.csv", rows, AVERAGE_FIELDS)
    write_csv(out / "bd_rate.csv", bd_rows, BD_FIELDS)
    write_csv(out / "vs_anchor.csv", vs_rows, anchor.FIELDS)
    (out / "bd_rate.md").write_text(bd_rate_markdown(bd_rows))
    (out / "vs_anchor.md").write_text(anchor.vs_anchor_markdown(list(vs_rows), vs_range))


def write_card_figures(codecs, rows: list[dict], config: dict, weights_dir: Path | None = None) -> list[Path]:
    """Store each registered model's averages in its card, under ``evaluation``."""
    shipped = {i.name: i.path.with_suffix(".json") for i in list_codecs(weights_dir) if i.path is not None}
    written = []
    for codec in codecs:
        card_path, weights_sha256 = shipped.get(codec.name), getattr(codec, "weights_sha256", None)
        if card_path is None or weights_sha256 is None:
            continue  # a Pillow reference, or a model that is not in the registry
        card = json.loads(card_path.read_text())
        if card.get("sha256") != weights_sha256:
            warnings.warn(f"{card_path}: card is for other weights than {codec.codec_id}; not updated")
            continue
        card["evaluation"] = {
            "images": Path(config["images"]).name, "n_images": config["n_images"],
            "date": time.strftime("%Y-%m-%d"), "command": config["command"],
            "averages": [
                {k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in CARD_FIGURES if k in r}
                for r in rows if r["codec"] == codec.name
            ],
        }  # fmt: skip
        card_path.write_text(json.dumps(json_safe(card), indent=2) + "\n")
        written.append(card_path)
    return written
