"""Pillow's JPEG, WebP and AVIF: the classical references, ``jpeg-qN``, ``webp-qN``, ``avif-qN``.

The quality is an encode option; the name presets it. Bitstreams record ``FORMAT-qN`` with the
quality they were encoded at, and any codec of the format decodes them.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

from ..codec import Codec, Option
from .avif_base import save_kwargs as avif_save_kwargs
from ..format import BitstreamError
from ..registry import CodecInfo, CodecRequest, Family, ParsedName

FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
NAME = re.compile(r"^(jpeg|webp|avif)-q(\d{1,3})$")
OPTIONS = (Option("quality", int, 75, "encode", "Pillow quality, 0 (smallest) to 100", min=0, max=100),)


class PillowCodec(Codec):
    """JPEG, WebP or AVIF through Pillow: the classical references."""

    family = "pillow"
    options = OPTIONS

    def __init__(self, fmt: str, quality: int = 75):
        if fmt not in FORMATS:
            raise ValueError(f"unknown Pillow format '{fmt}', expected one of {sorted(FORMATS)}")
        self.fmt = fmt
        self.with_presets(quality=quality)

    @property
    def name(self) -> str:
        return f"{self.fmt}-q{self.presets.get('quality', OPTIONS[0].default)}"

    def codec_id_for(self, encode_options) -> str:
        return f"{self.fmt}-q{encode_options['quality']}"

    def accepts_id(self, codec_id: str) -> bool:
        m = NAME.match(codec_id)
        return bool(m) and m.group(1) == self.fmt

    @staticmethod
    def _save_kwargs(fmt: str, quality: int) -> dict:
        if fmt == "jpeg":
            # 4:2:0, optimised Huffman tables: what a careful user of libjpeg gets.
            return {"quality": quality, "optimize": True, "subsampling": 2}
        if fmt == "webp":
            return {"quality": quality, "method": 6}
        return avif_save_kwargs(quality)

    def _encode_rgb(self, rgbs, quality: int):
        out = []
        for rgb in rgbs:
            buf = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(buf, format=FORMATS[self.fmt], **self._save_kwargs(self.fmt, quality))
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


def parse(name: str) -> ParsedName | None:
    m = NAME.match(name)
    return ParsedName(None, {"quality": int(m.group(2))}) if m else None


def load(request: CodecRequest) -> PillowCodec:
    return PillowCodec(NAME.match(request.name).group(1))


def listing(_weights) -> list[CodecInfo]:
    return [CodecInfo(f"{fmt}-qN", "pillow", f"Pillow {fmt.upper()} at quality N (0..100)") for fmt in FORMATS]


FAMILY = Family(name="pillow", load=load, parse=parse, options=OPTIONS, listing=listing,
                       examples=("jpeg-q75", "webp-q60", "avif-q40"),
                       description="JPEG, WebP and AVIF through Pillow (references)")
