"""cdc-avif: an AVIF base layer restored by a conditional diffusion decoder (DIRAC-style).

Names: ``cdc-avif-mse`` (a weights file) takes the AVIF quality as an encode option;
``cdc-avif-mse-q40`` presets it. One weights file serves every quality: the network is told the
base's quality. The payload is one string: the quality byte and the AVIF file with its box headers
stripped (``avif_box``: rebuilt at decode, 277 bytes saved), so the bits are AVIF's, less its
headers, plus the container. Decoding is AVIF's decode, then ``steps`` DDIM steps over the residual
from r_N = gamma * noise (gamma 0 and 1 step: the distortion end; more steps and gamma > 0 add
texture). An untrained (zero-head) network returns the AVIF base exactly.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from .avif_base import decode_base, encode_base
from .avif_box import compact_or_full, expand
from ..codec import Codec, Option
from ..format import BitstreamError
from ..registry import CodecInfo, CodecRequest, Family, ParsedName
from ..nn.config import DiffusionConfig
from ..weights import make_codec_id

DEFAULT_STEPS = 1  # a restoration decoder is distortion-optimal in one step
NAME = re.compile(r"^(cdc-avif-[a-z0-9-]+?)(?:-q(\d{1,3}))?$")
CARD_FIELDS = ("name", "description", "steps_trained", "default_steps")
@dataclass(frozen=True)
class RestorationConfig:
    """The cdc-avif denoiser: a U-Net over (noisy residual, AVIF base), pixel-unshuffled by 2."""

    widths: tuple[int, ...] = (32, 64, 128, 192)  # channels at 1/2, 1/4, 1/8, 1/16 resolution
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # residual blocks per level on the way down (one up)
    emb: int = 128  # width of the (time, quality) embedding
    residual_scale: float = 4.0  # the diffusion sees (x - base) * scale: AVIF residuals are small
    base_dropout: float = 0.1  # training: share of samples without the base (an unconditional prior)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    family: str = "cdc-avif"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.widths) != len(self.blocks):
            raise ValueError("widths and blocks need one entry per level")


SIZES = {
    "cdc-avif-tiny": RestorationConfig(widths=(8, 16), blocks=(1, 1), emb=16,
                                       diffusion=DiffusionConfig(train_steps=100)),  # unit tests
    "cdc-avif-s": RestorationConfig(),  # about 66 kMAC per pixel per step
}
OPTIONS = (
    Option("quality", int, 30, "encode", "AVIF quality of the base layer (higher: more bits)", min=0, max=100),
    Option("steps", int, None, "decode", f"DDIM steps over the residual from r_N (default: the weights card's "
           f"default_steps, else {DEFAULT_STEPS}: the one-step restoration)", min=1),
    Option("gamma", float, 0.0, "decode", "start-noise scale: 0 deterministic, 0.8 stochastic", min=0.0),
    Option("seed", int, 0, "decode", "seed of the start noise when gamma > 0"),
    Option("t_start", float, 1.0, "decode", "noise level where sampling starts (below 1: start late)",
           min=0.001, max=1.0),
)


class AvifDiffusionCodec(Codec):
    family = "cdc-avif"
    options = OPTIONS

    def __init__(self, model, name: str, sha256: str, device: str = "cpu", default_steps: int = 1,
                 batch_pixels: int = 4 * 768 * 512, tile: int = 1024, overlap: int = 128):
        import torch

        self.model = model.eval().to(device, memory_format=torch.channels_last)
        self.name, self.sha256, self.device = name, sha256, torch.device(device)
        # images above tile x tile pixels are restored in overlapping tiles: bounded memory
        self.batch_pixels, self.tile, self.overlap = batch_pixels, tile, overlap
        self.presets = {"steps": default_steps}

    @property
    def codec_id(self) -> str:
        return make_codec_id(self.name, self.sha256)

    def _encode_rgb(self, rgbs, quality: int):
        return [(base_payload(rgb, quality),) for rgb in rgbs]

    def _decode_containers(self, containers, steps: int, gamma: float, seed: int, t_start: float):
        import torch

        from ..nn.tiling import batches_by_shape

        bases = [self._base(c) for c in containers]
        out: list = [None] * len(containers)
        multiple = self.model.pad_multiple
        with torch.inference_mode():
            for _, idxs in batches_by_shape([b[1].shape[:2] for b in bases], multiple, self.batch_pixels):
                x = self._restore([bases[i] for i in idxs], steps, gamma, seed, t_start, multiple)
                for k, i in enumerate(idxs):
                    out[i] = x[k]
        return out

    def _base(self, c):
        if len(c.strings) != 1:
            raise BitstreamError(f"{self.name} bitstream must hold one string (quality byte + AVIF), "
                                 f"has {len(c.strings)} string(s) of {[len(s) for s in c.strings]} bytes")
        return read_base_payload(c.strings[0], c.height, c.width, self.name)

    def _restore(self, items, steps, gamma, seed, t_start, multiple) -> list[np.ndarray]:
        """Pad the bases of one batch, run the residual diffusion (in tiles when large), crop."""
        import torch
        import torch.nn.functional as F

        from ..nn.diffusion import alpha_bar

        sizes = [b.shape[:2] for _, b, _ in items]  # one padded shape; the sizes may differ
        hp, wp = (-(-side // multiple) * multiple for side in sizes[0])
        base = torch.stack([F.pad(torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].float() / 127.5 - 1,
                                  (0, wp - w, 0, hp - h), mode="replicate")[0]
                            for (_, b, _), (h, w) in zip(items, sizes)])
        quality = torch.tensor([float(q) for q, _, _ in items])
        noise_sd = gamma * float((1 - alpha_bar(torch.tensor(t_start), self.model.cfg.diffusion)).sqrt())
        r_start = torch.stack([_noise((3, hp, wp), seed, crc) for _, _, crc in items]) * noise_sd
        x = self._run(base.to(self.device, memory_format=torch.channels_last), quality.to(self.device),
                      r_start.to(self.device, memory_format=torch.channels_last), steps, t_start)
        x = ((x + 1) * 127.5).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return [x[k, :h, :w] for k, (h, w) in enumerate(sizes)]

    def _run(self, base, quality, r_start, steps, t_start):
        """The restored batch, whole or tile by tile (overlaps blended): bounded memory."""
        from ..nn.tiling import blended

        _, _, h, w = base.shape
        if h * w <= self.tile**2:
            return self.model.restore(base, quality, r_start, steps, t_start)
        return blended(lambda rows, cols, *_: self.model.restore(
            base[..., rows, cols], quality, r_start[..., rows, cols], steps, t_start),
            base.shape, self.tile, self.overlap)


def base_payload(rgb: np.ndarray, quality: int) -> bytes:
    """The base layer's string: the quality byte and the AVIF file with its box headers stripped."""
    return bytes([quality]) + compact_or_full(encode_base(rgb, quality), rgb.shape[1], rgb.shape[0])


def read_base_payload(payload: bytes, height: int, width: int, owner: str) -> tuple[int, np.ndarray, int]:
    """(quality, uint8 base image, crc32 of the AVIF bytes) from a ``base_payload`` string."""
    if len(payload) < 2:
        raise BitstreamError(f"{owner}: the base layer string (quality byte + AVIF) has {len(payload)} bytes")
    quality, avif = payload[0], payload[1:]
    if quality > 100:
        raise BitstreamError(f"{owner}: quality byte {quality} is not 0..100")
    try:
        base = decode_base(expand(avif, width, height))
    except Exception as exc:
        raise BitstreamError(f"{owner}: AVIF base does not decode: {exc}") from None
    if base.shape[:2] != (height, width):
        raise BitstreamError(f"{owner}: AVIF base is {base.shape[1]}x{base.shape[0]}, header says {width}x{height}")
    return quality, base, zlib.crc32(avif)


def _noise(shape, seed: int, crc: int):
    """gamma's noise, seeded per image by (seed, AVIF bytes): independent of batching and device."""
    import torch

    from ..nn.diffusion import image_generator

    return torch.randn(shape, generator=image_generator(seed, crc))


def parse(name: str) -> ParsedName | None:
    m = NAME.match(name)
    if not m:
        return None
    return ParsedName(m.group(1), {"quality": int(m.group(2))} if m.group(2) else {})


def load(request: CodecRequest) -> AvifDiffusionCodec:
    w = request.weights
    return AvifDiffusionCodec(request.network(), w.card.get("name", w.name), w.sha256, request.device,
                              default_steps=w.card.get("default_steps", DEFAULT_STEPS))


def listing(weights) -> list[CodecInfo]:
    return [CodecInfo(w.name, "cdc-avif", f"{w.card.get('description', '')} (quality: --quality or "
                      f"{w.name}-qN)", w.path) for w in weights if w.family == "cdc-avif"]


def wrap(network, name: str, sha256: str, device: str = "cpu", **settings):
    return AvifDiffusionCodec(network, name, sha256, device, **settings)


def network(cfg: RestorationConfig):
    from ..nn.restoration import AvifRestorationModel

    return AvifRestorationModel(cfg)


FAMILY = Family(name="cdc-avif", load=load, parse=parse, options=OPTIONS, config=RestorationConfig, sizes=SIZES,
                default_steps=DEFAULT_STEPS, training_data="avif-pairs", base_layer="avif",
                       network=network, wrap=wrap, card_fields=CARD_FIELDS, listing=listing,
                       description="AVIF base layer + conditional diffusion decoder")
