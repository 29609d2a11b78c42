"""A codec family from outside ``model/``: what a plugin looks like, used by tests/test_registry.py.

``tinyraw-lN`` stores each pixel quantised to N levels per channel (zlib-compressed): ``levels`` is
an encode option (the name presets it), ``centre`` a decode option (reconstruct at the middle of
each quantisation bin, or at its lower edge). Loaded by naming this file in
``$DIFFARC_CODEC_PLUGINS``; importing it registers the family.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from model import Codec, CodecInfo, CodecRequest, Family, Option, ParsedName, register_family
from model.format import BitstreamError

NAME = re.compile(r"^tinyraw-l(\d+)$")
OPTIONS = (
    Option("levels", int, 16, "encode", "quantisation levels per channel", min=2, max=256),
    Option("centre", bool, True, "decode", "reconstruct at bin centres (else lower edges)"),
)


class TinyRaw(Codec):
    family = "tinyraw"
    options = OPTIONS

    @property
    def name(self) -> str:
        return f"tinyraw-l{self.presets.get('levels', 16)}"

    def codec_id_for(self, encode_options) -> str:
        return f"tinyraw-l{encode_options['levels']}"

    def accepts_id(self, codec_id: str) -> bool:
        return bool(NAME.match(codec_id))

    def _encode_rgb(self, rgbs, levels: int):
        step = 256 / levels
        return [(bytes([levels]) + zlib.compress((rgb // step).astype(np.uint8).tobytes()),) for rgb in rgbs]

    def _decode_containers(self, containers, centre: bool):
        out = []
        for c in containers:
            levels, payload = c.strings[0][0], c.strings[0][1:]
            try:
                q = np.frombuffer(zlib.decompress(payload), np.uint8).reshape(c.height, c.width, 3)
            except (zlib.error, ValueError) as exc:
                raise BitstreamError(f"tinyraw payload does not decode: {exc}") from None
            step = 256 / levels
            out.append(np.clip(q * step + (step / 2 if centre else 0), 0, 255).astype(np.uint8))
        return out


def parse(name: str) -> ParsedName | None:
    m = NAME.match(name)
    return ParsedName(None, {"levels": int(m.group(1))}) if m else None


register_family(Family(
    name="tinyraw", load=lambda request: TinyRaw(), parse=parse, options=OPTIONS,
    listing=lambda weights: [CodecInfo("tinyraw-lN", "tinyraw", "test plugin: N-level raw pixels")],
    description="test plugin family",
))
