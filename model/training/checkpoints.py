"""Resumable checkpoints of a run: weights as safetensors, optimiser state loadable with weights_only=True."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(out: Path, model, ema, opt, aux_opt, step: int, elapsed: float, critic=None,
                    critic_opt=None) -> None:
    """Weights as safetensors; optimiser state through torch.save (loaded with weights_only=True).
    ``critic``: an adversarial run's discriminator, saved beside the network so a resume keeps it."""
    tmp = out / "ckpt.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"))
    if critic is not None:
        save_file({k: v.contiguous() for k, v in critic.state_dict().items()}, str(tmp / "critic.safetensors"))
    torch.save({"opt": opt.state_dict(), "aux": aux_opt.state_dict() if aux_opt else {},
                "critic": critic_opt.state_dict() if critic_opt else {}}, tmp / "optim.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed}))
    final = out / "ckpt"
    if final.exists():
        final.rename(out / "ckpt.old")
    tmp.rename(final)
    old = out / "ckpt.old"
    if old.exists():
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def load_checkpoint(out: Path, model, ema, opt, aux_opt, critic=None, critic_opt=None) -> tuple[int, float]:
    ckpt = out / "ckpt"
    if not (ckpt / "state.json").exists():
        return 0, 0.0
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    ema.load_state_dict(load_file(str(ckpt / "ema.safetensors")))
    optim = torch.load(ckpt / "optim.pt", weights_only=True)
    opt.load_state_dict(optim["opt"])
    if aux_opt is not None:
        aux_opt.load_state_dict(optim["aux"])
    if critic is not None and (ckpt / "critic.safetensors").exists():
        critic.load_state_dict(load_file(str(ckpt / "critic.safetensors")))
        critic_opt.load_state_dict(optim["critic"])
    state = json.loads((ckpt / "state.json").read_text())
    return state["step"], state["elapsed_s"]
