"""Training: random crops of natural photos -> the network -> its family's loss -> Adam with EMA weights.

The loop is one function, ``train``, that runs the same way in-process (CPU or one GPU) and as the
per-worker function of Ray Train's ``TorchTrainer`` (several GPUs or nodes).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..nn.psnr import psnr_from_mse
from ..zoo import build_network, load_network, named_config
from .adversarial import discriminator_loss, make_critic
from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .objectives import Terms, objective_for
from .samples import samples_for


def _optimisers(model, cfg: TrainConfig):
    """Adam for the network; a second Adam for entropy-model quantiles, where there are any."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=cfg.lr), torch.optim.Adam(aux, lr=cfg.aux_lr) if aux else None


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The rate of optimiser step ``step``: ``lr``, then half a cosine down to ``final_lr`` over the
    last ``lr_decay_steps`` steps (a constant rate leaves the weights noisy around the optimum)."""
    start = cfg.steps - cfg.lr_decay_steps
    if cfg.lr_decay_steps <= 0 or step < start:
        return cfg.lr
    done = min(1.0, (step - start) / cfg.lr_decay_steps)
    return cfg.final_lr + (cfg.lr - cfg.final_lr) * 0.5 * (1 + math.cos(math.pi * done))


def _batches(model, cfg: TrainConfig, step: int):
    """Endless training batches (tuples of tensors) of the samples the network's family trains on."""
    samples = samples_for(model.cfg.family)  # training/samples.py: what the family trains on
    dataset = samples(cfg, cfg.seed + step)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers,
                        persistent_workers=cfg.workers > 0)
    for batch in loader:
        yield batch if isinstance(batch, (list, tuple)) else (batch,)


def initial_model(cfg: TrainConfig):
    """The network a run starts from: ``init_from`` weights, else a fresh one of the named config."""
    return load_network(cfg.init_from) if cfg.init_from else build_network(named_config(cfg.config))


def train(cfg: TrainConfig, report=None, wrap=None) -> dict:
    """Train until ``steps`` or the time budget; returns the last logged figures.

    ``report(metrics)`` is called at every log step and ``wrap(model)`` may wrap the model for
    data parallelism (Ray Train passes ``ray.train.report`` and ``ray.train.torch.prepare_model``).
    """
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = initial_model(cfg).to(device, memory_format=torch.channels_last).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt, aux_opt = _optimisers(model, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    critic = critic_opt = None
    if cfg.adversarial > 0:  # HiFiC-style: a patch discriminator conditioned on the base
        critic = make_critic(cfg.critic_scales).to(device)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=(0.5, 0.999))
    step, elapsed0 = load_checkpoint(out, model, ema, opt, aux_opt, critic, critic_opt)
    net = wrap(model) if wrap else model

    perceptual = None
    if cfg.rho > 0:
        from ..evaluation.metrics import DEFAULT_LPIPS_PATH, load_lpips

        perceptual = load_lpips(cfg.lpips_weights or DEFAULT_LPIPS_PATH, device=device)

    objective = objective_for(model.cfg.family)  # objectives.py: the family's loss
    batches = _batches(model, cfg, step)
    start = time.time()
    figures: dict = {}
    bar = tqdm(total=cfg.steps, initial=step, desc=Path(cfg.out).name, unit="step", dynamic_ncols=True)
    while step < cfg.steps:
        if cfg.time_budget_min and time.time() - start > cfg.time_budget_min * 60:
            bar.write(f"time budget of {cfg.time_budget_min} min reached at step {step}")
            break
        batch = [v.to(device, memory_format=torch.channels_last) if v.dim() == 4 else v.to(device)
                 for v in next(batches)]
        lmbda = cfg.lmbda_warmup if (cfg.lmbda_warmup is not None and step < cfg.warmup_steps) else cfg.lmbda
        if critic is not None:
            critic.requires_grad_(False)  # the network's step moves only the network
        # the network through net(...), DDP's wrapper under Ray Train (its call is what syncs the
        # gradients), then the family's loss on its outputs
        outputs = net(*batch, final_step_fraction=cfg.final_step_fraction, **cfg.loss_options)
        parts = objective(model.cfg, outputs, batch, Terms(lmbda, cfg.rho, perceptual, critic, cfg.adversarial,
                                                             cfg.msssim))
        pair = {k: parts.pop(k) for k in ("real", "fake", "cond") if k in parts}
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        if aux_opt is not None:
            aux_opt.zero_grad(set_to_none=True)
            model.aux_loss().backward()
            aux_opt.step()
        if critic is not None and pair:
            critic.requires_grad_(True)
            critic_opt.zero_grad(set_to_none=True)
            parts["critic"] = discriminator_loss(critic, pair["real"], pair["fake"], pair["cond"])
            parts["critic"].backward()
            critic_opt.step()
        # EMA warm-up: early on the average would be mostly the random initialisation
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        step += 1
        figures = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}
        if "bpp" in figures:  # the latent codecs: mse is the image's
            figures["psnr_est"] = psnr_from_mse(max(figures["mse"], 1e-10), peak=1.0)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in figures.items() if k != "mse"})
        if report and step % 50 == 0:
            report({**figures, "step": step})
        if step % cfg.checkpoint_every == 0:
            save_checkpoint(out, model, ema, opt, aux_opt, step, elapsed0 + time.time() - start, critic, critic_opt)
    bar.close()
    save_checkpoint(out, model, ema, opt, aux_opt, step, elapsed0 + time.time() - start, critic, critic_opt)
    return {**figures, "step": step, "elapsed_s": elapsed0 + time.time() - start}
