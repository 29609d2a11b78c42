"""The AVIF base layer: libavif (libaom) through Pillow, at encoder settings the caller chooses.

Training bases, the codec's bitstreams and the avif-qN reference all go through these functions, so
the network always sees the artefacts of exactly the encoder that made the archive. The settings
that matter for the artefacts are speed, chroma subsampling and libaom's tune; they are encode
options of the codecs and are recorded in each bitstream (``BaseSettings.to_bytes``), so the
decoder can tell the network what made the base.

``EFFORTS`` are the presets a user picks with ``effort``: ``fast`` is Pillow's default (speed 6,
4:2:0, libavif's default tune) and what every bitstream before settings were recorded used;
``medium`` and ``best`` are 4:4:4 with tune=psnr at speed 4 and 2 (figures: results/frontier/).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..codec import Option

SUBSAMPLINGS = ("4:2:0", "4:4:4")
TUNES = ("default", "psnr", "ssim")  # "default": no tune passed, libavif/libaom choose


@dataclass(frozen=True)
class BaseSettings:
    """libavif encoder settings of one base layer."""

    speed: int = 6  # 0 (slowest, best) .. 10
    subsampling: str = "4:2:0"
    tune: str = "default"

    def __post_init__(self):
        if not 0 <= int(self.speed) <= 10:
            raise ValueError(f"AVIF speed must be 0..10, got {self.speed}")
        if self.subsampling not in SUBSAMPLINGS:
            raise ValueError(f"AVIF subsampling must be one of {', '.join(SUBSAMPLINGS)}, got {self.subsampling!r}")
        if self.tune not in TUNES:
            raise ValueError(f"AVIF tune must be one of {', '.join(TUNES)}, got {self.tune!r}")

    def save_kwargs(self, quality: int) -> dict:
        """Pillow's ``Image.save(format="AVIF", ...)`` arguments for these settings."""
        kwargs = {"quality": int(quality), "speed": int(self.speed), "subsampling": self.subsampling}
        if self.tune != "default":
            kwargs["advanced"] = [("tune", self.tune)]
        return kwargs

    def to_bytes(self) -> bytes:
        """Two bytes: speed, then subsampling (bit 0) and tune (bits 1-2)."""
        return bytes([self.speed, SUBSAMPLINGS.index(self.subsampling) | TUNES.index(self.tune) << 1])

    @classmethod
    def from_bytes(cls, data: bytes) -> "BaseSettings":
        speed, flags = data[0], data[1]
        if flags >> 3 or (flags >> 1) >= len(TUNES):
            raise ValueError(f"unknown AVIF settings flags {flags:#04x}")
        return cls(speed, SUBSAMPLINGS[flags & 1], TUNES[flags >> 1])

    def features(self) -> tuple[float, float, float]:
        """What the network is told: zeros for Pillow's default (``fast``), so old weights fit."""
        return ((6 - self.speed) / 4.0, float(self.subsampling == "4:4:4"), float(self.tune == "psnr"))


EFFORTS = {
    "fast": BaseSettings(6, "4:2:0", "default"),
    "medium": BaseSettings(4, "4:4:4", "psnr"),
    "best": BaseSettings(2, "4:4:4", "psnr"),
}
DEFAULT_SETTINGS = EFFORTS["fast"]


def effort_of(settings: BaseSettings) -> str | None:
    """The effort whose preset these settings are; None for settings no effort has."""
    return next((e for e, s in EFFORTS.items() if s == settings), None)

# The encode options of every codec with an AVIF base layer (cdc-avif, and AVIF itself), one meaning
SETTINGS_OPTIONS = (
    Option("effort", str, "fast", "encode", "base-layer encoder preset: fast (speed 6, 4:2:0: Pillow's "
           "default), medium (speed 4, 4:4:4, tune psnr), best (speed 2, 4:4:4, tune psnr)", choices=tuple(EFFORTS)),
    Option("speed", int, None, "encode", "AVIF encoder speed 0 (slowest) .. 10 (default: the effort's)", min=0, max=10),
    Option("subsampling", str, None, "encode", "AVIF chroma subsampling (default: the effort's)", choices=SUBSAMPLINGS),
    Option("tune", str, None, "encode", "libaom tune (default: the effort's)", choices=TUNES),
)


def base_settings(effort: str, speed: int | None = None, subsampling: str | None = None,
                  tune: str | None = None) -> BaseSettings:
    """The effort's encoder settings, with any given one replacing the effort's."""
    preset = EFFORTS[effort]
    return BaseSettings(preset.speed if speed is None else speed, subsampling or preset.subsampling,
                        tune or preset.tune)


def encode_base(rgb: np.ndarray, quality: int, settings: BaseSettings = DEFAULT_SETTINGS) -> bytes:
    """uint8 H x W x 3 -> AVIF file bytes at ``quality`` (0..100)."""
    if not 0 <= quality <= 100:
        raise ValueError(f"AVIF quality must be 0..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="AVIF", **settings.save_kwargs(quality))
    return buf.getvalue()


def decode_base(data: bytes) -> np.ndarray:
    """AVIF file bytes -> uint8 H x W x 3."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
