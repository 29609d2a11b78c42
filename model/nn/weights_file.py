"""Networks as weights files: safetensors (no pickle) with the config in the metadata, and a card.

Parameters are stored in fp16 (or, with ``precision="int8"``, each conv/linear weight as int8 with an
fp16 scale per output channel: half the bytes), the entropy coders' CDF tables as stored integers
(never recomputed at load time), the config as JSON in the file's metadata, so the file alone
rebuilds its network. What is in memory after saving is exactly what a load gives back.
Beside each file a card ``NAME.json`` records how it was made, its family and its sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from ..weights import CARD_SUFFIX, HASH_CHARS, sha256_bytes, sha256_file
from .config import config_to_dict

WEIGHTS_FORMAT = "diffarc-weights-1"
PRECISIONS = ("fp16", "int8")
SCALE_SUFFIX = ".int8_scale"  # key of an int8 tensor's per-output-channel scales


def _int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (codes, fp16 scales); codes * scales is the stored weight."""
    amax = w.detach().abs().flatten(1).amax(dim=1).clamp(min=1e-8)
    scale = (amax / 127).half()
    shape = (-1,) + (1,) * (w.dim() - 1)
    codes = torch.round(w / scale.float().view(shape)).clamp(-127, 127).to(torch.int8)
    return codes, scale


def _quantised(v: torch.Tensor, is_parameter: bool, precision: str) -> bool:
    """int8 takes the conv and linear weights; biases and norms stay fp16 (few bytes, sensitive)."""
    return precision == "int8" and is_parameter and v.is_floating_point() and v.dim() >= 2


def _dequantised(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return codes.float() * scale.float().view((-1,) + (1,) * (codes.dim() - 1))


def prepare_for_release(model, precision: str = "fp16") -> None:
    """Round parameters through their stored precision, then build the CDF tables from those values."""
    if precision not in PRECISIONS:
        raise ValueError(f"weights precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(_dequantised(*_int8(p)) if _quantised(p, True, precision) else p.half().float())
    if hasattr(model, "update"):  # entropy models: CDF tables from the stored values
        model.update(force=True)


def _state_for_storage(model, precision: str = "fp16") -> dict[str, torch.Tensor]:
    params = {n for n, _ in model.named_parameters()}
    state = {}
    for k, v in model.state_dict().items():
        if _quantised(v, k in params, precision):
            state[k], state[k + SCALE_SUFFIX] = _int8(v)
        else:
            state[k] = v.half() if k in params and v.is_floating_point() else v
    return {k: v.contiguous() for k, v in state.items()}


def _metadata(model, precision: str = "fp16") -> dict[str, str]:
    extra = {} if precision == "fp16" else {"precision": precision}  # fp16 files stay byte for byte as before
    return {"format": WEIGHTS_FORMAT, "config": json.dumps(config_to_dict(model.cfg)), **extra}


def _released_bytes(model, precision: str = "fp16") -> bytes:
    """The weights file's bytes, the same for the same weights: safetensors writes its metadata in hash
    map order, which varies between runs, so the header is rewritten with sorted keys (readers do not
    care about the order; the tensor data and its offsets are untouched)."""
    prepare_for_release(model, precision)
    blob = save(_state_for_storage(model, precision), metadata=_metadata(model, precision))
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors aligns the data to 8 bytes
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]


def save_weights(model, path: Path, card: dict, precision: str = "fp16") -> str:
    """Write NAME.safetensors and NAME.json; returns the short weights hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_released_bytes(model, precision))
    digest = sha256_file(path)
    card = {**card, "family": model.cfg.family, "config": config_to_dict(model.cfg), "sha256": digest}
    path.with_suffix(CARD_SUFFIX).write_text(json.dumps(card, indent=2) + "\n")
    return digest[:HASH_CHARS]


def released_sha256(model) -> str:
    """The sha256 the model's weights file would have (it is prepared for release first)."""
    return sha256_bytes(_released_bytes(model))


def load_model(path: Path, build: Callable[[dict], torch.nn.Module]):
    """Rebuild a model from a weights file (safetensors; no pickle involved); ``build`` makes the network
    of the stored config (``model.zoo.load_network`` passes the family's builder)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not diffarc weights (metadata format {meta.get('format')!r})")
    model = build(json.loads(meta["config"]))
    scales = {k[: -len(SCALE_SUFFIX)]: state.pop(k) for k in [k for k in state if k.endswith(SCALE_SUFFIX)]}
    model.load_state_dict({k: _dequantised(v, scales[k]) if k in scales else
                           v.float() if v.dtype == torch.float16 else v for k, v in state.items()})
    return model
