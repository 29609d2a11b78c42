"""Codec families from outside ``model/``: what a plugin looks like (tests/codecs/test_registry.py and others).

- ``tinyraw-lN`` stores each pixel quantised to N levels per channel (zlib-compressed): ``levels`` is
  an encode option (the name presets it), ``centre`` a decode option (reconstruct at the middle of
  each quantisation bin, or at its lower edge).
- ``tinylut``: a weights-bearing family without torch. Its weights file (``NAME.safetensors`` with
  a card, like any other) holds a 256-entry quantisation table; bitstreams record ``NAME@HASH``.

Loaded by naming this file in ``$DIFFARC_CODEC_PLUGINS``; importing it registers the families.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np

from model import Codec, CodecInfo, CodecRequest, Evaluation, Family, Option, ParsedName, make_codec_id, register_family
from model.format import BitstreamError
from model.weights import sha256_file

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
    name="tinyraw", load=lambda request: TinyRaw(), parse=parse, prefixes=("tinyraw-",), options=OPTIONS,
    evaluation=Evaluation(examples=("tinyraw-l16",)),
    listing=lambda weights: [CodecInfo("tinyraw-lN", "tinyraw", "test plugin: N-level raw pixels")],
    description="test plugin family",
))


class TinyLut(Codec):
    """Pixels mapped through the weights' table to codes (zlib-compressed), decoded to each code's centre."""

    family = "tinylut"

    def __init__(self, name: str, table: np.ndarray, sha256: str):
        self.name, self.table, self.sha256 = name, table, sha256
        codes = np.arange(int(table.max()) + 1)
        self.centres = np.array([np.flatnonzero(table == c).mean() if (table == c).any() else 0 for c in codes])

    @property
    def codec_id(self) -> str:
        return make_codec_id(self.name, self.sha256)

    def _encode_rgb(self, rgbs):
        return [(zlib.compress(self.table[rgb].tobytes()),) for rgb in rgbs]

    def _decode_containers(self, containers):
        out = []
        for c in containers:
            codes = np.frombuffer(zlib.decompress(c.strings[0]), np.uint8).reshape(c.height, c.width, 3)
            out.append(self.centres[codes].round().astype(np.uint8))
        return out


def write_lut_weights(path: Path, levels: int) -> Path:
    """A tinylut weights file quantising to ``levels`` levels, with its card."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"table": (np.arange(256) * levels // 256).astype(np.uint8)}, str(path))
    card = {"name": path.stem, "family": "tinylut", "sha256": sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def load_lut(request: CodecRequest) -> TinyLut:
    from safetensors.numpy import load_file

    table = load_file(str(request.weights.path))["table"]
    return TinyLut(request.weights.card.get("name", request.weights.name), table, request.weights.sha256)


register_family(Family(name="tinylut", load=load_lut, card_fields=("family", "sha256"), evaluation=Evaluation(examples=("WEIGHTS",)),
                       description="test plugin: a weights-bearing family without torch"))

