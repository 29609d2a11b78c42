"""The AVIF base layer: libavif through Pillow, at one fixed set of encoder settings.

Training bases and the codec's bitstreams go through these two functions, so the network always
sees the artefacts of exactly the encoder that made the archive. Settings: Pillow's defaults
(speed 6, 4:2:0), so "AVIF at the same settings" and "Pillow's default AVIF" are one reference.
Speed 2 would save ~10 % of the bits at 14x the encode time; that gain is the encoder's, and an
archive job is bound by encode time.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

AVIF_SPEED = 6
AVIF_SUBSAMPLING = "4:2:0"


def encode_base(rgb: np.ndarray, quality: int) -> bytes:
    """uint8 H x W x 3 -> AVIF file bytes at ``quality`` (0..100)."""
    if not 0 <= quality <= 100:
        raise ValueError(f"AVIF quality must be 0..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="AVIF", **save_kwargs(quality))
    return buf.getvalue()


def save_kwargs(quality: int) -> dict:
    """Pillow's AVIF encoder settings: the base layer's, and the avif-qN reference's."""
    return {"quality": int(quality), "speed": AVIF_SPEED, "subsampling": AVIF_SUBSAMPLING}


def decode_base(data: bytes) -> np.ndarray:
    """AVIF file bytes -> uint8 H x W x 3."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
