"""Networks as weights files: safetensors (no pickle) with the config in the metadata, and a card.

Parameters are stored in fp16, the entropy coders' CDF tables as stored integers (never recomputed
at load time), the config as JSON in the file's metadata, so the file alone rebuilds its network.
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


def prepare_for_release(model) -> None:
    """Round parameters through fp16 (as stored), then build the CDF tables from those values."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    if hasattr(model, "update"):  # entropy models: CDF tables from the stored values
        model.update(force=True)


def _state_for_storage(model) -> dict[str, torch.Tensor]:
    params = {n for n, _ in model.named_parameters()}
    return {
        k: (v.half() if k in params and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }


def _metadata(model) -> dict[str, str]:
    return {"format": WEIGHTS_FORMAT, "config": json.dumps(config_to_dict(model.cfg))}


def _released_bytes(model) -> bytes:
    """The weights file's bytes, the same for the same weights: safetensors writes its metadata in hash
    map order, which varies between runs, so the header is rewritten with sorted keys (readers do not
    care about the order; the tensor data and its offsets are untouched)."""
    prepare_for_release(model)
    blob = save(_state_for_storage(model), metadata=_metadata(model))
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors aligns the data to 8 bytes
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]


def save_weights(model, path: Path, card: dict) -> str:
    """Write NAME.safetensors and NAME.json; returns the short weights hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_released_bytes(model))
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
    model.load_state_dict({k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()})
    return model
