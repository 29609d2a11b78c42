"""The base layer's byte format, shared by cdc-avif and DiffC's diffc-avif: one payload string that is
the quality byte (then, for any settings but Pillow's default, a tag and two settings bytes) and the
AVIF file with its box headers stripped (``avif_box``: rebuilt at decode).

A cdc-avif payload encoded with ``gate`` may carry a strength after the settings (another tag): the
weight, in sixteenths, that the decoder gives the network's residual where the full network would lose
to the base (text, graphics, flat areas). Without it the strength is 1, as for every payload before it."""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np

from .avif_base import DEFAULT_SETTINGS, BaseSettings, decode_base, effort_of, encode_base
from .avif_box import compact_or_full, expand
from ..format import BitstreamError

SETTINGS_TAG = 0xF1  # a first byte above 100 (no quality): settings follow; Pillow's default has none
STRENGTH_TAG = 0xF2  # as SETTINGS_TAG, then one strength byte: 0..STRENGTH_STEPS - 1 sixteenths
STRENGTH_STEPS = 16  # a strength of STRENGTH_STEPS sixteenths (1) is never written: the payload has no tag


class Base(NamedTuple):
    """A decoded base layer: what the network is told, the pixels, and the seed of its noise."""

    quality: int
    settings: BaseSettings
    rgb: np.ndarray
    crc: int
    strength: float = 1.0  # the weight of the network's residual (``gate``)


def base_payload(rgb: np.ndarray, quality: int, settings: BaseSettings = DEFAULT_SETTINGS) -> bytes:
    """The base layer's string: the quality byte (with settings where not the default) and the AVIF
    file with its box headers stripped."""
    head = bytes([quality]) if settings == DEFAULT_SETTINGS else bytes([SETTINGS_TAG, quality]) + settings.to_bytes()
    return head + compact_or_full(encode_base(rgb, quality, settings), rgb.shape[1], rgb.shape[0])


def with_strength(payload: bytes, sixteenths: int) -> bytes:
    """``payload`` (a ``base_payload`` string) with its network residual weighed by ``sixteenths`` / 16
    (0..15): the same AVIF bytes behind a head that says so."""
    if not 0 <= sixteenths < STRENGTH_STEPS:
        raise ValueError(f"strength {sixteenths} sixteenths is not 0..{STRENGTH_STEPS - 1} (16: write no strength)")
    quality, settings, avif, _ = base_head(payload, "with_strength")
    return bytes([STRENGTH_TAG, quality]) + settings.to_bytes() + bytes([sixteenths]) + avif


def base_head(payload: bytes, owner: str) -> tuple[int, BaseSettings, bytes, float]:
    """(quality, settings, AVIF bytes, strength) of a ``base_payload`` string: its head read, nothing decoded."""
    settings, quality_at, head, strength = DEFAULT_SETTINGS, 0, 1, 1.0  # [quality][AVIF]
    tag = payload[:1]
    if tag in (bytes([SETTINGS_TAG]), bytes([STRENGTH_TAG])):  # [tag][quality][settings: 2 bytes]([strength])[AVIF]
        quality_at, head = 1, 4
        try:
            settings = BaseSettings.from_bytes(payload[2:4])
        except (ValueError, IndexError) as exc:
            raise BitstreamError(f"{owner}: base layer settings bytes {payload[2:4].hex()} are invalid: {exc}") from None
        if tag == bytes([STRENGTH_TAG]):
            head = 5
            if len(payload) < head or payload[4] >= STRENGTH_STEPS:
                raise BitstreamError(f"{owner}: base layer strength byte {payload[4:5].hex() or 'missing'} is not "
                                     f"0..{STRENGTH_STEPS - 1} sixteenths")
            strength = payload[4] / STRENGTH_STEPS
    if len(payload) < head + 1:
        raise BitstreamError(f"{owner}: the base layer string (quality byte + AVIF) has {len(payload)} bytes")
    quality, avif = payload[quality_at], payload[head:]
    if quality > 100:
        raise BitstreamError(f"{owner}: quality byte {quality} is not 0..100")
    return quality, settings, avif, strength


def read_base_payload(payload: bytes, height: int, width: int, owner: str) -> Base:
    """The ``Base`` of a ``base_payload`` string."""
    quality, settings, avif, strength = base_head(payload, owner)
    try:
        base = decode_base(expand(avif, width, height))
    except Exception as exc:
        raise BitstreamError(f"{owner}: AVIF base does not decode: {exc}") from None
    if base.shape[:2] != (height, width):
        raise BitstreamError(f"{owner}: AVIF base is {base.shape[1]}x{base.shape[0]}, header says {width}x{height}")
    return Base(quality, settings, base, zlib.crc32(avif), strength)


def settings_text(quality: int, settings: BaseSettings, strength: float = 1.0) -> dict[str, str]:
    """What a base layer records as text (a row's ``encode_settings``): its quality and encoder settings,
    and a strength where the network's residual is weighed below 1."""
    effort = effort_of(settings)
    return {"quality": str(quality), **({"effort": effort} if effort else {}), "speed": str(settings.speed),
            "subsampling": settings.subsampling, "tune": settings.tune,
            **({"strength": f"{round(strength * STRENGTH_STEPS)}/{STRENGTH_STEPS}"} if strength < 1 else {})}
