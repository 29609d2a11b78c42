"""Neural codecs (CDC and the hyperprior baseline) behind the ``Codec`` interface, and their weights.

Weights files are safetensors (no pickle): parameters in fp16, the entropy coders' CDF tables as
stored integers, the config as JSON in the file's metadata. Beside each file a card ``NAME.json``
records how it was made. The codec id written into bitstreams is ``NAME@<first 8 hex of the
file's sha256>``, so a bitstream can only be decoded by the exact weights that wrote it.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

from . import guard
from .codec import Codec, Option
from .config import CONFIGS, config_from_dict, config_to_dict
from .format import BitstreamError
from .networks import build_model
from .tiling import blend_weight, interior, tiles_2d
from .weights import Weights, make_codec_id, sha256_bytes, sha256_file

PAD_MULTIPLE = 64  # z is at 1/64 resolution
LATENT_STRIDE = 16  # y is at 1/16 resolution
WEIGHTS_FORMAT = "diffarc-weights-1"


class NeuralCodec(Codec):
    """A trained model as a codec. Batches same-sized images; tiles images above ``tile`` px²."""

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
        options: tuple[Option, ...] | None = None,
    ):
        if tile % PAD_MULTIPLE or overlap % (2 * LATENT_STRIDE) or not 0 < overlap < tile:
            raise ValueError("tile must be a multiple of 64 and overlap a multiple of 32 below it")
        # channels_last: oneDNN convolutions and the per-pixel LayerNorms avoid layout copies (1.7x on CPU)
        self.model = model.eval().to(device, memory_format=torch.channels_last)
        self.model.latent.cpu()  # entropy coding and the exact h_s always run on the CPU
        self.name, self.weights_sha256, self.device = name, weights_sha256, torch.device(device)
        self.family = model.cfg.family
        self.options = _family_options(self.family) if options is None else options
        self.tile, self.overlap, self.batch_pixels = tile, overlap, batch_pixels
        if "steps" in {o.name for o in self.options}:
            self.with_presets(steps=default_steps)

    @property
    def codec_id(self) -> str:
        return make_codec_id(self.name, self.weights_sha256)

    # ----- batching ---------------------------------------------------------------------------
    def _batches(self, shapes: list[tuple[int, int]]):
        """Index lists of items that share a padded shape, each within the pixel budget."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (h, w) in enumerate(shapes):
            groups.setdefault((_ceil(h), _ceil(w)), []).append(i)
        for (hp, wp), idxs in groups.items():
            per_batch = max(1, self.batch_pixels // (hp * wp))
            for k in range(0, len(idxs), per_batch):
                yield (hp, wp), idxs[k : k + per_batch]

    # ----- encode -----------------------------------------------------------------------------
    @torch.inference_mode()
    def _encode_rgb(self, rgbs):
        out: list = [None] * len(rgbs)
        for (hp, wp), idxs in self._batches([r.shape[:2] for r in rgbs]):
            x = torch.stack([_to_padded_tensor(rgbs[i], hp, wp) for i in idxs])
            x = x.to(self.device, memory_format=torch.channels_last)
            y = self._analysis(x)
            z_strings, y_strings, _ = self.model.latent.compress(y)
            for k, i in enumerate(idxs):
                out[i] = (z_strings[k], y_strings[k])
        return out

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

    # ----- decode -----------------------------------------------------------------------------
    @torch.inference_mode()
    def _decode_containers(self, containers, steps: int = 1, gamma: float = 0.0, seed: int = 0):
        for c in containers:
            if len(c.strings) != 2:
                raise BitstreamError(f"{self.name} bitstream must hold 2 strings (z, y), has {len(c.strings)}")
            guard.check_strings(c.strings, ("z", "y"))
        out: list = [None] * len(containers)
        for (hp, wp), idxs in self._batches([(c.height, c.width) for c in containers]):
            try:
                y_hat = self.model.latent.decompress(
                    [containers[i].strings[0] for i in idxs],
                    [containers[i].strings[1] for i in idxs],
                    (hp // PAD_MULTIPLE, wp // PAD_MULTIPLE),
                )
            except BitstreamError:
                raise
            except Exception as exc:  # the rANS decoder rejects malformed strings
                raise BitstreamError(f"entropy decoding failed: {exc}") from None
            x_start = torch.stack([_start_noise(containers[i], hp, wp, gamma, seed) for i in idxs])
            x = self._synthesis(
                y_hat.to(self.device, memory_format=torch.channels_last), steps,
                x_start.to(self.device, memory_format=torch.channels_last),
            )
            for k, i in enumerate(idxs):
                c = containers[i]
                img = x[k, :, : c.height, : c.width].clamp(0, 1).mul(255).round().byte()
                out[i] = img.permute(1, 2, 0).cpu().numpy()
        return out

    def _synthesis(self, y_hat: torch.Tensor, steps: int, x_start: torch.Tensor) -> torch.Tensor:
        s = LATENT_STRIDE
        h, w = y_hat.shape[-2] * s, y_hat.shape[-1] * s
        if h * w <= self.tile**2:
            return self.model.reconstruct(y_hat, steps, x_start)
        out = torch.zeros(x_start.shape, device=x_start.device)
        weight = torch.zeros(1, 1, h, w, device=x_start.device)
        for top, left, th, tw in tiles_2d(h // s, w // s, self.tile // s, self.overlap // s):
            rows, cols = slice(top * s, (top + th) * s), slice(left * s, (left + tw) * s)
            xt = self.model.reconstruct(
                y_hat[..., top : top + th, left : left + tw], steps, x_start[..., rows, cols]
            )
            wt = blend_weight(top * s, left * s, th * s, tw * s, h, w, self.overlap).to(xt.device)
            out[..., rows, cols] += xt * wt
            weight[..., rows, cols] += wt
        return out / weight


def _ceil(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def _to_padded_tensor(rgb: np.ndarray, hp: int, wp: int) -> torch.Tensor:
    """uint8 H x W x 3 -> float 3 x hp x wp in [0, 1], edge-replicated (reflection fails below 2 px)."""
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(255)  # copy: inputs may be read-only
    h, w = rgb.shape[:2]
    return F.pad(x[None], (0, wp - w, 0, hp - h), mode="replicate")[0] if (h, w) != (hp, wp) else x


def _start_noise(container, hp: int, wp: int, gamma: float, seed: int) -> torch.Tensor:
    """x_N: zeros for gamma = 0, else gamma * N(0, I) from a generator seeded by (seed, bitstream).

    Seeding per image (not per batch) makes a stochastic decode independent of batching; the noise
    is drawn on the CPU so it is the same on every device.
    """
    if gamma == 0:
        return torch.zeros(3, hp, wp)
    g = torch.Generator().manual_seed((int(seed) * 0x9E3779B1 + zlib.crc32(container.strings[1])) % 2**63)
    return gamma * torch.randn(3, hp, wp, generator=g)


# ----- weights --------------------------------------------------------------------------------
def prepare_for_release(model) -> None:
    """Round parameters through fp16 (as stored), then build the CDF tables from those values."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.update(force=True)


def _state_for_storage(model) -> dict[str, torch.Tensor]:
    params = {n for n, _ in model.named_parameters()}
    return {
        k: (v.half() if k in params and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }


def _metadata(model) -> dict[str, str]:
    return {"format": WEIGHTS_FORMAT, "config": json.dumps(config_to_dict(model.cfg))}


def save_weights(model, path: Path, card: dict) -> str:
    """Write NAME.safetensors and NAME.json; returns the short weights hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prepare_for_release(model)
    save_file(_state_for_storage(model), str(path), metadata=_metadata(model))
    digest = sha256_file(path)
    card = {**card, "family": model.cfg.family, "config": config_to_dict(model.cfg), "sha256": digest}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return digest[:8]


def load_model(path: Path):
    """Rebuild a model from a weights file (safetensors; no pickle involved)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not diffarc weights (metadata format {meta.get('format')!r})")
    model = build_model(config_from_dict(json.loads(meta["config"])))
    model.load_state_dict({k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()})
    return model


def load_neural_codec(weights: Weights, device: str = "cpu", options: tuple[Option, ...] | None = None) -> NeuralCodec:
    return NeuralCodec(
        load_model(weights.path), weights.card.get("name", weights.name), weights.sha256, device=device,
        default_steps=weights.card.get("default_steps", 8), options=options,
    )


def _family_options(family: str) -> tuple[Option, ...]:
    from .registry import get_family

    return get_family(family).options


def codec_from_model(model, name: str, device: str = "cpu", **kw) -> NeuralCodec:
    """A codec from an in-memory model (training, tests); hashed as if saved."""
    prepare_for_release(model)
    digest = sha256_bytes(save(_state_for_storage(model), metadata=_metadata(model)))
    return NeuralCodec(model, name, digest, device=device, **kw)


def random_codec(config: str = "cdc-tiny", seed: int = 0, **kw) -> NeuralCodec:
    """A randomly initialised model of a named config: for tests and speed benchmarks."""
    if config not in CONFIGS:
        raise KeyError(f"unknown config '{config}' (known: {', '.join(CONFIGS)})")
    torch.manual_seed(seed)
    return codec_from_model(build_model(CONFIGS[config]), config, **kw)
