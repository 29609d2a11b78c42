"""Codecs by name.

- Pillow references: ``jpeg-qN``, ``webp-qN``, ``avif-qN`` for any quality N in 0..100.
- Trained models: every ``NAME.safetensors`` in ``model/weights/`` with its card ``NAME.json``
  (``cdc-s-q1``, ``hyperprior-s-q1``, ...). A path to any ``.safetensors`` file with a card beside
  it loads the same way, so freshly trained weights need no registration.

A bitstream names its codec as ``NAME@HASH``; ``load_codec_for_id`` refuses weights whose hash
differs, so an archive is never decoded with the wrong model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .bitstream import BitstreamError
from .codec import Codec, PillowCodec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_PILLOW_NAME = re.compile(r"^(jpeg|webp|avif)-q(\d{1,3})$")


@dataclass(frozen=True)
class CodecInfo:
    name: str
    family: str
    description: str
    path: Path | None = None


def list_codecs(weights_dir: Path = WEIGHTS_DIR) -> list[CodecInfo]:
    """Every loadable codec: shipped weights first, then the Pillow patterns."""
    infos = []
    for card_path in sorted(Path(weights_dir).glob("*.json")):
        weights = card_path.with_suffix(".safetensors")
        if not weights.exists():
            continue
        card = json.loads(card_path.read_text())
        infos.append(CodecInfo(card_path.stem, card["family"], card.get("description", ""), weights))
    for fmt in PillowCodec.FORMATS:
        infos.append(CodecInfo(f"{fmt}-qN", "pillow", f"Pillow {fmt.upper()} at quality N (0..100)"))
    return infos


def _weights_path(name_or_path: str, weights_dir: Path) -> Path | None:
    p = Path(name_or_path)
    if p.suffix == ".safetensors":
        return p if p.exists() else None
    candidate = Path(weights_dir) / f"{name_or_path}.safetensors"
    return candidate if candidate.exists() else None


def load_codec(name_or_path: str, device: str = "cpu", weights_dir: Path = WEIGHTS_DIR) -> Codec:
    """A codec by registry name or by path to a ``.safetensors`` file with its ``.json`` card."""
    m = _PILLOW_NAME.match(name_or_path)
    if m:
        return PillowCodec(m.group(1), int(m.group(2)))
    path = _weights_path(name_or_path, weights_dir)
    if path is None:
        known = ", ".join(i.name for i in list_codecs(weights_dir))
        raise KeyError(
            f"unknown codec '{name_or_path}': not a registered name or a .safetensors path "
            f"(known: {known}; `python -m model list` shows them)"
        )
    from .neural import load_neural_codec  # torch is imported only when a model is needed

    return load_neural_codec(path, device=device)


def load_codec_for_id(codec_id: str, device: str = "cpu", weights_dir: Path = WEIGHTS_DIR) -> Codec:
    """The codec that wrote bitstreams tagged ``codec_id``; refuses mismatching weights."""
    name = codec_id.split("@", 1)[0]
    try:
        codec = load_codec(name, device=device, weights_dir=weights_dir)
    except KeyError:
        raise BitstreamError(
            f"no weights for codec '{codec_id}': '{name}' is not registered here "
            f"(install the weights file {name}.safetensors into {weights_dir})"
        ) from None
    if codec.codec_id != codec_id:
        raise BitstreamError(
            f"weights mismatch: bitstreams need '{codec_id}' but the registered '{name}' is "
            f"'{codec.codec_id}' (the weights were retrained or replaced; find the matching file)"
        )
    return codec
