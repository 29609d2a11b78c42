"""What an evaluation measures: codec names, the option settings swept, and one point per
(image, encode setting, decode setting), with real bitstreams.

Sweeps come from the codecs' declarations: ``sweep`` maps option names to the values to try, and
each codec takes those it declares. Every encode setting is encoded separately (a quality, a
truncation point, a target rate each make their own bitstream); every decode setting decodes
each of those bitstreams. ``fixed`` options (a seed) are applied without being swept.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from typing import Any, Callable

import numpy as np

from ..codec import declared
from ..format import bits_per_pixel
from .metrics import LPIPS_NETS, lpips_column, lpips_distance, ms_ssim, psnr, tool_values

_QUALITY_SUFFIX = re.compile(r"^(.*)-q\d+$")
BARE_PILLOW = ("jpeg", "webp", "avif", "jxl", "avif-medium", "avif-best")


def expand_braces(spec: str) -> list[str]:
    """``webp-q{10,30}`` -> ``["webp-q10", "webp-q30"]``; several groups multiply, no nesting."""
    parts = re.split(r"\{([^{}]*)\}", spec)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def codec_names(specs: list[str], qualities: list[int] | None) -> list[str]:
    """Brace-expanded codec names; a bare ``jpeg``/``webp``/``avif``/``jxl`` (or ``avif-best``) takes
    each of ``qualities``."""
    names = []
    for spec in specs:
        for name in expand_braces(spec):
            if name in BARE_PILLOW:
                if not qualities:
                    raise SystemExit(f"codec '{name}' needs a quality: write {name}-q75 or pass --qualities")
                names += [f"{name}-q{q}" for q in qualities]
            else:
                names.append(name)
    return list(dict.fromkeys(names))


def setting_label(options: dict[str, Any]) -> str:
    """``{"steps": 8, "gamma": 0.8}`` -> ``steps=8 gamma=0.8``."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())


def curve_name(codec_name: str, decode: dict[str, Any]) -> str:
    """The RD curve a point belongs to: the codec's name without ``-qN``, plus its decode setting."""
    m = _QUALITY_SUFFIX.match(codec_name)
    base = m.group(1) if m else codec_name
    return " ".join(filter(None, [base, setting_label(decode)]))


def settings(codec, side: str, sweep: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the swept values of the options ``codec`` declares on ``side``."""
    names = [n for n in declared(codec.options, side) if sweep.get(n)]
    return [dict(zip(names, values)) for values in itertools.product(*(sweep[n] for n in names))]


def planned_curves(codecs, sweep: dict[str, list]) -> list[str]:
    """The curve names an evaluation of ``codecs`` over ``sweep`` will produce, before running it."""
    names = [curve_name(c.name, dec) for c in codecs for dec in settings(c, "decode", sweep)]
    return list(dict.fromkeys(names))


def repeated_variants(codecs, sweep: dict[str, list]) -> list[str]:
    """Encode variants that two of ``codecs`` would both make (a sweep overrides a name's preset:
    jpeg-q5 and jpeg-q10 under ``--quality 20,40`` both become jpeg-q20 and jpeg-q40)."""
    seen: dict[tuple, int] = {}
    for i, codec in enumerate(codecs):
        for enc in settings(codec, "encode", sweep):
            variant = codec.with_presets(**enc)
            resolved = variant.resolve_options("encode", {})
            key = (variant.codec_id_for(resolved), setting_label(resolved))
            seen.setdefault(key, i)
            if seen[key] != i:
                seen[key] = -1
    return [f"{codec_id} {label}".strip() for (codec_id, label), i in seen.items() if i == -1]


def lpips_values(lpips_models: dict | None, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """One column per network of ``LPIPS_NETS``: the distance, NaN where that network is not loaded."""
    models = lpips_models or {}
    return {lpips_column(n): lpips_distance(models[n], a, b) if n in models else math.nan for n in LPIPS_NETS}


def evaluate_codec(codec, images, sweep: dict[str, list], fixed: dict[str, Any], lpips_models: dict | None = None,
                   on_image: Callable[[], None] = lambda: None, keep=None, tools=(), clock=time.perf_counter):
    """Points (dicts) for every image, encode setting and decode setting.

    ``images`` are (name, LoadedImage) pairs; ``lpips_models`` maps LPIPS network names to modules
    (``metrics.open_lpips_nets``). ``keep(name, point, rgb)`` sees every decoded image (the gallery
    keeps some). ``tools`` are ``metrics.TOOL_METRICS`` to measure (Butteraugli, SSIMULACRA; slow).
    ``clock`` times encode and decode (wall seconds; the frontier passes ``time.process_time``).
    Returns the points.
    """
    variants = [codec.with_presets(**enc) for enc in settings(codec, "encode", sweep)]
    decodes = settings(codec, "decode", sweep)
    fixed_decode = codec.select_options("decode", fixed)
    points = []
    for name, loaded in images:
        h, w = loaded.rgb.shape[:2]
        for variant in variants:
            t0 = clock()
            blob = variant.encode([loaded])[0]
            encode_s = clock() - t0
            for dec in decodes:
                t0 = clock()
                decoded = variant.decode([blob], **fixed_decode, **dec)[0]
                decode_s = clock() - t0
                rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
                point = {
                    "image": name, "codec": variant.name, "codec_id": variant.codec_id_for(
                        variant.resolve_options("encode", {})), "family": variant.family,
                    "curve": curve_name(variant.name, dec), "steps": dec.get("steps"), "gamma": dec.get("gamma"),
                    "encode": setting_label(variant.select_options("encode", variant.presets)),
                    "decode": setting_label(dec),
                    "height": h, "width": w, "bytes": len(blob), "bpp": bits_per_pixel(blob, h, w),
                    "psnr": psnr(loaded.rgb, rgb), "ms_ssim": ms_ssim(loaded.rgb, rgb),
                    **lpips_values(lpips_models, loaded.rgb, rgb), **tool_values(tools, loaded.rgb, rgb),
                    "encode_s": encode_s, "decode_s": decode_s,
                }  # fmt: skip
                points.append(point)
                if keep is not None:
                    keep(name, point, rgb)
        on_image()
    return points
