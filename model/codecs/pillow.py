"""Pillow's JPEG, WebP, AVIF and JPEG XL: the classical references, ``jpeg-qN``, ``webp-qN``,
``avif-qN``, ``jxl-qN``.

The quality is an encode option; the name presets it. AVIF also takes the base layer's encoder
settings of cdc-avif (``effort`` fast/medium/best, or ``speed``/``subsampling``/``tune``;
``avif_base``), so each cdc-avif curve has its AVIF-alone twin; ``avif-best-q30`` presets an effort.
JPEG XL (pillow-jxl-plugin, libjxl) encodes at effort 7, libjxl's default.

Bitstreams record ``FORMAT-qN`` with the quality they were encoded at (AVIF at other settings than
Pillow's default: ``avif-TAG-qN``, TAG the effort or ``s2-444-psnr``), and any codec of the format
decodes them.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

from ..codec import Codec, Option
from .avif_base import DEFAULT_SETTINGS, EFFORTS, SETTINGS_OPTIONS, TUNES, BaseSettings, base_settings, effort_of
from ..format import BitstreamError
from ..hooks import Evaluation
from ..registry import CodecInfo, CodecRequest, Family, ParsedName

FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "jxl": "JXL"}
# avif-qN, avif-best-qN (a name), avif-s2-444-psnr-qN (a bitstream's id at settings no effort has)
NAME = re.compile(r"^(jpeg|webp|avif|jxl)(?:-(fast|medium|best|s\d{1,2}-(?:420|444)-[a-z]+))?-q(\d{1,3})$")
OPTIONS = (Option("quality", int, 75, "encode", "Pillow quality, 0 (smallest) to 100", min=0, max=100),)
BASE_OPTIONS = tuple(o.name for o in SETTINGS_OPTIONS)  # effort first, then the settings it presets
AVIF_OPTIONS = OPTIONS + SETTINGS_OPTIONS
JXL_EFFORT = 7  # libjxl's default; 1 (fastest) .. 10
JXL_THREADS = -1  # libjxl encoder threads, -1: every core (the frontier measures at 1)


def settings_tag(settings: BaseSettings) -> str:
    """The part of an AVIF codec id naming its encoder settings: "" for Pillow's default, the effort, or s2-444-psnr."""
    if settings == DEFAULT_SETTINGS:
        return ""
    return effort_of(settings) or f"s{settings.speed}-{settings.subsampling.replace(':', '')}-{settings.tune}"


class PillowCodec(Codec):
    """JPEG, WebP, AVIF or JPEG XL through Pillow: the classical references."""

    family = "pillow"

    def __init__(self, fmt: str, quality: int = 75):
        if fmt not in FORMATS:
            raise ValueError(f"unknown Pillow format '{fmt}', expected one of {sorted(FORMATS)}")
        self.fmt = fmt
        self.options = AVIF_OPTIONS if fmt == "avif" else OPTIONS  # only AVIF has encoder settings
        if fmt == "jxl":
            try:
                import pillow_jxl  # noqa: F401  registers JXL with Pillow
            except ImportError:
                raise ImportError("jxl-qN needs pillow-jxl-plugin: pip install pillow-jxl-plugin==1.3.8") from None

        self.presets = self._merged_presets(quality=quality)

    @property
    def name(self) -> str:
        tag = settings_tag(self._settings(self.presets)) if self.fmt == "avif" else ""
        return "-".join(filter(None, [self.fmt, tag, f"q{self.presets.get('quality', OPTIONS[0].default)}"]))

    def codec_id_for(self, encode_options) -> str:
        tag = settings_tag(self._settings(encode_options)) if self.fmt == "avif" else ""
        return "-".join(filter(None, [self.fmt, tag, f"q{encode_options['quality']}"]))

    def accepts_id(self, codec_id: str) -> bool:
        m = NAME.match(codec_id)
        return bool(m) and m.group(1) == self.fmt and (m.group(2) is None or self.fmt == "avif")

    @staticmethod
    def _settings(options: dict) -> BaseSettings:
        return base_settings(options.get("effort") or "fast", *(options.get(k) for k in BASE_OPTIONS[1:]))

    def _save_kwargs(self, quality: int, base: dict) -> dict:
        if self.fmt == "jpeg":
            # 4:2:0, optimised Huffman tables: what a careful user of libjpeg gets.
            return {"quality": quality, "optimize": True, "subsampling": 2}
        if self.fmt == "webp":
            return {"quality": quality, "method": 6}
        if self.fmt == "jxl":
            return {"quality": quality, "effort": JXL_EFFORT, "num_threads": JXL_THREADS}
        return self._settings(base).save_kwargs(quality)

    def _encode_rgb(self, rgbs, quality: int, **base):
        out = []
        for rgb in rgbs:
            buf = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(buf, format=FORMATS[self.fmt], **self._save_kwargs(quality, base))
            out.append((buf.getvalue(),))
        return out

    def _decode_containers(self, containers):
        out = []
        for c in containers:
            if len(c.strings) != 1:
                raise BitstreamError(f"{self.name} bitstream must hold 1 string, has {len(c.strings)}")
            try:
                with Image.open(io.BytesIO(c.strings[0])) as img:
                    if img.size != (c.width, c.height):  # before decoding: the payload's own header
                        raise BitstreamError(f"{self.name} payload is {img.size[0]}x{img.size[1]}, "
                                             f"header says {c.width}x{c.height}")
                    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
            except BitstreamError:
                raise
            except Exception as exc:
                raise BitstreamError(f"{self.name} payload does not decode: {exc}") from None
            if rgb.shape[:2] != (c.height, c.width):
                raise BitstreamError(
                    f"{self.name} payload is {rgb.shape[1]}x{rgb.shape[0]}, header says {c.width}x{c.height}"
                )
            out.append(rgb)
        return out


SETTINGS_TAG = re.compile(r"^s(\d{1,2})-(420|444)-([a-z]+)$")


def parse(name: str) -> ParsedName | None:
    """``avif-best-q30`` presets the effort; ``avif-s3-444-psnr-q30`` (a bitstream's id) the settings."""
    m = NAME.match(name)
    if not m or (m.group(2) and m.group(1) != "avif"):
        return None
    tag, settings = m.group(2), {}
    if tag in EFFORTS:
        settings = {"effort": tag}
    elif tag:
        speed, sub, tune = SETTINGS_TAG.match(tag).groups()
        if int(speed) > 10 or tune not in TUNES:
            return None
        settings = {"speed": int(speed), "subsampling": f"{sub[0]}:{sub[1]}:{sub[2]}", "tune": tune}
    return ParsedName(None, {"quality": int(m.group(3)), **settings})


def load(request: CodecRequest) -> PillowCodec:
    return PillowCodec(NAME.match(request.name).group(1))


def listing(_weights) -> list[CodecInfo]:
    rows = [CodecInfo(f"{fmt}-qN", "pillow", f"Pillow {fmt.upper()} at quality N (0..100)") for fmt in FORMATS]
    rows[2] = CodecInfo("avif[-EFFORT]-qN", "pillow", "Pillow AVIF at quality N; effort fast (default), medium, best")
    return rows


FAMILY = Family(name="pillow", load=load, parse=parse, prefixes=tuple(f"{fmt}-" for fmt in FORMATS),
                options=AVIF_OPTIONS, listing=listing,
                evaluation=Evaluation(examples=("jpeg-q75", "webp-q60", "avif-q40", "avif-best-q40", "jxl-q60")),
                description="JPEG, WebP, AVIF and JPEG XL through Pillow (references)")
