"""A finished run's EMA weights as a weights file with its card, ready for the registry."""

from __future__ import annotations

import inspect
import json
import os
import platform
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..nn.weights_file import save_weights
from ..registry import get_family
from ..zoo import networks_of
from ..weights import objective_card
from .config import TrainConfig
from .loop import initial_model


def export(cfg: TrainConfig, name: str, weights_dir: Path, extra_card: dict | None = None,
           precision: str = "fp16") -> Path:
    """Write the EMA weights of a run as ``weights_dir/NAME.safetensors`` with its card (``precision``:
    fp16, or int8 per output channel for half the bytes: ``model.nn.weights_file``)."""
    out = Path(cfg.out)
    state = json.loads((out / "ckpt" / "state.json").read_text())
    model = initial_model(cfg)
    model.load_state_dict(load_file(str(out / "ckpt" / "ema.safetensors")))
    card = {
        "name": name,
        "description": f"{cfg.config}, lambda={cfg.lmbda}, rho={cfg.rho}",
        "lmbda": cfg.lmbda, "rho": cfg.rho, "steps_trained": state["step"],
        "wall_time_s": round(state["elapsed_s"]), "batch_size": cfg.batch_size, "crop": cfg.crop,
        "data": cfg.data, "hardware": _hardware(),
        # the family's (cdc-avif restores in one step; CDC's few-step decode needs more)
        "default_steps": networks_of(get_family(model.cfg.family)).default_steps or 8,
        **_objective(cfg, model),
        **({} if precision == "fp16" else {"precision": precision}),
        **(extra_card or {}),
    }
    path = Path(weights_dir) / f"{name}.safetensors"
    save_weights(model, path, card, precision)
    return path


def _objective(cfg: TrainConfig, model) -> dict:
    """A diffusion decoder's training objective (``model.weights.objective_card``), from this run's
    settings: the loss options it gave, else the network's own defaults (its config's base dropout,
    its loss's t = 1 gammas). Networks without a diffusion (hyperprior) have none."""
    if not hasattr(model.cfg, "diffusion"):
        return {}
    loss_defaults = inspect.signature(model.forward).parameters
    gammas = cfg.loss_options.get("final_gammas", getattr(loss_defaults.get("final_gammas"), "default", None))
    dropout = cfg.loss_options.get("base_dropout", getattr(model.cfg, "base_dropout", None))
    card = objective_card(cfg.final_step_fraction, gammas, dropout)
    if cfg.adversarial > 0:  # a realism decoder: its discriminator and LPIPS weights beside the objective
        card["objective_settings"].update(adversarial=cfg.adversarial, rho=cfg.rho, critic_scales=cfg.critic_scales)
    if cfg.msssim > 0:
        card["objective_settings"].update(msssim=cfg.msssim)
    return card


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.machine()} CPU x{os.cpu_count()}"
