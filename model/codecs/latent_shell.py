"""The latent codecs' shell (the cdc and hyperprior families): a learned latent, entropy-coded under a
hyperprior, and a synthesis from it, with the padding, batching, tiling and start noise around them.

    LatentCodec(model, name, sha256, options=OPTIONS)    # part=HyperpriorLatent(model) by default

- the entropy-coded part (``EntropyPart``): padded images -> strings per image -> the condition the
  decoder starts from: the hyperprior latent coder (y at 1/16 resolution; strings z and y).
- the synthesis: ``model.reconstruct(condition, steps, x_start)`` (CDC's diffusion U-Net, or g_s).

The other neural families have their own shells: cdc-avif (``cdc_avif``: an AVIF base restored in
batches and tiles) and DiffC (``diffc``: one image at a time, as its exactness needs).
Images are padded to the part's multiple and batched by padded shape; images above ``tile``²
pixels are coded in overlapping tiles, which bounds memory.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..codec import Codec, Option
from ..format import BitstreamError
from ..nn import guard
from ..nn.diffusion import image_generator
from ..nn.tiling import batches_by_shape, blended, interior, tiles_2d
from ..registry import CodecRequest
from ..weights import make_codec_id
from ..zoo import load_network

PAD_MULTIPLE = 64  # z is at 1/64 resolution
LATENT_STRIDE = 16  # y is at 1/16 resolution


class EntropyPart(Protocol):
    """The entropy-coded half of a neural codec."""

    pad_multiple: int  # images are padded to a multiple of this many pixels
    stride: int  # image pixels per condition pixel (tiles of the synthesis are aligned to it)

    def encode(self, x: torch.Tensor) -> list[tuple[bytes, ...]]:
        """Strings per image of a batch of padded images in [0, 1] (N x 3 x H x W)."""

    def decode(self, strings: list[tuple[bytes, ...]], padded_hw: tuple[int, int]) -> torch.Tensor:
        """The condition (N x C x H/stride x W/stride, on the CPU); ``BitstreamError`` for bad strings."""


class HyperpriorLatent:
    """y = g_a(x), entropy-coded under the two-level hyperprior: strings (z, y), condition y_hat."""

    pad_multiple, stride = PAD_MULTIPLE, LATENT_STRIDE

    def __init__(self, model, tile: int = 1024, overlap: int = 128):
        self.model, self.tile, self.overlap = model, tile, overlap
        model.latent.cpu()  # entropy coding and the exact h_s always run on the CPU

    def encode(self, x: torch.Tensor) -> list[tuple[bytes, ...]]:
        z_strings, y_strings, _ = self.model.latent.compress(self._analysis(x))
        return list(zip(z_strings, y_strings))

    def decode(self, strings: list[tuple[bytes, ...]], padded_hw: tuple[int, int]) -> torch.Tensor:
        for s in strings:
            if len(s) != 2:
                raise BitstreamError(f"bitstream must hold 2 strings (z, y), has {len(s)}")
            guard.check_strings(s, ("z", "y"))
        hp, wp = padded_hw
        try:
            return self.model.latent.decompress([s[0] for s in strings], [s[1] for s in strings],
                                                (hp // PAD_MULTIPLE, wp // PAD_MULTIPLE))
        except BitstreamError:
            raise
        except Exception as exc:  # the rANS decoder rejects malformed strings
            raise BitstreamError(f"entropy decoding failed: {exc}") from None

    def _analysis(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        if h * w <= self.tile**2:
            return self.model.analysis(x)
        s, m = LATENT_STRIDE, self.overlap // 2
        y = None
        for top, left, th, tw in tiles_2d(h, w, self.tile, self.overlap):
            yt = self.model.analysis(x[..., top : top + th, left : left + tw])
            if y is None:
                y = yt.new_empty(x.shape[0], yt.shape[1], h // s, w // s)
            r0, r1 = interior(top, th, h, m)
            c0, c1 = interior(left, tw, w, m)
            y[..., r0 // s : r1 // s, c0 // s : c1 // s] = yt[
                ..., (r0 - top) // s : (r1 - top) // s, (c0 - left) // s : (c1 - left) // s
            ]
        return y


class LatentCodec(Codec):
    """A latent model (CDC, hyperprior) as a codec. Batches images of one padded shape; tiles images
    above ``tile`` px²."""

    def __init__(
        self,
        model,
        name: str,
        weights_sha256: str,
        device: str = "cpu",
        default_steps: int = 8,
        tile: int = 1024,
        overlap: int = 128,
        batch_pixels: int = 4 * 768 * 512,
        options: tuple[Option, ...] = (),
        part: EntropyPart | None = None,
    ):
        # channels_last: oneDNN convolutions and the per-pixel LayerNorms avoid layout copies (1.7x on CPU)
        self.model = model.eval().to(device, memory_format=torch.channels_last)
        self.part = part or HyperpriorLatent(self.model, tile, overlap)
        if tile % self.part.pad_multiple or overlap % (2 * self.part.stride) or not 0 < overlap < tile:
            raise ValueError(f"tile must be a multiple of {self.part.pad_multiple} and overlap a multiple of "
                             f"{2 * self.part.stride} below it")
        self.name, self.weights_sha256, self.device = name, weights_sha256, torch.device(device)
        self.family = model.cfg.family
        self.options = options
        self.tile, self.overlap, self.batch_pixels = tile, overlap, batch_pixels
        if "steps" in {o.name for o in self.options}:
            self.presets = self._merged_presets(steps=default_steps)

    @property
    def codec_id(self) -> str:
        return make_codec_id(self.name, self.weights_sha256)

    def _batches(self, shapes: list[tuple[int, int]]):
        """Index lists of items that share a padded shape, each within the pixel budget."""
        return batches_by_shape(shapes, self.part.pad_multiple, self.batch_pixels)

    @torch.inference_mode()
    def _encode_rgb(self, rgbs):
        out: list = [None] * len(rgbs)
        for (hp, wp), idxs in self._batches([r.shape[:2] for r in rgbs]):
            x = torch.stack([_to_padded_tensor(rgbs[i], hp, wp) for i in idxs])
            strings = self.part.encode(x.to(self.device, memory_format=torch.channels_last))
            for k, i in enumerate(idxs):
                out[i] = strings[k]
        return out

    @torch.inference_mode()
    def _decode_containers(self, containers, steps: int = 1, gamma: float = 0.0, seed: int = 0):
        out: list = [None] * len(containers)
        for (hp, wp), idxs in self._batches([(c.height, c.width) for c in containers]):
            condition = self.part.decode([containers[i].strings for i in idxs], (hp, wp))
            x_start = torch.stack([_start_noise(containers[i], hp, wp, gamma, seed) for i in idxs])
            x = self._synthesis(
                condition.to(self.device, memory_format=torch.channels_last), steps,
                x_start.to(self.device, memory_format=torch.channels_last),
            )
            for k, i in enumerate(idxs):
                c = containers[i]
                img = x[k, :, : c.height, : c.width].clamp(0, 1).mul(255).round().byte()
                out[i] = img.permute(1, 2, 0).cpu().numpy()
        return out

    def _synthesis(self, condition: torch.Tensor, steps: int, x_start: torch.Tensor) -> torch.Tensor:
        s = self.part.stride
        h, w = condition.shape[-2] * s, condition.shape[-1] * s
        if h * w <= self.tile**2:
            return self.model.reconstruct(condition, steps, x_start)
        return blended(lambda rows, cols, crows, ccols: self.model.reconstruct(
            condition[..., crows, ccols], steps, x_start[..., rows, cols]), x_start.shape, self.tile, self.overlap, s)


def _to_padded_tensor(rgb: np.ndarray, hp: int, wp: int) -> torch.Tensor:
    """uint8 H x W x 3 -> float 3 x hp x wp in [0, 1], edge-replicated (reflection fails below 2 px)."""
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(255)  # copy: inputs may be read-only
    h, w = rgb.shape[:2]
    return F.pad(x[None], (0, wp - w, 0, hp - h), mode="replicate")[0] if (h, w) != (hp, wp) else x


def _start_noise(container, hp: int, wp: int, gamma: float, seed: int) -> torch.Tensor:
    """x_N: zeros for gamma = 0, else gamma * N(0, I) from a generator seeded by (seed, bitstream).

    Seeding per image (not per batch) makes a stochastic decode independent of batching; the noise
    is drawn on the CPU so it is the same on every device. The last string seeds it (y for CDC).
    """
    if gamma == 0:
        return torch.zeros(3, hp, wp)
    g = image_generator(seed, zlib.crc32(container.strings[-1]))
    return gamma * torch.randn(3, hp, wp, generator=g)


def load_latent_codec(request: CodecRequest, options: tuple[Option, ...] = (), default_steps: int = 8) -> LatentCodec:
    """The codec of a request's weights file; its card names it and may set ``default_steps``."""
    w = request.weights
    return LatentCodec(load_network(w.path), w.card.get("name", w.name), w.sha256, device=request.device,
                       default_steps=w.card.get("default_steps", default_steps), options=options)
