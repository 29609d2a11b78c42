"""The one codec interface the pipeline, the CLI and the evaluation see.

    codec = load_codec("cdc-s-q2")                          # model.registry
    blobs = codec.encode(images)                            # list[bytes], real bitstreams
    images = codec.decode(blobs, steps=8, gamma=0.0, seed=0) # list[PIL.Image]

Images may be Pillow images, uint8 arrays (H x W or H x W x 3), ``LoadedImage`` or file bytes.
Decoded images come back in the restored mode (``L`` for grey originals, else ``RGB``).
``steps``, ``gamma`` and ``seed`` matter only to diffusion codecs; the others ignore them.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
from PIL import Image

from .bitstream import BitstreamError, Container, pack, unpack
from .images import as_loaded, from_rgb8


class Codec(ABC):
    """Base class: subclasses implement ``_encode_rgb`` and ``_decode_containers``."""

    #: registry name, e.g. "cdc-s-q2" or "webp-q75"
    name: str
    #: "cdc", "hyperprior" or "pillow"
    family: str
    #: whether decode's steps/gamma/seed mean anything
    stochastic_decoder: bool = False

    @property
    def codec_id(self) -> str:
        """Name plus a short hash of the exact weights; written into every bitstream."""
        return self.name

    def encode(self, images: Sequence) -> list[bytes]:
        loaded = [as_loaded(im) for im in images]
        strings = self._encode_rgb([im.rgb for im in loaded])
        return [
            pack(Container(self.codec_id, im.rgb.shape[0], im.rgb.shape[1], im.mode, tuple(s)))
            for im, s in zip(loaded, strings)
        ]

    def decode(
        self, blobs: Sequence[bytes], steps: int | None = None, gamma: float = 0.0, seed: int = 0
    ) -> list[Image.Image]:
        containers = [self.parse(b) for b in blobs]
        rgbs = self._decode_containers(containers, steps=steps, gamma=gamma, seed=seed)
        return [from_rgb8(rgb, c.mode) for rgb, c in zip(rgbs, containers)]

    def parse(self, blob: bytes) -> Container:
        """Unpack and check that this codec (these exact weights) made the bitstream."""
        c = unpack(blob)
        if c.codec_id != self.codec_id:
            raise BitstreamError(
                f"bitstream was written by codec '{c.codec_id}', this is '{self.codec_id}': "
                f"load the matching weights (load_codec('{c.codec_name}'))"
            )
        return c

    @abstractmethod
    def _encode_rgb(self, rgbs: list[np.ndarray]) -> list[tuple[bytes, ...]]:
        """Payload strings for each uint8 H x W x 3 image."""

    @abstractmethod
    def _decode_containers(
        self, containers: list[Container], steps: int | None, gamma: float, seed: int
    ) -> list[np.ndarray]:
        """uint8 H x W x 3 arrays, cropped to each container's height and width."""


class PillowCodec(Codec):
    """JPEG, WebP or AVIF through Pillow at a fixed quality: the classical references."""

    family = "pillow"
    FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}

    def __init__(self, fmt: str, quality: int):
        if fmt not in self.FORMATS:
            raise ValueError(f"unknown Pillow format '{fmt}', expected one of {sorted(self.FORMATS)}")
        if not 0 <= quality <= 100:
            raise ValueError(f"quality must be 0..100, got {quality}")
        self.fmt, self.quality = fmt, quality
        self.name = f"{fmt}-q{quality}"

    def _save_kwargs(self) -> dict:
        if self.fmt == "jpeg":
            # 4:2:0, optimised Huffman tables: what a careful user of libjpeg gets.
            return {"quality": self.quality, "optimize": True, "subsampling": 2}
        if self.fmt == "webp":
            return {"quality": self.quality, "method": 6}
        return {"quality": self.quality, "speed": 6}

    def _encode_rgb(self, rgbs):
        out = []
        for rgb in rgbs:
            buf = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(buf, format=self.FORMATS[self.fmt], **self._save_kwargs())
            out.append((buf.getvalue(),))
        return out

    def _decode_containers(self, containers, steps, gamma, seed):
        out = []
        for c in containers:
            if len(c.strings) != 1:
                raise BitstreamError(f"{self.name} bitstream must hold 1 string, has {len(c.strings)}")
            try:
                with Image.open(io.BytesIO(c.strings[0])) as img:
                    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
            except Exception as exc:
                raise BitstreamError(f"{self.name} payload does not decode: {exc}") from None
            if rgb.shape[:2] != (c.height, c.width):
                raise BitstreamError(
                    f"{self.name} payload is {rgb.shape[1]}x{rgb.shape[0]}, header says {c.width}x{c.height}"
                )
            out.append(rgb)
        return out
